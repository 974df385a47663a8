//! The F(4x4, 3x3) transforms with AVX2 intrinsics, one 8-lane register per row of [`TB`]
//! tiles, as [`super::super::avx2`] does for F2; the plain versions in the parent module are
//! their reference.
//!
//! A block of eight tiles reads, per input row, columns `4 l .. 4 l + 6` of tile l (`3 l ..
//! 3 l + 6` for F(3x3, 4x4), whose input transform this is too). The loads take tiles l and
//! l + 4 into one register (`[tile l | tile l + 4]`, four values each), so that a 4 x 4
//! transpose of unpacks puts column b of all eight tiles in order into one register; columns
//! 4 and 5 come from a second set of such loads, 4 values further.

use std::arch::x86_64::*;
use std::ops::Range;

use super::super::avx2::{check_rows, store_run};
use super::super::{ConvShape, TB, TileGrid, input_run};
use super::{ALPHA, Combine, RUN, SIZE, at, bt};

/// A register of [`TB`] lanes for the transforms' [`Combine`] arithmetic.
#[derive(Clone, Copy)]
pub(in super::super) struct Reg(pub(in super::super) __m256);

impl Combine for Reg {
    #[inline(always)]
    fn zero() -> Self {
        // SAFETY: AVX is enabled by the callers' target features (as for the methods below).
        Reg(unsafe { _mm256_setzero_ps() })
    }
    #[inline(always)]
    fn add(self, v: Self) -> Self {
        // SAFETY: as above.
        Reg(unsafe { _mm256_add_ps(self.0, v.0) })
    }
    #[inline(always)]
    fn sub(self, v: Self) -> Self {
        // SAFETY: as above.
        Reg(unsafe { _mm256_sub_ps(self.0, v.0) })
    }
    #[inline(always)]
    fn plus(self, k: f32, v: Self) -> Self {
        // SAFETY: as above; FMA is enabled with AVX2 by the callers.
        Reg(unsafe { _mm256_fmadd_ps(_mm256_set1_ps(k), v.0, self.0) })
    }
}

/// Columns 0..4 of tiles l and l + 4 of a block, from `run` (tile l at `run[STEP l]`), offset
/// by `shift` values: one register per l in 0..4.
#[inline(always)]
unsafe fn load_pairs<const STEP: usize>(
    run: *const f32,
    shift: usize,
    masks: &[__m256; 4],
) -> [__m256; 4] {
    // SAFETY: the caller makes run[shift..shift + 7 STEP + 4] readable; AVX is enabled.
    std::array::from_fn(|l| unsafe {
        let low = run.add(STEP * l + shift);
        let pair = _mm256_loadu2_m128(low.add(STEP * 4), low);
        _mm256_and_ps(pair, masks[l])
    })
}

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
    unsafe { transform_input_with_step::<SIZE>(s, x, tiles, rows, v) }
}

/// [`transform_input`] for tiles `STEP` values apart, as
/// [`super::transform_input_with_step`]: F(3x3, 4x4) transforms the same 6x6 patches, 3 apart.
/// The second set of loads starts 4 columns in, so its first two lanes hold columns 4 and 5
/// for either step.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[allow(clippy::needless_range_loop)] // as in the plain version
#[target_feature(enable = "avx2,fma")]
pub(in super::super) unsafe fn transform_input_with_step<const STEP: usize>(
    s: &ConvShape,
    x: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    v: &mut [f32],
) {
    const { assert!(7 * STEP + 8 <= RUN, "a block's loads lie within the run") };
    let n = tiles.stride(rows.len());
    let (h, w, p) = (s.height, s.width, s.padding);
    check_rows(s.batch, tiles, &rows);
    assert_eq!(x.len(), s.input_len(), "x is [B, in, H, W]");
    assert!(
        v.len() >= ALPHA * ALPHA * s.c_in * n,
        "V holds 36 x in x n values"
    );
    // Per block, the lane masks of the two sets of loads (shift 0 and 4): a lane is kept where
    // its padded column lies inside the image's row (outside it, the loads read neighbouring
    // rows' values, or the copy's zeros).
    let masks: Vec<[[__m256; 4]; 2]> = (0..tiles.cols)
        .step_by(TB)
        .map(|c0| {
            [0, 4].map(|shift| {
                std::array::from_fn(|l| {
                    let inside: [i32; TB] = std::array::from_fn(|lane| {
                        let tile = l + 4 * (lane / 4);
                        let padded = STEP * (c0 + tile) + shift + lane % 4;
                        -i32::from(padded >= p && padded < p + w)
                    });
                    // SAFETY: reads the TB values of `inside`.
                    unsafe { _mm256_castsi256_ps(_mm256_loadu_si256(inside.as_ptr().cast())) }
                })
            })
        })
        .collect();
    let mut line = [0.0f32; RUN];
    let dst = v.as_mut_ptr();
    for ci in 0..s.c_in {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = (image * s.c_in + ci) * h * w;
            for (block, c0) in (0..tiles.cols).step_by(TB).enumerate() {
                // A loop, not `array::from_fn`: its closure stopped being inlined once
                // F(3x3, 4x4) shared F4's plain transforms (3.9% of a training step's
                // profile, against 2.9% as a loop).
                let mut e = [[Reg::zero(); ALPHA]; ALPHA];
                for (a, e_a) in e.iter_mut().enumerate() {
                    let Some(y) = (STEP * tile_row + a).checked_sub(p).filter(|&y| y < h) else {
                        continue;
                    };
                    // The run's first value is x[from], image column STEP c0 - p of row y.
                    let from = (plane + y * w + STEP * c0).checked_sub(p);
                    let run = match from.filter(|&from| from + RUN <= x.len()) {
                        Some(from) => x[from..][..RUN].as_ptr(),
                        None => {
                            let row = &x[plane + y * w..][..w];
                            input_run(s, row, STEP * c0, &mut line).as_ptr()
                        }
                    };
                    // SAFETY: reads run[0..RUN] (checked above); AVX2 is enabled here.
                    unsafe {
                        let [m0, m4] = &masks[block];
                        let [r0, r1, r2, r3] = load_pairs::<STEP>(run, 0, m0);
                        let [q0, q1, q2, q3] = load_pairs::<STEP>(run, 4, m4);
                        // Columns 0..4 of the eight tiles, then columns 4 and 5.
                        let (t0, t1) = (_mm256_unpacklo_ps(r0, r1), _mm256_unpackhi_ps(r0, r1));
                        let (t2, t3) = (_mm256_unpacklo_ps(r2, r3), _mm256_unpackhi_ps(r2, r3));
                        let (s0, s2) = (_mm256_unpacklo_ps(q0, q1), _mm256_unpacklo_ps(q2, q3));
                        let d = [
                            unpack_pd::<false>(t0, t2),
                            unpack_pd::<true>(t0, t2),
                            unpack_pd::<false>(t1, t3),
                            unpack_pd::<true>(t1, t3),
                            unpack_pd::<false>(s0, s2),
                            unpack_pd::<true>(s0, s2),
                        ];
                        *e_a = bt(d.map(Reg));
                    }
                }
                // SAFETY: writes lanes t0..t0 + TB < n of 36 rows of V (checked above).
                unsafe {
                    let out = dst.add(ci * n + r * tiles.cols + c0);
                    for k in 0..ALPHA {
                        let column = bt(std::array::from_fn(|a| e[a][k]));
                        for (i, value) in column.into_iter().enumerate() {
                            _mm256_storeu_ps(out.add((i * ALPHA + k) * s.c_in * n), value.0);
                        }
                    }
                }
            }
        }
    }
}

/// The low (`HIGH = false`) or high 64-bit halves of each 128-bit lane of `a` and `b`,
/// interleaved.
#[inline(always)]
pub(in super::super) unsafe fn unpack_pd<const HIGH: bool>(a: __m256, b: __m256) -> __m256 {
    // SAFETY: AVX is enabled by the callers' target features.
    unsafe {
        let (a, b) = (_mm256_castps_pd(a), _mm256_castps_pd(b));
        _mm256_castpd_ps(if HIGH {
            _mm256_unpackhi_pd(a, b)
        } else {
            _mm256_unpacklo_pd(a, b)
        })
    }
}

/// See [`super::transform_output`].
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
        transform_output_with(
            s,
            (m, bias),
            tiles,
            rows,
            out,
            |m| at(m),
            |line, rest, y| store_row(line, rest, y),
        )
    }
}

/// One output row of a block's eight 4-wide tiles, `y[j]` holding column j of tiles 0..8,
/// to `line[0..rest]` (`rest` values left in the output row).
#[inline(always)]
unsafe fn store_row(line: *mut f32, rest: usize, [y0, y1, y2, y3]: [__m256; SIZE]) {
    // SAFETY: every store lies within line..line + rest; AVX is enabled by the caller.
    unsafe {
        // Interleave: column 4 l + j holds y_j[l]. The unpacks give [tile l | tile l + 4]
        // per register; the lane swaps put tiles 0-1, 2-3, 4-5, 6-7 together.
        let (s0, s1) = (_mm256_unpacklo_ps(y0, y1), _mm256_unpackhi_ps(y0, y1));
        let (s2, s3) = (_mm256_unpacklo_ps(y2, y3), _mm256_unpackhi_ps(y2, y3));
        let (o0, o1) = (unpack_pd::<false>(s0, s2), unpack_pd::<true>(s0, s2));
        let (o2, o3) = (unpack_pd::<false>(s1, s3), unpack_pd::<true>(s1, s3));
        let parts = [
            _mm256_permute2f128_ps::<0x20>(o0, o1),
            _mm256_permute2f128_ps::<0x20>(o2, o3),
            _mm256_permute2f128_ps::<0x31>(o0, o1),
            _mm256_permute2f128_ps::<0x31>(o2, o3),
        ];
        let mut rest = rest;
        for (k, part) in parts.into_iter().enumerate() {
            if rest >= TB {
                _mm256_storeu_ps(line.add(k * TB), part);
                rest -= TB;
            } else {
                // The row ends inside this part.
                store_run(line.add(k * TB), rest, part, _mm256_setzero_ps());
                break;
            }
        }
    }
}

/// `Y = A^T M A + bias` for tiles `OUT` values wide (F4's 4, F(3x3, 4x4)'s 3), as
/// [`super::transform_output_with`]: `at` is the tiling's `A^T`, and `store_row(line, rest,
/// y)` writes one output row of a block's eight tiles (see [`store_row`]).
///
/// # Safety
/// The CPU must have AVX2 and FMA; `store_row` writes only
/// `line[0..rest]`.
#[allow(clippy::needless_range_loop)] // row i of columns, as in the plain version
#[target_feature(enable = "avx2,fma")]
pub(in super::super) unsafe fn transform_output_with<const OUT: usize>(
    s: &ConvShape,
    (m, bias): (&[f32], &[f32]),
    tiles: &TileGrid,
    rows: Range<usize>,
    out: &mut [f32],
    at: impl Fn([Reg; ALPHA]) -> [Reg; OUT],
    store_row: impl Fn(*mut f32, usize, [__m256; OUT]),
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = tiles.stride(rows.len());
    check_rows(s.batch, tiles, &rows);
    assert!(
        m.len() >= ALPHA * ALPHA * s.c_out * n,
        "M holds 36 x out x n values"
    );
    assert_eq!(bias.len(), s.c_out, "one bias per output channel");
    assert_eq!(out.len(), s.output_len(), "out is [B, out, H', W']");
    let (src, dst) = (m.as_ptr(), out.as_mut_ptr());
    for (co, &bias) in bias.iter().enumerate() {
        let b = _mm256_set1_ps(bias);
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = (image * s.c_out + co) * ho * wo;
            for c0 in (0..tiles.cols).step_by(TB) {
                // SAFETY: reads lanes t0..t0 + TB < n of 36 rows of M; writes only output
                // positions checked against ho and wo.
                unsafe {
                    let first = src.add(co * n + r * tiles.cols + c0);
                    let mm: [Reg; ALPHA * ALPHA] =
                        std::array::from_fn(|xi| Reg(_mm256_loadu_ps(first.add(xi * s.c_out * n))));
                    // columns[j][i] = (A^T M)[i][j].
                    let columns: [[Reg; OUT]; ALPHA] =
                        std::array::from_fn(|j| at(std::array::from_fn(|i| mm[i * ALPHA + j])));
                    let x0 = OUT * c0;
                    for i in 0..OUT {
                        let oy = OUT * tile_row + i;
                        if oy >= ho {
                            continue;
                        }
                        let y = at(std::array::from_fn(|j| columns[j][i]));
                        let line = dst.add(plane + oy * wo + x0);
                        store_row(line, wo - x0, y.map(|y| _mm256_add_ps(y.0, b)));
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::super::{TileGrid, Tiling};
    use super::*;
    use crate::test_util::values;

    fn shape(batch: usize, channels: usize, size: (usize, usize), padding: usize) -> ConvShape {
        ConvShape {
            batch,
            c_in: channels,
            height: size.0,
            width: size.1,
            c_out: channels + 1,
            kernel: 3,
            stride: 1,
            padding,
            dilation: 1,
        }
    }

    /// Largest difference relative to the largest value (the two round differently: FMAs
    /// here, separate products there).
    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        let scale = want.iter().fold(1.0f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(want).enumerate() {
            assert!((g - w).abs() <= 1e-6 * scale, "{what} [{i}]: {g} vs {w}");
        }
    }

    /// The intrinsics against the plain transforms, on grids with partial blocks, partial
    /// tiles, rows that end in each part of a block's 32 columns, and padding 0-2.
    #[test]
    fn f4_intrinsics_match_the_plain_transforms() {
        if !crate::has_avx2_fma() {
            return;
        }
        for (batch, channels, size, padding) in [
            (2, 3, (7, 9), 1),
            (1, 2, (28, 28), 1),
            (2, 2, (14, 14), 1),
            (3, 1, (6, 21), 0),
            (1, 2, (5, 4), 2),
            (1, 1, (9, 38), 1),
            (1, 2, (4, 70), 2),
        ] {
            let s = shape(batch, channels, size, padding);
            let tiles = TileGrid::new(&s, Tiling::F4);
            let x = values(s.input_len(), 1);
            let all = 0..batch * tiles.rows;
            for rows in [all.clone(), 1..all.end.min(3)] {
                let n = tiles.stride(rows.len());
                let len = ALPHA * ALPHA * s.c_in * n;
                let (mut want, mut got) = (vec![0.0; len], vec![0.0; len]);
                super::super::transform_input(&s, &x, &tiles, rows.clone(), &mut want);
                // SAFETY: checked above.
                unsafe { transform_input(&s, &x, &tiles, rows.clone(), &mut got) };
                let real = rows.len() * tiles.cols;
                for line in 0..ALPHA * ALPHA * s.c_in {
                    let (got, want) = (&got[line * n..][..real], &want[line * n..][..real]);
                    assert_close(got, want, &format!("{s:?} V"));
                }

                let m = values(ALPHA * ALPHA * s.c_out * n, 2);
                let bias = values(s.c_out, 3);
                let (mut want, mut got) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
                super::super::transform_output(&s, &m, &bias, &tiles, rows.clone(), &mut want);
                // SAFETY: checked above.
                unsafe { transform_output(&s, &m, &bias, &tiles, rows.clone(), &mut got) };
                assert_close(&got, &want, &format!("{s:?} Y"));
            }
        }
    }

    /// F(3x3, 4x4)'s intrinsics (the input transform: these with step 3) against its plain
    /// transforms, on 4x4 windows: padding 0-3, partial blocks and tiles, rows ending in each
    /// part of a block's columns.
    #[test]
    fn f3x4_intrinsics_match_the_plain_transforms() {
        use super::super::super::f3x4;
        if !crate::has_avx2_fma() {
            return;
        }
        for (batch, channels, size, padding) in [
            (2, 3, (7, 9), 1),
            (1, 2, (14, 14), 0),
            (3, 1, (6, 21), 0),
            (1, 2, (5, 4), 2),
            (1, 1, (9, 38), 3),
            (1, 2, (4, 70), 2),
            (2, 2, (27, 26), 1),
        ] {
            let s = ConvShape {
                kernel: 4,
                ..shape(batch, channels, size, padding)
            };
            let tiles = TileGrid::new(&s, Tiling::F3x4);
            let x = values(s.input_len(), 4);
            let all = 0..batch * tiles.rows;
            for rows in [all.clone(), 1..all.end.min(3)] {
                let n = tiles.stride(rows.len());
                let len = ALPHA * ALPHA * s.c_in * n;
                let (mut want, mut got) = (vec![0.0; len], vec![0.0; len]);
                super::super::transform_input_with_step::<3>(
                    &s,
                    &x,
                    &tiles,
                    rows.clone(),
                    &mut want,
                );
                // SAFETY: checked above.
                unsafe { transform_input_with_step::<3>(&s, &x, &tiles, rows.clone(), &mut got) };
                let real = rows.len() * tiles.cols;
                for line in 0..ALPHA * ALPHA * s.c_in {
                    let (got, want) = (&got[line * n..][..real], &want[line * n..][..real]);
                    assert_close(got, want, &format!("{s:?} V"));
                }

                // The output transform writes exactly the task's rows: NaN elsewhere stays.
                let m = values(ALPHA * ALPHA * s.c_out * n, 5);
                let bias = values(s.c_out, 6);
                let (mut want, mut got) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
                f3x4::transform_output(&s, &m, &bias, &tiles, rows.clone(), &mut want);
                got.fill(f32::NAN);
                // SAFETY: checked above.
                unsafe {
                    f3x4::avx2::transform_output(&s, &m, &bias, &tiles, rows.clone(), &mut got)
                };
                let (ho, wo) = (s.out_height(), s.out_width());
                for (at, (g, w)) in got.iter().zip(&want).enumerate() {
                    let tile_row = (at / wo % ho) / f3x4::SIZE;
                    let image = at / (wo * ho * s.c_out);
                    let row = image * tiles.rows + tile_row;
                    if rows.contains(&row) {
                        assert!(
                            (g - w).abs() <= 1e-6 * (1.0 + w.abs()),
                            "{s:?} Y [{at}]: {g} vs {w}"
                        );
                    } else {
                        assert!(
                            g.is_nan(),
                            "{s:?}: Y [{at}] written outside the task's rows"
                        );
                    }
                }
            }
        }
    }
}
