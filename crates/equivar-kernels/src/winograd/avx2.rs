//! The Winograd transforms written with AVX2 intrinsics, one 8-lane register per row of
//! [`TB`] tiles: the plain versions in the parent module are their reference (and the path on
//! other CPUs), and the tests below compare the two. Written by hand because the compiler
//! kept the plain versions' lane arrays on the stack and bounds-checked every run.
//!
//! Each function checks the lengths it relies on once, up front; inside, every read and write
//! stays within them by the layout [`TileGrid`] sets up.

use std::arch::x86_64::*;
use std::ops::Range;

use super::{ConvShape, RUN, TB, TileGrid, input_run};

/// Checks that the rows of tiles `rows` lie within `batch` images.
pub(super) fn check_rows(batch: usize, tiles: &TileGrid, rows: &Range<usize>) {
    assert!(
        rows.end <= batch * tiles.rows,
        "rows of tiles within the batch"
    );
}

/// Eight set lanes, then eight clear: `MASKS[8 - k..]` loads a mask of the first k lanes.
const MASKS: [i32; 16] = [-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0];

/// The lane masks of a run of `count` values (at most 2 TB) over two registers.
#[inline(always)]
unsafe fn run_masks(count: usize) -> [__m256i; 2] {
    let first = count.min(TB);
    let second = count.saturating_sub(TB).min(TB);
    // SAFETY: 8 - first and 8 - second lie in 0..=8, so each load reads 8 of the 16 values.
    unsafe {
        [
            _mm256_loadu_si256(MASKS.as_ptr().add(TB - first).cast()),
            _mm256_loadu_si256(MASKS.as_ptr().add(TB - second).cast()),
        ]
    }
}

/// Writes the first `count` (< 2 TB) of the values `first, second` from `line`. (Masked
/// stores, `vmaskmovps`, are microcoded on AMD: they took half of the output transform's
/// time on Zen 4.)
///
/// # Safety
/// `line..line + count` must be writable; the CPU must have AVX.
#[inline(always)]
pub(super) unsafe fn store_run(line: *mut f32, count: usize, first: __m256, second: __m256) {
    // SAFETY: every store below lies within line..line + count.
    unsafe {
        let (v, mut rest, mut at) = if count >= TB {
            _mm256_storeu_ps(line, first);
            (second, count - TB, line.add(TB))
        } else {
            (first, count, line)
        };
        let mut part = _mm256_castps256_ps128(v);
        if rest >= 4 {
            _mm_storeu_ps(at, part);
            part = _mm256_extractf128_ps::<1>(v);
            (at, rest) = (at.add(4), rest - 4);
        }
        if rest >= 2 {
            _mm_store_sd(at.cast(), _mm_castps_pd(part));
            part = _mm_movehl_ps(part, part);
            (at, rest) = (at.add(2), rest - 2);
        }
        if rest == 1 {
            _mm_store_ss(at, part);
        }
    }
}

/// `values[at..at + count]` (count < 2 TB) in two registers, zeros after: two whole loads with
/// the lanes past `count` cleared where 2 TB values lie within `values`, else from a copy.
///
/// # Safety
/// The CPU must have AVX.
#[inline(always)]
unsafe fn load_run(values: &[f32], at: usize, count: usize) -> (__m256, __m256) {
    let mut copy = [0.0f32; 2 * TB];
    let run = match values.get(at..at + 2 * TB) {
        Some(run) => run,
        None => {
            copy[..count].copy_from_slice(&values[at..at + count]);
            &copy
        }
    };
    // SAFETY: `run` holds 2 TB values; the masks load 8 of 16 values each.
    unsafe {
        let [m0, m1] = run_masks(count);
        (
            _mm256_and_ps(_mm256_loadu_ps(run.as_ptr()), _mm256_castsi256_ps(m0)),
            _mm256_and_ps(
                _mm256_loadu_ps(run.as_ptr().add(TB)),
                _mm256_castsi256_ps(m1),
            ),
        )
    }
}

/// `[p, p + q, p - q, -q]`: A applied to a column of two.
#[inline(always)]
unsafe fn a_col(p: __m256, q: __m256) -> [__m256; 4] {
    // SAFETY: AVX is enabled by the callers' target features.
    unsafe {
        [
            p,
            _mm256_add_ps(p, q),
            _mm256_sub_ps(p, q),
            _mm256_sub_ps(_mm256_setzero_ps(), q),
        ]
    }
}

/// `[d0 - d2, d1 + d2, d2 - d1, d1 - d3]`: B^T applied to a column of four.
#[inline(always)]
unsafe fn bt_col(d: [__m256; 4]) -> [__m256; 4] {
    // SAFETY: as above.
    unsafe {
        [
            _mm256_sub_ps(d[0], d[2]),
            _mm256_add_ps(d[1], d[2]),
            _mm256_sub_ps(d[2], d[1]),
            _mm256_sub_ps(d[1], d[3]),
        ]
    }
}

/// `[m0 + m1 + m2, m1 - m2 - m3]`: A^T applied to a column of four.
#[inline(always)]
unsafe fn at_col(m: [__m256; 4]) -> [__m256; 2] {
    // SAFETY: as above.
    unsafe {
        [
            _mm256_add_ps(_mm256_add_ps(m[0], m[1]), m[2]),
            _mm256_sub_ps(_mm256_sub_ps(m[1], m[2]), m[3]),
        ]
    }
}

/// See [`super::transform_input`].
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_input(
    s: &ConvShape,
    x: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    v: &mut [f32],
) {
    let n = tiles.stride(rows.len());
    let (h, w, p) = (s.height, s.width, s.padding);
    check_rows(s.batch, tiles, &rows);
    assert_eq!(x.len(), s.input_len(), "x is [B, in, H, W]");
    assert!(v.len() >= 16 * s.c_in * n, "V holds 16 x in x n values");
    // Block c0 reads, in each padded row, the run of RUN = 2 TB + 2 values from padded column
    // 2 c0 (tile c0 + l reads run[2 l + b]), as four loads at run offsets 0, TB, 2, TB + 2,
    // straight from `x`: lanes outside the image's row (they hold the neighbouring rows'
    // values) are then cleared by a mask per block and load, so the padding reads as zeros
    // with no padded copy of the input. (Masked loads, `vmaskmovps`, were 2x slower on Zen 4.)
    // Only a run that would reach outside `x` itself is copied into a zero-padded line.
    const OFFSETS: [usize; 4] = [0, TB, 2, TB + 2];
    let masks: Vec<[__m256; 4]> = (0..tiles.cols)
        .step_by(TB)
        .map(|c0| {
            OFFSETS.map(|offset| {
                let inside: [i32; TB] = std::array::from_fn(|l| {
                    let padded = 2 * c0 + offset + l;
                    -i32::from(padded >= p && padded < p + w)
                });
                // SAFETY: reads the TB values of `inside`.
                unsafe { _mm256_castsi256_ps(_mm256_loadu_si256(inside.as_ptr().cast())) }
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
                let mut d = [_mm256_setzero_ps(); 16];
                for a in 0..4 {
                    // Padded rows outside the image stay zero.
                    let Some(y) = (2 * tile_row + a).checked_sub(p).filter(|&y| y < h) else {
                        continue;
                    };
                    // The run's first value is x[from], image column 2 c0 - p of row y.
                    let from = (plane + y * w + 2 * c0).checked_sub(p);
                    let run = match from.filter(|&from| from + RUN <= x.len()) {
                        Some(from) => x[from..][..RUN].as_ptr(),
                        None => {
                            let row = &x[plane + y * w..][..w];
                            input_run(s, row, 2 * c0, &mut line).as_ptr()
                        }
                    };
                    // SAFETY: reads run[0..RUN] (checked above); AVX2 is enabled here.
                    unsafe {
                        let m = &masks[block];
                        let load =
                            |k: usize| _mm256_and_ps(_mm256_loadu_ps(run.add(OFFSETS[k])), m[k]);
                        let [lo, hi, lo2, hi2] = [load(0), load(1), load(2), load(3)];
                        d[a * 4] = deinterleave::<0x88>(lo, hi);
                        d[a * 4 + 1] = deinterleave::<0xDD>(lo, hi);
                        d[a * 4 + 2] = deinterleave::<0x88>(lo2, hi2);
                        d[a * 4 + 3] = deinterleave::<0xDD>(lo2, hi2);
                    }
                }
                // SAFETY: writes lanes t0..t0 + TB < n of 16 rows of V (checked above).
                unsafe {
                    // B^T d per column b, then (B^T d) B per row a.
                    let mut h = [_mm256_setzero_ps(); 16];
                    for b in 0..4 {
                        let col = bt_col([d[b], d[4 + b], d[8 + b], d[12 + b]]);
                        for (a, value) in col.into_iter().enumerate() {
                            h[a * 4 + b] = value;
                        }
                    }
                    let out = dst.add(ci * n + r * tiles.cols + c0);
                    for a in 0..4 {
                        let row = bt_col([h[a * 4], h[a * 4 + 1], h[a * 4 + 2], h[a * 4 + 3]]);
                        for (b, value) in row.into_iter().enumerate() {
                            _mm256_storeu_ps(out.add((a * 4 + b) * s.c_in * n), value);
                        }
                    }
                }
            }
        }
    }
}

/// The even (`PICK = 0x88`) or odd (`0xDD`) values of the 16 in `lo, hi`, in order: an
/// in-lane shuffle, then the 64-bit pairs put back in order across the two halves.
#[inline(always)]
unsafe fn deinterleave<const PICK: i32>(lo: __m256, hi: __m256) -> __m256 {
    // SAFETY: AVX2 is enabled by the callers' target features.
    unsafe {
        let pairs = _mm256_castps_pd(_mm256_shuffle_ps::<PICK>(lo, hi));
        _mm256_castpd_ps(_mm256_permute4x64_pd::<0xD8>(pairs))
    }
}

/// See [`super::transform_output`].
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_output(
    s: &ConvShape,
    m: &[f32],
    bias: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    out: &mut [f32],
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = tiles.stride(rows.len());
    check_rows(s.batch, tiles, &rows);
    assert!(m.len() >= 16 * s.c_out * n, "M holds 16 x out x n values");
    assert_eq!(bias.len(), s.c_out, "one bias per output channel");
    assert_eq!(out.len(), s.output_len(), "out is [B, out, H', W']");
    let (src, dst) = (m.as_ptr(), out.as_mut_ptr());
    for (co, &bias) in bias.iter().enumerate() {
        let b = _mm256_set1_ps(bias);
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = (image * s.c_out + co) * ho * wo;
            for c0 in (0..tiles.cols).step_by(TB) {
                // SAFETY: reads lanes t0..t0 + TB < n of 16 rows of M; writes only output
                // positions checked against ho and wo.
                unsafe {
                    let at = src.add(co * n + r * tiles.cols + c0);
                    let mm: [__m256; 16] =
                        std::array::from_fn(|xi| _mm256_loadu_ps(at.add(xi * s.c_out * n)));
                    // A^T M per column b, then (A^T M) A per output row i.
                    let mut h = [[_mm256_setzero_ps(); 4]; 2];
                    for b in 0..4 {
                        let y = at_col([mm[b], mm[4 + b], mm[8 + b], mm[12 + b]]);
                        h[0][b] = y[0];
                        h[1][b] = y[1];
                    }
                    let x0 = 2 * c0;
                    for (i, h_row) in h.iter().enumerate() {
                        let oy = 2 * tile_row + i;
                        if oy >= ho {
                            continue;
                        }
                        let [y0, y1] = at_col(*h_row);
                        let (y0, y1) = (_mm256_add_ps(y0, b), _mm256_add_ps(y1, b));
                        // Interleave: output column x0 + 2 l + j holds y_j[l].
                        let lo = _mm256_unpacklo_ps(y0, y1);
                        let hi = _mm256_unpackhi_ps(y0, y1);
                        let first = _mm256_permute2f128_ps::<0x20>(lo, hi);
                        let second = _mm256_permute2f128_ps::<0x31>(lo, hi);
                        let line = dst.add(plane + oy * wo + x0);
                        if x0 + 2 * TB <= wo {
                            _mm256_storeu_ps(line, first);
                            _mm256_storeu_ps(line.add(TB), second);
                        } else {
                            // The row ends inside the block.
                            store_run(line, wo - x0, first, second);
                        }
                    }
                }
            }
        }
    }
}

/// See [`super::transform_output_grad`].
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn transform_output_grad(
    s: &ConvShape,
    dy: &[f32],
    tiles: &TileGrid,
    rows: Range<usize>,
    dm: &mut [f32],
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = tiles.stride(rows.len());
    check_rows(s.batch, tiles, &rows);
    assert_eq!(dy.len(), s.output_len(), "dy is [B, out, H', W']");
    assert!(dm.len() >= 16 * s.c_out * n, "dM holds 16 x out x n values");
    let (src, dst) = (dy.as_ptr(), dm.as_mut_ptr());
    for co in 0..s.c_out {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = (image * s.c_out + co) * ho * wo;
            for c0 in (0..tiles.cols).step_by(TB) {
                let x0 = 2 * c0;
                // SAFETY: reads only output positions checked against ho and wo; writes lanes
                // t0..t0 + TB < n of 16 rows of dM.
                unsafe {
                    // g[i][j]: output row 2 tile_row + i, columns x0 + 2 lane + j.
                    let mut g = [[_mm256_setzero_ps(); 2]; 2];
                    for (i, gi) in g.iter_mut().enumerate() {
                        let oy = 2 * tile_row + i;
                        if oy >= ho {
                            continue;
                        }
                        let at = plane + oy * wo + x0;
                        let (a, b) = if x0 + 2 * TB <= wo {
                            let line = src.add(at);
                            (_mm256_loadu_ps(line), _mm256_loadu_ps(line.add(TB)))
                        } else {
                            // The row ends inside the block: the rest reads as 0.
                            load_run(dy, at, wo - x0)
                        };
                        gi[0] = deinterleave::<0x88>(a, b);
                        gi[1] = deinterleave::<0xDD>(a, b);
                    }
                    // A dY per column j, then (A dY) A^T per row a.
                    let cols = [a_col(g[0][0], g[1][0]), a_col(g[0][1], g[1][1])];
                    let out = dst.add(co * n + r * tiles.cols + c0);
                    for (a, (&p, &q)) in cols[0].iter().zip(&cols[1]).enumerate() {
                        let row = a_col(p, q);
                        for (b, value) in row.into_iter().enumerate() {
                            _mm256_storeu_ps(out.add((a * 4 + b) * s.c_out * n), value);
                        }
                    }
                }
            }
        }
    }
}

/// `M[xi] = U[xi] . V[xi]` for one of the 16 transformed positions: `u [out x in]`,
/// `v [in x n]`, `m [out x n]` (rows n apart), over the first `tiles` columns (rounded up to
/// 8; `n` has TB columns of slack). The shapes are small (tens of channels, ~100 tiles), so a
/// register-blocked loop over the operands as they lie beats packing them for a general GEMM.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn multiply(
    (c_out, c_in, n, tiles): (usize, usize, usize, usize),
    u: &[f32],
    v: &[f32],
    m: &mut [f32],
) {
    assert!(tiles + TB <= n, "n holds the tiles and TB columns of slack");
    assert!(u.len() >= c_out * c_in && v.len() >= c_in * n && m.len() >= c_out * n);
    let (u, v, m) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
    let mut t = 0;
    while t < tiles {
        // Two registers of tiles while both lie within `tiles`, then one (into the slack).
        let wide = t + 2 * TB <= tiles;
        let mut co = 0;
        while co < c_out {
            let rows = (c_out - co).min(ROWS);
            // SAFETY: rows co..co + rows of u and m, columns t..t + 16 (or + 8) < n of v and m.
            unsafe {
                let (u, v, m) = (u.add(co * c_in), v.add(t), m.add(co * n + t));
                match (rows, wide) {
                    (6, true) => block::<6, 2>(u, c_in, v, n, m),
                    (6, false) => block::<6, 1>(u, c_in, v, n, m),
                    (5, true) => block::<5, 2>(u, c_in, v, n, m),
                    (5, false) => block::<5, 1>(u, c_in, v, n, m),
                    (4, true) => block::<4, 2>(u, c_in, v, n, m),
                    (4, false) => block::<4, 1>(u, c_in, v, n, m),
                    (3, true) => block::<3, 2>(u, c_in, v, n, m),
                    (3, false) => block::<3, 1>(u, c_in, v, n, m),
                    (2, true) => block::<2, 2>(u, c_in, v, n, m),
                    (2, false) => block::<2, 1>(u, c_in, v, n, m),
                    (_, true) => block::<1, 2>(u, c_in, v, n, m),
                    (_, false) => block::<1, 1>(u, c_in, v, n, m),
                }
            }
            co += rows;
        }
        t += if wide { 2 * TB } else { TB };
    }
}

/// Output rows per register block of [`multiply`]: 6 rows x 2 registers of accumulators, with
/// 2 registers of V and a broadcast, fill 15 of the 16 AVX registers.
const ROWS: usize = 6;

/// `m[r][8 j + l] = sum_ci u[r][ci] v[ci][8 j + l]` for R rows and C registers of columns.
#[inline(always)]
unsafe fn block<const R: usize, const C: usize>(
    u: *const f32,
    c_in: usize,
    v: *const f32,
    n: usize,
    m: *mut f32,
) {
    // SAFETY: the caller keeps every offset below within u, v and m.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        for ci in 0..c_in {
            let row: [__m256; C] = std::array::from_fn(|j| _mm256_loadu_ps(v.add(ci * n + j * TB)));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let weight = _mm256_broadcast_ss(&*u.add(r * c_in + ci));
                for (a, x) in acc_r.iter_mut().zip(row) {
                    *a = _mm256_fmadd_ps(weight, x, *a);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (j, a) in acc_r.iter().enumerate() {
                _mm256_storeu_ps(m.add(r * n + j * TB), *a);
            }
        }
    }
}

/// `du [out x in] += dm [out x n] . v [in x n]^T` over the first `tiles` columns: the filter
/// gradient's product, a dot product along the tiles for each (out, in) pair, in blocks of
/// [`ROWS_OUT`] x [`COLS_IN`] pairs.
///
/// # Safety
/// The CPU must have AVX2 and FMA.
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn multiply_transposed(
    (c_out, c_in, n, tiles): (usize, usize, usize, usize),
    dm: &[f32],
    v: &[f32],
    du: &mut [f32],
) {
    assert!(tiles <= n, "rows of n values hold the tiles");
    assert!(dm.len() >= c_out * n && v.len() >= c_in * n && du.len() >= c_out * c_in);
    let (dm_ptr, v_ptr) = (dm.as_ptr(), v.as_ptr());
    super::add_pair_blocks::<ROWS_OUT, COLS_IN>((c_out, c_in), du, |co, ci, rows, cols| {
        // SAFETY: rows co..co + rows of dm and ci..ci + cols of v, columns < tiles.
        unsafe {
            let (a, b) = (dm_ptr.add(co * n), v_ptr.add(ci * n));
            macro_rules! run {
                ($(($r:literal, $c:literal))*) => {
                    match (rows, cols) {
                        $(($r, $c) => dot_block::<$r, $c>(a, b, n, tiles),)*
                        _ => unreachable!("1 <= rows <= ROWS_OUT, 1 <= cols <= COLS_IN"),
                    }
                };
            }
            run! {
                (4, 3) (4, 2) (4, 1) (3, 3) (3, 2) (3, 1) (2, 3) (2, 2) (2, 1) (1, 3) (1, 2) (1, 1)
            }
        }
    });
}

/// Output channels (rows of dm) per [`multiply_transposed`] block: 4 x 3 pairs take 12
/// accumulators, 3 rows of v in registers and one of dm at a time. With the rows of dm in L1
/// while those of v stream from L2 (the inner loop is over input channels), that is one L2
/// load per 4 FMAs (3 x 3: one per 3); the filter gradient ran 3-6% faster (40 -> 40
/// channels, batch 128, 28 x 28 and 14 x 14, alternating in one process).
const ROWS_OUT: usize = 4;
/// Input channels (rows of v) per block.
const COLS_IN: usize = 3;

/// `sum_t a[r][t] b[c][t]` for R rows of a and C rows of b, t < tiles (the last register
/// masked), as `[[f32; COLS_IN]; ROWS_OUT]` (entries past R x C are 0).
#[inline(always)]
unsafe fn dot_block<const R: usize, const C: usize>(
    a: *const f32,
    b: *const f32,
    n: usize,
    tiles: usize,
) -> [[f32; COLS_IN]; ROWS_OUT] {
    // SAFETY: the caller keeps rows R of a and C of b, columns < tiles, in range; the masked
    // loads touch no memory past `tiles`.
    unsafe {
        let mut acc = [[_mm256_setzero_ps(); C]; R];
        let step = |acc: &mut [[__m256; C]; R], x: [__m256; R], y: [__m256; C]| {
            for (acc_r, &xr) in acc.iter_mut().zip(&x) {
                for (a, &yc) in acc_r.iter_mut().zip(&y) {
                    *a = _mm256_fmadd_ps(xr, yc, *a);
                }
            }
        };
        let whole = tiles - tiles % TB;
        for t in (0..whole).step_by(TB) {
            // The C rows of b in registers, each row of a loaded as its FMAs need it: 12
            // accumulators, 3 + 1 operands.
            let y: [__m256; C] = std::array::from_fn(|c| _mm256_loadu_ps(b.add(c * n + t)));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let xr = _mm256_loadu_ps(a.add(r * n + t));
                for (acc, &yc) in acc_r.iter_mut().zip(&y) {
                    *acc = _mm256_fmadd_ps(xr, yc, *acc);
                }
            }
        }
        if whole < tiles {
            // The last register's lanes past the tiles cleared (they lie in the slack).
            let [mask, _] = run_masks(tiles - whole);
            let mask = _mm256_castsi256_ps(mask);
            let load = |p: *const f32| _mm256_and_ps(_mm256_loadu_ps(p), mask);
            let x = std::array::from_fn(|r| load(a.add(r * n + whole)));
            let y = std::array::from_fn(|c| load(b.add(c * n + whole)));
            step(&mut acc, x, y);
        }
        let mut sums = [[0.0f32; COLS_IN]; ROWS_OUT];
        for (sums_r, acc_r) in sums.iter_mut().zip(&acc) {
            for (sum, a) in sums_r.iter_mut().zip(acc_r) {
                // Halves, then pairs, then the last two lanes.
                let four = _mm_add_ps(_mm256_castps256_ps128(*a), _mm256_extractf128_ps::<1>(*a));
                let two = _mm_add_ps(four, _mm_movehl_ps(four, four));
                *sum = _mm_cvtss_f32(_mm_add_ss(two, _mm_shuffle_ps::<1>(two, two)));
            }
        }
        sums
    }
}

#[cfg(test)]
mod tests {
    use super::super as plain;
    use super::super::tests::{check_product, check_transposed_product};
    use super::*;

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

    fn values(len: usize, seed: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * 7 + seed) % 23) as f32 * 0.13 - 1.4)
            .collect()
    }

    /// The register-blocked product and the GEMM fallback against f64 loops, for row counts
    /// that leave every remainder block and tile counts that end in one or two registers.
    #[test]
    fn multiply_matches_the_plain_product() {
        let cases = [
            (40, 40, 126),
            (7, 3, 8),
            (13, 5, 17),
            (1, 1, 24),
            (11, 9, 9),
        ];
        check_product(plain::multiply_by_gemm, &cases, TB, false);
        if crate::has_avx2_fma() {
            check_product(multiply, &cases, TB, false);
        }
    }

    /// The filter gradient's product and its GEMM fallback against f64 loops: remainder
    /// blocks on both sides, tile counts with and without a masked last register.
    #[test]
    fn multiply_transposed_matches_the_plain_product() {
        let cases = [
            (40, 40, 126),
            (7, 5, 8),
            (4, 8, 17),
            (6, 7, 23),
            (5, 4, 9),
            (1, 1, 3),
            (2, 3, 0),
        ];
        check_transposed_product(plain::multiply_transposed_by_gemm, &cases, TB);
        if crate::has_avx2_fma() {
            check_transposed_product(multiply_transposed, &cases, TB);
        }
    }

    /// The intrinsics against the plain transforms, on grids with partial blocks and tiles.
    #[test]
    fn intrinsics_match_the_plain_transforms() {
        if !crate::has_avx2_fma() {
            return;
        }
        for (batch, channels, size, padding) in [
            (2, 3, (7, 9), 1),
            (1, 2, (28, 28), 1),
            (3, 1, (6, 21), 0),
            (1, 2, (5, 4), 2),
        ] {
            let s = shape(batch, channels, size, padding);
            let tiles = TileGrid::new(&s, plain::Tiling::F2);
            let x = values(s.input_len(), 1);
            let all = 0..batch * tiles.rows;
            for rows in [all.clone(), 1..all.end.min(3)] {
                let n = tiles.stride(rows.len());
                let (mut want, mut got) = (vec![0.0; 16 * s.c_in * n], vec![0.0; 16 * s.c_in * n]);
                plain::transform_input(&s, &x, &tiles, rows.clone(), &mut want);
                // SAFETY: checked above.
                unsafe { super::transform_input(&s, &x, &tiles, rows.clone(), &mut got) };
                let real = rows.len() * tiles.cols;
                for line in 0..16 * s.c_in {
                    assert_eq!(got[line * n..][..real], want[line * n..][..real], "{s:?} V");
                }

                let m = values(16 * s.c_out * n, 2);
                let bias = values(s.c_out, 3);
                let (mut want, mut got) = (vec![0.0; s.output_len()], vec![0.0; s.output_len()]);
                plain::transform_output(&s, &m, &bias, &tiles, rows.clone(), &mut want);
                // SAFETY: checked above.
                unsafe { super::transform_output(&s, &m, &bias, &tiles, rows.clone(), &mut got) };
                assert_eq!(got, want, "{s:?} Y");

                let dy = values(s.output_len(), 4);
                let (mut want, mut got) =
                    (vec![0.0; 16 * s.c_out * n], vec![0.0; 16 * s.c_out * n]);
                plain::transform_output_grad(&s, &dy, &tiles, rows.clone(), &mut want);
                // SAFETY: checked above.
                unsafe { super::transform_output_grad(&s, &dy, &tiles, rows.clone(), &mut got) };
                for line in 0..16 * s.c_out {
                    assert_eq!(
                        got[line * n..][..real],
                        want[line * n..][..real],
                        "{s:?} dM"
                    );
                }
            }
        }
    }
}
