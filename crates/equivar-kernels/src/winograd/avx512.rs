//! The Winograd products written with AVX-512 intrinsics: 16-lane registers, 32 of them, and
//! lane masks for the last register of tiles (no slack columns needed). The products are the
//! pass's multiply-adds; the transforms are a few adds per value moved and stay the 8-lane
//! builds of [`super::avx2`]. The tests compare both products with the plain GEMMs.

use std::arch::x86_64::*;

/// Lanes per register.
const LANES: usize = 16;

/// The mask of the first `count` (<= 16) lanes.
#[inline(always)]
fn first_lanes(count: usize) -> __mmask16 {
    debug_assert!(count <= LANES);
    ((1u32 << count) - 1) as __mmask16
}

/// See [`super::avx2::multiply`]: `m [out x n] = u [out x in] . v [in x n]` over the first
/// `tiles` columns (the columns past them are left as they were).
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn multiply(
    (c_out, c_in, n, tiles): (usize, usize, usize, usize),
    u: &[f32],
    v: &[f32],
    m: &mut [f32],
) {
    assert!(tiles <= n, "rows of n values hold the tiles");
    assert!(u.len() >= c_out * c_in && v.len() >= c_in * n && m.len() >= c_out * n);
    let (u, v, m) = (u.as_ptr(), v.as_ptr(), m.as_mut_ptr());
    let mut t = 0;
    while t < tiles {
        // Two full registers of tiles while they fit, then one, the last one masked.
        let wide = t + 2 * LANES <= tiles;
        let mask = first_lanes((tiles - t).min(LANES));
        let mut co = 0;
        while co < c_out {
            let rows = (c_out - co).min(ROWS);
            // SAFETY: rows co..co + rows of u and m, columns t..t + 32 (or the masked lanes of
            // t..t + 16) < tiles of v and m.
            unsafe {
                let (u, v, m) = (u.add(co * c_in), v.add(t), m.add(co * n + t));
                macro_rules! run {
                    ($($r:literal)*) => {
                        match (rows, wide) {
                            $(
                                ($r, true) => block::<$r, 2>(u, c_in, v, n, m, 0xffff),
                                ($r, false) => block::<$r, 1>(u, c_in, v, n, m, mask),
                            )*
                            _ => unreachable!("1 <= rows <= ROWS"),
                        }
                    };
                }
                run!(1 2 3 4 5 6 7 8 9 10 11 12);
            }
            co += rows;
        }
        t += if wide { 2 * LANES } else { LANES };
    }
}

/// Output rows per register block of [`multiply`]: 12 rows x 2 registers of accumulators, with
/// 2 registers of V and a broadcast, fill 27 of the 32 registers.
const ROWS: usize = 12;

/// `m[r][16 j + l] = sum_ci u[r][ci] v[ci][16 j + l]` for R rows and C registers of columns;
/// with C = 1 only the lanes in `mask` are read and written.
#[inline(always)]
unsafe fn block<const R: usize, const C: usize>(
    u: *const f32,
    c_in: usize,
    v: *const f32,
    n: usize,
    m: *mut f32,
    mask: __mmask16,
) {
    // SAFETY: the caller keeps every offset below (the masked lanes, for C = 1) within u, v
    // and m; masked lanes are neither read nor written.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        for ci in 0..c_in {
            let row: [__m512; C] =
                std::array::from_fn(|j| _mm512_maskz_loadu_ps(mask, v.add(ci * n + j * LANES)));
            for (r, acc_r) in acc.iter_mut().enumerate() {
                let weight = _mm512_set1_ps(*u.add(r * c_in + ci));
                for (a, x) in acc_r.iter_mut().zip(row) {
                    *a = _mm512_fmadd_ps(weight, x, *a);
                }
            }
        }
        for (r, acc_r) in acc.iter().enumerate() {
            for (j, a) in acc_r.iter().enumerate() {
                _mm512_mask_storeu_ps(m.add(r * n + j * LANES), mask, *a);
            }
        }
    }
}

/// See [`super::avx2::multiply_transposed`]: `du [out x in] += dm [out x n] . v [in x n]^T`
/// over the first `tiles` columns, in blocks of 4 x 4 (out, in) pairs: 16 accumulators and
/// 4 + 4 rows loaded per register of tiles.
///
/// # Safety
/// The CPU must have AVX-512F.
#[target_feature(enable = "avx512f")]
pub(super) unsafe fn multiply_transposed(
    (c_out, c_in, n, tiles): (usize, usize, usize, usize),
    dm: &[f32],
    v: &[f32],
    du: &mut [f32],
) {
    assert!(tiles <= n, "rows of n values hold the tiles");
    assert!(dm.len() >= c_out * n && v.len() >= c_in * n && du.len() >= c_out * c_in);
    let (dm_ptr, v_ptr) = (dm.as_ptr(), v.as_ptr());
    super::add_pair_blocks::<PAIRS, PAIRS>((c_out, c_in), du, |co, ci, rows, cols| {
        // SAFETY: rows co..co + rows of dm and ci..ci + cols of v, columns < tiles.
        unsafe {
            let (a, b) = (dm_ptr.add(co * n), v_ptr.add(ci * n));
            macro_rules! run {
                ($(($r:literal, $c:literal))*) => {
                    match (rows, cols) {
                        $(($r, $c) => dot_block::<$r, $c>(a, b, n, tiles),)*
                        _ => unreachable!("1 <= rows, cols <= PAIRS"),
                    }
                };
            }
            run! {
                (4, 4) (4, 3) (4, 2) (4, 1) (3, 4) (3, 3) (3, 2) (3, 1)
                (2, 4) (2, 3) (2, 2) (2, 1) (1, 4) (1, 3) (1, 2) (1, 1)
            }
        }
    });
}

/// Output pairs per side of a [`multiply_transposed`] block.
const PAIRS: usize = 4;

/// `sum_t a[r][t] b[c][t]` for R rows of a and C rows of b, t < tiles (the last register
/// masked), as `[[f32; 4]; 4]` (entries past R x C are 0).
#[inline(always)]
unsafe fn dot_block<const R: usize, const C: usize>(
    a: *const f32,
    b: *const f32,
    n: usize,
    tiles: usize,
) -> [[f32; PAIRS]; PAIRS] {
    // SAFETY: the caller keeps rows R of a and C of b, columns < tiles, in range; the masked
    // loads touch no memory past `tiles`.
    unsafe {
        let mut acc = [[_mm512_setzero_ps(); C]; R];
        let mut t = 0;
        while t < tiles {
            let mask = first_lanes((tiles - t).min(LANES));
            let x: [__m512; R] =
                std::array::from_fn(|r| _mm512_maskz_loadu_ps(mask, a.add(r * n + t)));
            let y: [__m512; C] =
                std::array::from_fn(|c| _mm512_maskz_loadu_ps(mask, b.add(c * n + t)));
            for (acc_r, &xr) in acc.iter_mut().zip(&x) {
                for (acc_rc, &yc) in acc_r.iter_mut().zip(&y) {
                    *acc_rc = _mm512_fmadd_ps(xr, yc, *acc_rc);
                }
            }
            t += LANES;
        }
        let mut all = [_mm512_setzero_ps(); PAIRS * PAIRS];
        for (r, acc_r) in acc.iter().enumerate() {
            for (c, a) in acc_r.iter().enumerate() {
                all[r * PAIRS + c] = *a;
            }
        }
        let mut sums = [[0.0f32; PAIRS]; PAIRS];
        _mm512_storeu_ps(sums.as_mut_ptr().cast(), sum_each(all));
        sums
    }
}

/// The lane sums of 16 registers, as the 16 lanes of one: a tree of in-lane and cross-lane
/// shuffles (45 operations) instead of 16 separate horizontal sums (~8 each), which cost as
/// much as the products themselves for ~100 tiles per task.
#[inline(always)]
unsafe fn sum_each(v: [__m512; 16]) -> __m512 {
    // SAFETY: register operations only; AVX-512F is enabled by the callers' target features.
    unsafe {
        // Pairs interleaved: per 128-bit chunk, [a0 + a2, b0 + b2, a1 + a3, b1 + b3].
        let pairs: [__m512; 8] = std::array::from_fn(|i| {
            let (a, b) = (v[2 * i], v[2 * i + 1]);
            _mm512_add_ps(_mm512_unpacklo_ps(a, b), _mm512_unpackhi_ps(a, b))
        });
        // Fours: per 128-bit chunk, the partial sums of four registers in order.
        let fours: [__m512; 4] = std::array::from_fn(|i| {
            let (a, b) = (
                _mm512_castps_pd(pairs[2 * i]),
                _mm512_castps_pd(pairs[2 * i + 1]),
            );
            _mm512_add_ps(
                _mm512_castpd_ps(_mm512_unpacklo_pd(a, b)),
                _mm512_castpd_ps(_mm512_unpackhi_pd(a, b)),
            )
        });
        // Chunks 0 + 1 and 2 + 3 of two fours, then of those: chunk k holds registers 4k..4k+4.
        let halves = |a: __m512, b: __m512| {
            _mm512_add_ps(
                _mm512_shuffle_f32x4::<0b10_00_10_00>(a, b),
                _mm512_shuffle_f32x4::<0b11_01_11_01>(a, b),
            )
        };
        let (low, high) = (halves(fours[0], fours[1]), halves(fours[2], fours[3]));
        halves(low, high)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{check_product, check_transposed_product};
    use super::*;

    /// The 16-lane product against f64 loops, for row counts that leave every remainder
    /// block (12 rows per block) and tile counts that end in two, one or a masked register,
    /// or in none; the columns past `tiles` are left untouched.
    #[test]
    fn multiply_matches_the_plain_product() {
        if crate::has_avx512() {
            let cases = [
                (40, 40, 126),
                (7, 3, 8),
                (13, 5, 17),
                (1, 1, 32),
                (25, 9, 48),
                (12, 2, 16),
                (3, 4, 0),
            ];
            check_product(multiply, &cases, 3, true);
        }
    }

    /// The filter gradient's 16-lane product against f64 loops: remainder blocks on both
    /// sides (4 x 4 pairs per block), tile counts with and without a masked last register.
    #[test]
    fn multiply_transposed_matches_the_plain_product() {
        if crate::has_avx512() {
            let cases = [
                (40, 40, 126),
                (7, 5, 8),
                (4, 8, 17),
                (1, 1, 3),
                (2, 3, 0),
                (9, 6, 32),
            ];
            check_transposed_product(multiply_transposed, &cases, 8);
        }
    }
}
