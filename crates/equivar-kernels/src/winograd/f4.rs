//! Winograd F(4x4, 3x3): each 4x4 output tile from a 6x6 input patch d,
//!
//! ```text
//! Y = A^T [ (G g G^T) (.) (B^T d B) ] A        36 products for 16 outputs
//! ```
//!
//! with the matrices of the interpolation points 0, 1, -1, 1/2, -2 and infinity (solved
//! from `A^T [(G g) (.) (B^T d)] = g * d` for every g and d). The usual points 0, +-1, +-2
//! gave a 40 -> 40 channel layer 5.9e-6 of its largest output in float32 rounding error;
//! these give 2.3e-6 (F2: 2.8e-7). The f64 test below checks the identity.
//!
//! The plain transforms here are the reference for the AVX2 ones in [`avx2`] and the path on
//! other CPUs; both apply the matrices through [`apply`], which skips their zeros.

use super::{ConvShape, Lanes, TB, TileGrid, input_run, lanes};
use std::ops::Range;

#[cfg(target_arch = "x86_64")]
pub(super) mod avx2;

/// Input values per tile side.
pub(super) const ALPHA: usize = 6;

/// Output values per tile side.
const SIZE: usize = 4;

/// B^T and A^T as matrices: [`bt`] and [`at`] apply them with shared terms; the tests check
/// those against these.
#[cfg(test)]
const BT: [[f32; ALPHA]; ALPHA] = [
    [1.0, -1.5, -2.0, 1.5, 1.0, 0.0],
    [0.0, -1.0, 0.5, 2.5, 1.0, 0.0],
    [0.0, 1.0, -2.5, 0.5, 1.0, 0.0],
    [0.0, -2.0, -1.0, 2.0, 1.0, 0.0],
    [0.0, 0.5, -1.0, -0.5, 1.0, 0.0],
    [0.0, 1.0, -1.5, -2.0, 1.5, 1.0],
];

#[cfg(test)]
const AT: [[f32; ALPHA]; SIZE] = [
    [1.0, 1.0, 1.0, 1.0, 1.0, 0.0],
    [0.0, 1.0, -1.0, 0.5, -2.0, 0.0],
    [0.0, 1.0, 1.0, 0.25, 4.0, 0.0],
    [0.0, 1.0, -1.0, 0.125, -8.0, 1.0],
];

const G: [[f64; 3]; ALPHA] = [
    [1.0, 0.0, 0.0],
    [1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0],
    [-1.0 / 3.0, 1.0 / 3.0, -1.0 / 3.0],
    [-16.0 / 15.0, -8.0 / 15.0, -4.0 / 15.0],
    [1.0 / 15.0, -2.0 / 15.0, 4.0 / 15.0],
    [0.0, 0.0, 1.0],
];

/// Values of one input row a block of [`TB`] tiles reads: tile `c0 + l` reads padded columns
/// `4 (c0 + l) .. 4 (c0 + l) + 6`; the AVX2 loads read two more.
pub(super) const RUN: usize = SIZE * TB + 4;

/// What [`bt`] and [`at`] need of the values they combine: lanes of tiles here, registers
/// in AVX2.
pub(super) trait Combine: Copy {
    fn zero() -> Self;
    fn add(self, v: Self) -> Self;
    fn sub(self, v: Self) -> Self;
    /// `self + k * v`.
    fn plus(self, k: f32, v: Self) -> Self;
}

impl Combine for Lanes {
    #[inline(always)]
    fn zero() -> Self {
        [0.0; TB]
    }
    #[inline(always)]
    fn add(self, v: Self) -> Self {
        lanes(|l| self[l] + v[l])
    }
    #[inline(always)]
    fn sub(self, v: Self) -> Self {
        lanes(|l| self[l] - v[l])
    }
    #[inline(always)]
    fn plus(self, k: f32, v: Self) -> Self {
        lanes(|l| self[l] + k * v[l])
    }
}

/// `B^T d` with shared terms: 16 operations instead of the 25 of its nonzero entries
/// (`s = d4 - d2`, `t = d3 - d1`; the test below checks it against [`BT`]).
#[inline(always)]
pub(super) fn bt<T: Combine>(d: [T; ALPHA]) -> [T; ALPHA] {
    let (s, t) = (d[4].sub(d[2]), d[3].sub(d[1]));
    [
        d[0].add(s).sub(d[2]).plus(1.5, t),
        s.add(t).plus(1.5, d[2].add(d[3])),
        s.sub(t).plus(1.5, d[3].sub(d[2])),
        s.plus(2.0, t),
        s.plus(-0.5, t),
        d[5].plus(1.5, s).add(d[1]).plus(-2.0, d[3]),
    ]
}

/// `A^T m` with shared terms (`m1 + m2`, `m1 - m2`; checked against [`AT`]).
#[inline(always)]
pub(super) fn at<T: Combine>(m: [T; ALPHA]) -> [T; SIZE] {
    let (a, b) = (m[1].add(m[2]), m[1].sub(m[2]));
    [
        a.add(m[0]).add(m[3]).add(m[4]),
        b.plus(0.5, m[3]).plus(-2.0, m[4]),
        a.plus(0.25, m[3]).plus(4.0, m[4]),
        b.add(m[5]).plus(0.125, m[3]).plus(-8.0, m[4]),
    ]
}

/// `U[xi][out][in] = (G g G^T)[xi]` for `weight [out, in, 3, 3]` (in f64, rounded once).
pub(super) fn transform_filter(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    transform_filter_with(weight, c_out, c_in, &G)
}

/// `U[xi][out][in] = (G g G^T)[xi]` for `weight [out, in, R, R]` and a 6 x R matrix `g_matrix`
/// (in f64, rounded once): F(4x4, 3x3)'s filters and F(3x3, 4x4)'s.
pub(super) fn transform_filter_with<const R: usize>(
    weight: &[f32],
    c_out: usize,
    c_in: usize,
    g_matrix: &[[f64; R]; ALPHA],
) -> Vec<f32> {
    let mut u = vec![0.0f32; ALPHA * ALPHA * c_out * c_in];
    for co in 0..c_out {
        for ci in 0..c_in {
            let g = &weight[(co * c_in + ci) * R * R..][..R * R];
            for (i, gi) in g_matrix.iter().enumerate() {
                for (j, gj) in g_matrix.iter().enumerate() {
                    let mut sum = 0.0f64;
                    for (ky, a) in gi.iter().enumerate() {
                        for (kx, b) in gj.iter().enumerate() {
                            sum += a * g[ky * R + kx] as f64 * b;
                        }
                    }
                    u[((i * ALPHA + j) * c_out + co) * c_in + ci] = sum as f32;
                }
            }
        }
    }
    u
}

/// `V[xi][ci][t] = (B^T d B)[xi]` for the 6x6 input patch d of each tile t in the rows of
/// tiles `rows`, [`TB`] tiles at a time (as [`super::transform_input`] does for F2).
pub(super) fn transform_input(
    s: &ConvShape,
    x: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    v: &mut [f32],
) {
    transform_input_with_step::<SIZE>(s, x, tiles, rows, v)
}

/// [`transform_input`] for tiles `STEP` values apart (their 6x6 patches overlap by
/// `6 - STEP`): F(3x3, 4x4) transforms the same patches with B^T, 3 apart.
// Columns are picked across arrays by index (column k of e, row i of columns).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub(super) fn transform_input_with_step<const STEP: usize>(
    s: &ConvShape,
    x: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    v: &mut [f32],
) {
    const {
        assert!(
            STEP * (TB - 1) + ALPHA <= RUN,
            "a block's run fits the buffer"
        )
    };
    let n = tiles.stride(rows.len());
    let plane_len = s.height * s.width;
    let mut buf = [0.0f32; RUN];
    for ci in 0..s.c_in {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = &x[(image * s.c_in + ci) * plane_len..][..plane_len];
            for c0 in (0..tiles.cols).step_by(TB) {
                // e[a][k]: (d B)[a][k] for padded row STEP tile_row + a; rows outside the
                // image stay zero. (Loops, not `array::from_fn`: its closure was not inlined
                // into the AVX2 build of F(3x3, 4x4), and ran as SSE.)
                let mut e = [[Lanes::zero(); ALPHA]; ALPHA];
                for (a, e_a) in e.iter_mut().enumerate() {
                    let y = (STEP * tile_row + a).checked_sub(s.padding);
                    if let Some(y) = y.filter(|&y| y < s.height) {
                        let row = &plane[y * s.width..][..s.width];
                        let run = input_run(s, row, STEP * c0, &mut buf);
                        let mut d = [Lanes::zero(); ALPHA];
                        for (b, d_b) in d.iter_mut().enumerate() {
                            for (l, v) in d_b.iter_mut().enumerate() {
                                *v = run[STEP * l + b];
                            }
                        }
                        *e_a = bt(d);
                    }
                }
                let t0 = r * tiles.cols + c0;
                for k in 0..ALPHA {
                    let column = bt(std::array::from_fn(|a| e[a][k]));
                    for (i, lanes) in column.iter().enumerate() {
                        // All TB lanes, as in the F2 transform.
                        let dst = &mut v[((i * ALPHA + k) * s.c_in + ci) * n + t0..][..TB];
                        let dst: &mut Lanes = dst.try_into().expect("TB values");
                        *dst = *lanes;
                    }
                }
            }
        }
    }
}

/// `Y = A^T M A + bias` for each tile in the rows of tiles `rows`, written where it lies inside
/// the output (as [`super::transform_output`] does for F2).
pub(super) fn transform_output(
    s: &ConvShape,
    m: &[f32],
    bias: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    out: &mut [f32],
) {
    transform_output_with(s, (m, bias), tiles, rows, out, at)
}

/// [`transform_output`] for `OUT x OUT` tiles with the output transform `at` (A^T applied
/// to lanes of tiles): F(3x3, 4x4) shares everything else.
// Columns are picked across arrays by index (column k of e, row i of columns).
#[allow(clippy::needless_range_loop)]
#[inline(always)]
pub(super) fn transform_output_with<const OUT: usize>(
    s: &ConvShape,
    (m, bias): (&[f32], &[f32]),
    tiles: &TileGrid,
    rows: Range<usize>,
    out: &mut [f32],
    at: impl Fn([Lanes; ALPHA]) -> [Lanes; OUT],
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = tiles.stride(rows.len());
    for co in 0..s.c_out {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = &mut out[(image * s.c_out + co) * ho * wo..][..ho * wo];
            for c0 in (0..tiles.cols).step_by(TB) {
                let count = (tiles.cols - c0).min(TB);
                let t0 = r * tiles.cols + c0;
                // columns[j][i] = (A^T M)[i][j] (loops, as in the input transform).
                let mut columns = [[Lanes::zero(); OUT]; ALPHA];
                for (j, column) in columns.iter_mut().enumerate() {
                    let mut mj = [Lanes::zero(); ALPHA];
                    for (i, lanes) in mj.iter_mut().enumerate() {
                        let xi = i * ALPHA + j;
                        lanes.copy_from_slice(&m[(xi * s.c_out + co) * n + t0..][..TB]);
                    }
                    *column = at(mj);
                }
                for i in 0..OUT {
                    let oy = OUT * tile_row + i;
                    if oy >= ho {
                        continue;
                    }
                    let mut row = [Lanes::zero(); ALPHA];
                    for (j, lanes) in row.iter_mut().enumerate() {
                        *lanes = columns[j][i];
                    }
                    let y = at(row);
                    let line = &mut plane[oy * wo..][..wo];
                    for l in 0..count {
                        for (j, y_j) in y.iter().enumerate() {
                            let ox = OUT * (c0 + l) + j;
                            if ox < wo {
                                line[ox] = y_j[l] + bias[co];
                            }
                        }
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The factored [`bt`] and [`at`] against the matrices, column by column (exact: every
    /// coefficient is a power of two times a small integer).
    #[test]
    fn the_factored_transforms_apply_the_matrices() {
        for c in 0..ALPHA {
            let unit: [Lanes; ALPHA] = std::array::from_fn(|j| [f32::from(u8::from(j == c)); TB]);
            for (r, row) in bt(unit).iter().enumerate() {
                assert_eq!(row[0], BT[r][c], "B^T [{r}][{c}]");
            }
            for (r, row) in at(unit).iter().enumerate() {
                assert_eq!(row[0], AT[r][c], "A^T [{r}][{c}]");
            }
        }
    }

    /// `A^T [(G g) (.) (B^T d)]` is the correlation of d (6 values) with g (3) for every g and
    /// d, in f64: the products `sum_i A^T[k][i] G[i][j] B^T[i][l]` are 1 where l = k + j and 0
    /// elsewhere. The constants as the kernels use them (float32) are exact except G's.
    #[test]
    #[allow(clippy::needless_range_loop)] // the indices of the formula
    fn the_matrices_compute_a_correlation() {
        for k in 0..SIZE {
            for (j, _) in G[0].iter().enumerate() {
                for l in 0..ALPHA {
                    let sum: f64 = (0..ALPHA)
                        .map(|i| AT[k][i] as f64 * G[i][j] * BT[i][l] as f64)
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
