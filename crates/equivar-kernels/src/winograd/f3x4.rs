//! Winograd F(3x3, 4x4) for 4x4 windows: each 3x3 output tile from a 6x6 input patch d,
//!
//! ```text
//! Y = A^T [ (G g G^T) (.) (B^T d B) ] A        36 products for 9 outputs (direct: 144)
//! ```
//!
//! with [`f4`]'s interpolation points 0, 1, -1, 1/2, -2 and infinity. B^T depends on the
//! points only, so the input transform is F(4x4, 3x3)'s over patches 3 apart instead of 4;
//! A^T keeps the powers 0..2 of the points (infinity in the last row) and G the powers 0..3
//! with F(4x4, 3x3)'s scale per point. The f64 test below checks the identity.
//!
//! A 4x4 window on a 14 x 14 map (`abusing-p4`'s last conv, 11 x 11 outputs in 4 x 4 tiles)
//! needs 576 products per channel pair and image instead of the direct 1,936.

use std::ops::Range;

use super::f4::{self, ALPHA, Combine};
use super::{ConvShape, Lanes, TileGrid};

/// Output values per tile side.
pub(super) const SIZE: usize = 3;

/// Window values per side.
pub(super) const WINDOW: usize = 4;

#[cfg(test)]
const AT: [[f32; ALPHA]; SIZE] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 0.5, -2.0, 0.0],
    [0.0, 1.0, 1.0, 0.25, 4.0, 1.0],
];

const G: [[f64; WINDOW]; ALPHA] = [
    [1.0, 0.0, 0.0, 0.0],
    [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
    [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0, 1.0 / 3.0],
    [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0, -2.0 / 15.0],
    [1.0 / 15.0, -2.0 / 15.0, 4.0 / 15.0, -8.0 / 15.0],
    [0.0, 0.0, 0.0, 1.0],
];

/// `A^T m` with shared terms (`m1 + m2`, `m1 - m2`; checked against [`AT`]).
#[inline(always)]
fn at<T: Combine>(m: [T; ALPHA]) -> [T; SIZE] {
    let (a, b) = (m[1].add(m[2]), m[1].sub(m[2]));
    [
        a.add(m[0]).add(m[3]).add(m[4]),
        b.plus(0.5, m[3]).plus(-2.0, m[4]),
        a.add(m[5]).plus(0.25, m[3]).plus(4.0, m[4]),
    ]
}

/// `U[xi][out][in] = (G g G^T)[xi]` for `weight [out, in, 4, 4]` (in f64, rounded once).
pub(super) fn transform_filter(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    f4::transform_filter_with(weight, c_out, c_in, &G)
}

/// `V[xi][ci][t] = (B^T d B)[xi]` for the 6x6 patch of each 3x3 output tile.
pub(super) fn transform_input(
    s: &ConvShape,
    x: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    v: &mut [f32],
) {
    f4::transform_input_with_step::<SIZE>(s, x, tiles, rows, v)
}

/// `Y = A^T M A + bias` for each 3x3 tile, written where it lies inside the output.
pub(super) fn transform_output(
    s: &ConvShape,
    m: &[f32],
    bias: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    out: &mut [f32],
) {
    f4::transform_output_with(s, (m, bias), tiles, rows, out, at::<Lanes>)
}

/// The same transforms with AVX2 intrinsics: the input transform is F4's with 3 for its step;
/// the output transform is F4's with 3-wide tiles (below). The plain versions are the
/// reference.
#[cfg(target_arch = "x86_64")]
pub(super) mod avx2 {
    use std::arch::x86_64::*;

    use super::super::TB;
    use super::super::avx2::store_run;
    use super::super::f4::avx2::unpack_pd;
    use super::*;

    /// See [`super::transform_input`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(in super::super) unsafe fn transform_input(
        s: &ConvShape,
        x: &[f32],
        tiles: &TileGrid,
        rows: Range<usize>,
        v: &mut [f32],
    ) {
        // SAFETY: the same CPU features.
        unsafe { f4::avx2::transform_input_with_step::<SIZE>(s, x, tiles, rows, v) }
    }

    /// See [`super::transform_output`]: F4's output transform for 3-wide tiles.
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(in super::super) unsafe fn transform_output(
        s: &ConvShape,
        m: &[f32],
        bias: &[f32],
        tiles: &TileGrid,
        rows: Range<usize>,
        out: &mut [f32],
    ) {
        // Closures, not the functions themselves: a closure takes this function's target
        // features, so `at`'s intrinsics inline. (Passed as `at::<Reg>`, its call shim was
        // built without AVX in some builds: the F4 forward 3x slower.)
        #[allow(clippy::redundant_closure)]
        // SAFETY: the same CPU features.
        unsafe {
            f4::avx2::transform_output_with(
                s,
                (m, bias),
                tiles,
                rows,
                out,
                |m| at(m),
                |l, r, y| store_row(l, r, y),
            )
        }
    }

    /// One output row of a block's eight 3-wide tiles to `line[0..rest]`. A 4 x 4 transpose
    /// of unpacks (with a zero fourth row) puts each tile's three values in a 128-bit half,
    /// `[tile l | tile l + 4]`. Tiles are stored left to right with four-value stores, each
    /// fourth value overwritten by the next tile's store (in this block or the next one of
    /// the same row); the stores that would pass the row's end write exactly what lies
    /// inside it, so no task writes into another's rows.
    #[inline(always)]
    unsafe fn store_row(line: *mut f32, rest: usize, [y0, y1, y2]: [__m256; SIZE]) {
        // SAFETY: every store lies within line..line + rest; AVX is enabled by the caller.
        unsafe {
            let zero = _mm256_setzero_ps();
            let (s0, s1) = (_mm256_unpacklo_ps(y0, y1), _mm256_unpackhi_ps(y0, y1));
            let (s2, s3) = (_mm256_unpacklo_ps(y2, zero), _mm256_unpackhi_ps(y2, zero));
            let pairs = [
                unpack_pd::<false>(s0, s2),
                unpack_pd::<true>(s0, s2),
                unpack_pd::<false>(s1, s3),
                unpack_pd::<true>(s1, s3),
            ];
            for l in 0..TB {
                let x = SIZE * l;
                if x >= rest {
                    break;
                }
                let tile = if l < 4 {
                    _mm256_castps256_ps128(pairs[l])
                } else {
                    _mm256_extractf128_ps::<1>(pairs[l - 4])
                };
                if x + 4 <= rest {
                    _mm_storeu_ps(line.add(x), tile);
                } else {
                    store_run(line.add(x), rest - x, _mm256_castps128_ps256(tile), zero);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::winograd::TB;

    /// The factored [`at`] against the matrix, column by column (exact: every coefficient is
    /// a power of two).
    #[test]
    #[allow(clippy::needless_range_loop)] // column c of the matrix
    fn the_factored_output_transform_applies_the_matrix() {
        for c in 0..ALPHA {
            let unit: [Lanes; ALPHA] = std::array::from_fn(|j| [f32::from(u8::from(j == c)); TB]);
            for (r, row) in at(unit).iter().enumerate() {
                assert_eq!(row[0], AT[r][c], "A^T [{r}][{c}]");
            }
        }
    }

    /// `A^T [(G g) (.) (B^T d)]` is the correlation of d (6 values) with g (4) for every g and
    /// d, in f64, with F(4x4, 3x3)'s B^T.
    #[test]
    #[allow(clippy::needless_range_loop)] // the indices of the formula
    fn the_matrices_compute_a_correlation() {
        // B^T column l, from the factored transform applied to unit vectors (exact).
        let bt: [[f32; ALPHA]; ALPHA] = std::array::from_fn(|l| {
            let unit: [Lanes; ALPHA] = std::array::from_fn(|j| [f32::from(u8::from(j == l)); TB]);
            f4::bt(unit).map(|lanes| lanes[0])
        });
        for k in 0..SIZE {
            for j in 0..WINDOW {
                for l in 0..ALPHA {
                    let sum: f64 = (0..ALPHA)
                        .map(|i| AT[k][i] as f64 * G[i][j] * bt[l][i] as f64)
                        .sum();
                    let want = if l == k + j { 1.0 } else { 0.0 };
                    assert!(
                        (sum - want).abs() < 1e-12,
                        "output {k}, tap {j}, input {l}: {sum}"
                    );
                }
            }
        }
    }
}
