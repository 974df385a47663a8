//! DISCO's sparse contraction on the CPU, plane by plane (a plane is one channel of one
//! image), rayon over the planes.
//!
//! - [`gather`]: `y[k, t, p] = sum_(i, j) psi[t, k, (i, j)] x[i, (j + p s) mod nlon_in]`, a
//!   column-grid plane `[nlat_in, nlon_in]` to K row-grid planes `[K, nlat_out, nlon_out]`.
//! - [`scatter`]: its adjoint, K row-grid planes to one column-grid plane.
//!
//! - [`conv_forward`] / [`conv_backward`]: a whole DISCO convolution, per image a gather of
//!   every input channel and one GEMM with the `[out, in * K]` weight; and
//!   [`transpose_forward`] / [`transpose_backward`] for the transposed convolution (GEMM, then
//!   scatter). The gathered planes live for one image at a time and are recomputed in the
//!   backward pass, so memory stays a few images' worth.
//!
//! Each output row is built in blocks of [`LANES`] longitudes held in registers while all of
//! its psi entries stream past, reading the input rows from a copy laid twice end to end, so
//! the wrap-around of the longitude shift needs no branch and every read is contiguous.

use std::cell::RefCell;

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv_cpu::sgemm;
use crate::kernels::DiscoPsi;

/// Longitudes per register block: two AVX2 or one AVX-512 register of f32.
const LANES: usize = 16;

thread_local! {
    static DOUBLED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// `rows` rows of length `n` each copied twice end to end into `out` (`rows * 2n`).
fn double_rows(src: &[f32], n: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in src.chunks_exact(n) {
        out.extend_from_slice(row);
        out.extend_from_slice(row);
    }
}

/// `out[l] = sum_e value_e * rows[offset_e + l * stride]` for every l, with the sums of
/// each block of LANES outputs kept in registers.
#[inline(always)]
fn accumulate_row<const FMA: bool>(
    out: &mut [f32],
    terms: impl Iterator<Item = (usize, f32)> + Clone,
    doubled: &[f32],
    stride: usize,
) {
    let n = out.len();
    let blocks = n / LANES;
    if stride == 1 {
        for b in 0..blocks {
            let p0 = b * LANES;
            let mut acc = [0.0f32; LANES];
            for (offset, v) in terms.clone() {
                let src: &[f32; LANES] = doubled[offset + p0..offset + p0 + LANES]
                    .try_into()
                    .expect("LANES values");
                for l in 0..LANES {
                    // mul_add is one instruction only where FMA is enabled (else a libm call).
                    acc[l] = if FMA {
                        v.mul_add(src[l], acc[l])
                    } else {
                        acc[l] + v * src[l]
                    };
                }
            }
            out[p0..p0 + LANES].copy_from_slice(&acc);
        }
        for (p, o) in out.iter_mut().enumerate().skip(blocks * LANES) {
            *o = terms
                .clone()
                .map(|(offset, v)| v * doubled[offset + p])
                .sum();
        }
    } else {
        for (p, o) in out.iter_mut().enumerate() {
            *o = terms
                .clone()
                .map(|(offset, v)| v * doubled[offset + p * stride])
                .sum();
        }
    }
}

/// `x [planes, nlat_in, nlon_in]` to `y [planes, K, nlat_out, nlon_out]`.
pub fn gather(psi: &DiscoPsi, x: &[f32]) -> Vec<f32> {
    let planes = x.len() / psi.columns.points();
    let mut y = vec![0.0f32; planes * psi.kernel_size() * psi.rows.points()];
    gather_into(psi, x, &mut y);
    y
}

/// [`gather`] into `y`, every value of which is overwritten.
pub fn gather_into(psi: &DiscoPsi, x: &[f32], y: &mut [f32]) {
    let plane_in = psi.columns.points();
    let k_size = psi.kernel_size();
    let plane_out = k_size * psi.rows.points();
    assert_eq!(x.len() % plane_in, 0, "x is [planes, nlat_in, nlon_in]");
    assert_eq!(
        y.len(),
        x.len() / plane_in * plane_out,
        "y is [planes, K, nlat, nlon]"
    );
    y.par_chunks_mut(plane_out)
        .zip(x.par_chunks(plane_in))
        .for_each(|(y, x)| {
            DOUBLED.with_borrow_mut(|doubled| {
                double_rows(x, psi.columns.nlon, doubled);
                if has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                    unsafe { gather_plane_avx2(psi, doubled, y) }
                } else {
                    gather_plane::<false>(psi, doubled, y)
                }
            })
        });
}

/// Whether this CPU runs the AVX2 + FMA builds of the plane kernels.
fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// One plane of [`gather`], row by output ring so that the few input rings it reads stay in
/// L1 across the K basis functions.
#[inline(always)]
fn gather_plane<const FMA: bool>(psi: &DiscoPsi, doubled: &[f32], y: &mut [f32]) {
    let (n_in, n_out) = (psi.columns.nlon, psi.rows.nlon);
    for t in 0..psi.rows.nlat {
        for k in 0..psi.kernel_size() {
            let out = &mut y[(k * psi.rows.nlat + t) * n_out..][..n_out];
            let terms = psi
                .row(t, k)
                .iter()
                .map(|e| (e.ring as usize * 2 * n_in + e.lon as usize, e.value));
            accumulate_row::<FMA>(out, terms, doubled, psi.stride);
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn gather_plane_avx2(psi: &DiscoPsi, doubled: &[f32], y: &mut [f32]) {
    gather_plane::<true>(psi, doubled, y)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn gather_plane_avx2(psi: &DiscoPsi, doubled: &[f32], y: &mut [f32]) {
    gather_plane::<false>(psi, doubled, y)
}

/// The adjoint of [`gather`]: `y [planes, K, nlat_out, nlon_out]` to `x [planes, nlat_in,
/// nlon_in]`, `x[i, (j + p s) mod nlon_in] += psi[t, k, (i, j)] y[k, t, p]`.
pub fn scatter(psi: &DiscoPsi, y: &[f32]) -> Vec<f32> {
    let planes = y.len() / (psi.kernel_size() * psi.rows.points());
    let mut x = vec![0.0f32; planes * psi.columns.points()];
    scatter_into(psi, y, &mut x);
    x
}

/// [`scatter`] into `x`, every value of which is overwritten.
pub fn scatter_into(psi: &DiscoPsi, y: &[f32], x: &mut [f32]) {
    let plane_in = psi.columns.points();
    let plane_out = psi.kernel_size() * psi.rows.points();
    assert_eq!(
        y.len() % plane_out,
        0,
        "y is [planes, K, nlat_out, nlon_out]"
    );
    assert_eq!(
        x.len(),
        y.len() / plane_out * plane_in,
        "x is [planes, nlat, nlon]"
    );
    x.par_chunks_mut(plane_in)
        .zip(y.par_chunks(plane_out))
        .for_each(|(x, y)| {
            DOUBLED.with_borrow_mut(|doubled| {
                double_rows(y, psi.rows.nlon, doubled);
                if has_avx2_fma() {
                    // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                    unsafe { scatter_plane_avx2(psi, doubled, x) }
                } else {
                    scatter_plane::<false>(psi, doubled, x)
                }
            })
        });
}

/// One plane of [`scatter`].
#[inline(always)]
fn scatter_plane<const FMA: bool>(psi: &DiscoPsi, doubled: &[f32], x: &mut [f32]) {
    let (n_in, n_out, s) = (psi.columns.nlon, psi.rows.nlon, psi.stride);
    for i in 0..psi.columns.nlat {
        let out = &mut x[i * n_in..][..n_in];
        let entries = psi.ring(i);
        if s == 1 {
            // x[i, q] = sum_e v_e y[row_e, q - j_e]: row q - j + n of the doubled copy.
            let terms = entries
                .iter()
                .map(|e| (e.row as usize * 2 * n_out + n_out - e.lon as usize, e.value));
            accumulate_row::<FMA>(out, terms, doubled, 1);
        } else {
            // Only q = j + p s receive from entry e: p = (q - j) / s.
            out.fill(0.0);
            for e in entries {
                let src = &doubled[e.row as usize * 2 * n_out..][..2 * n_out];
                let j = e.lon as usize;
                for p in 0..n_out {
                    let q = (j + p * s) % n_in;
                    out[q] += e.value * src[p];
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn scatter_plane_avx2(psi: &DiscoPsi, doubled: &[f32], x: &mut [f32]) {
    scatter_plane::<true>(psi, doubled, x)
}

#[cfg(not(target_arch = "x86_64"))]
unsafe fn scatter_plane_avx2(psi: &DiscoPsi, doubled: &[f32], x: &mut [f32]) {
    scatter_plane::<false>(psi, doubled, x)
}

/// Batch and channels of a fused DISCO convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscoShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
}

fn gemm_threads() -> Parallelism {
    match rayon::current_num_threads() {
        1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// `out [B, out, nlat_r, nlon_r] = weight [out, in * K] . gather(x_b [in, nlat_c, nlon_c])`
/// per image b (no bias).
pub fn conv_forward(psi: &DiscoPsi, s: DiscoShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    assert_eq!(x.len(), s.batch * s.c_in * cols, "x is [B, in, nlat, nlon]");
    assert_eq!(weight.len(), s.c_out * s.c_in * k, "weight is [out, in, K]");
    let mut out = vec![0.0f32; s.batch * s.c_out * rows];
    let mut y = vec![0.0f32; s.c_in * k * rows];
    for b in 0..s.batch {
        gather_into(psi, &x[b * s.c_in * cols..][..s.c_in * cols], &mut y);
        sgemm(
            (s.c_out, rows, s.c_in * k),
            &mut out[b * s.c_out * rows..][..s.c_out * rows],
            rows,
            false,
            (weight, s.c_in * k, 1),
            (&y, rows, 1),
            gemm_threads(),
        );
    }
    out
}

/// Gradients of [`conv_forward`] for x and the weight, each only if wanted.
pub fn conv_backward(
    psi: &DiscoPsi,
    s: DiscoShape,
    x: &[f32],
    weight: &[f32],
    dout: &[f32],
    (want_x, want_weight): (bool, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    let ck = s.c_in * k;
    let mut dx = want_x.then(|| vec![0.0f32; s.batch * s.c_in * cols]);
    let mut dw = want_weight.then(|| vec![0.0f32; s.c_out * ck]);
    let mut buffer = vec![0.0f32; ck * rows];
    for b in 0..s.batch {
        let dout_b = &dout[b * s.c_out * rows..][..s.c_out * rows];
        if let Some(dw) = dw.as_mut() {
            // dW += dout_b [out, rows] . y_b^T [rows, in K].
            gather_into(psi, &x[b * s.c_in * cols..][..s.c_in * cols], &mut buffer);
            sgemm(
                (s.c_out, ck, rows),
                dw,
                ck,
                b > 0,
                (dout_b, rows, 1),
                (&buffer, 1, rows),
                gemm_threads(),
            );
        }
        if let Some(dx) = dx.as_mut() {
            // dy_b = W^T [in K, out] . dout_b, then the adjoint of the gather.
            sgemm(
                (ck, rows, s.c_out),
                &mut buffer,
                rows,
                false,
                (weight, 1, ck),
                (dout_b, rows, 1),
                gemm_threads(),
            );
            scatter_into(psi, &buffer, &mut dx[b * s.c_in * cols..][..s.c_in * cols]);
        }
    }
    (dx, dw)
}

/// `weight [out, in, K]` as `[out, K, in]`: the transposed convolution mixes channels first.
fn out_k_in(weight: &[f32], s: DiscoShape, k: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; weight.len()];
    for o in 0..s.c_out {
        for c in 0..s.c_in {
            for kk in 0..k {
                w[(o * k + kk) * s.c_in + c] = weight[(o * s.c_in + c) * k + kk];
            }
        }
    }
    w
}

/// The transposed convolution: `mixed_b [out * K, rows] = weight' [out K, in] . x_b [in,
/// rows]`, then `out_b = scatter(mixed_b)` onto the column grid (no bias).
pub fn transpose_forward(psi: &DiscoPsi, s: DiscoShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    assert_eq!(x.len(), s.batch * s.c_in * rows, "x is [B, in, nlat, nlon]");
    assert_eq!(weight.len(), s.c_out * s.c_in * k, "weight is [out, in, K]");
    let w = out_k_in(weight, s, k);
    let mut out = vec![0.0f32; s.batch * s.c_out * cols];
    let mut mixed = vec![0.0f32; s.c_out * k * rows];
    for b in 0..s.batch {
        sgemm(
            (s.c_out * k, rows, s.c_in),
            &mut mixed,
            rows,
            false,
            (&w, s.c_in, 1),
            (&x[b * s.c_in * rows..][..s.c_in * rows], rows, 1),
            gemm_threads(),
        );
        scatter_into(
            psi,
            &mixed,
            &mut out[b * s.c_out * cols..][..s.c_out * cols],
        );
    }
    out
}

/// Gradients of [`transpose_forward`] for x and the weight, each only if wanted.
pub fn transpose_backward(
    psi: &DiscoPsi,
    s: DiscoShape,
    x: &[f32],
    weight: &[f32],
    dout: &[f32],
    (want_x, want_weight): (bool, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    let ok = s.c_out * k;
    let w = out_k_in(weight, s, k);
    let mut dx = want_x.then(|| vec![0.0f32; s.batch * s.c_in * rows]);
    let mut dw_oki = want_weight.then(|| vec![0.0f32; ok * s.c_in]);
    let mut dmixed = vec![0.0f32; ok * rows];
    for b in 0..s.batch {
        gather_into(
            psi,
            &dout[b * s.c_out * cols..][..s.c_out * cols],
            &mut dmixed,
        );
        let x_b = &x[b * s.c_in * rows..][..s.c_in * rows];
        if let Some(dw) = dw_oki.as_mut() {
            // dW' [out K, in] += dmixed [out K, rows] . x_b^T [rows, in].
            sgemm(
                (ok, s.c_in, rows),
                dw,
                s.c_in,
                b > 0,
                (&dmixed, rows, 1),
                (x_b, 1, rows),
                gemm_threads(),
            );
        }
        if let Some(dx) = dx.as_mut() {
            // dx_b [in, rows] = W'^T [in, out K] . dmixed.
            sgemm(
                (s.c_in, rows, ok),
                &mut dx[b * s.c_in * rows..][..s.c_in * rows],
                rows,
                false,
                (&w, 1, s.c_in),
                (&dmixed, rows, 1),
                gemm_threads(),
            );
        }
    }
    let dw = dw_oki.map(|d| {
        let mut out = vec![0.0f32; d.len()];
        for o in 0..s.c_out {
            for c in 0..s.c_in {
                for kk in 0..k {
                    out[(o * s.c_in + c) * k + kk] = d[(o * k + kk) * s.c_in + c];
                }
            }
        }
        out
    });
    (dx, dw)
}

/// Plain loops straight from the definitions, in f64, for the tests.
pub mod reference {
    use crate::kernels::DiscoPsi;

    pub fn gather(psi: &DiscoPsi, x: &[f64]) -> Vec<f64> {
        let (n_in, n_out, k_size) = (psi.columns.nlon, psi.rows.nlon, psi.kernel_size());
        let planes = x.len() / psi.columns.points();
        let mut y = vec![0.0; planes * k_size * psi.rows.points()];
        for plane in 0..planes {
            for k in 0..k_size {
                for t in 0..psi.rows.nlat {
                    for p in 0..n_out {
                        let mut sum = 0.0;
                        for e in psi.row(t, k) {
                            let j = (e.lon as usize + p * psi.stride) % n_in;
                            sum += e.value as f64
                                * x[(plane * psi.columns.nlat + e.ring as usize) * n_in + j];
                        }
                        y[((plane * k_size + k) * psi.rows.nlat + t) * n_out + p] = sum;
                    }
                }
            }
        }
        y
    }

    pub fn scatter(psi: &DiscoPsi, y: &[f64]) -> Vec<f64> {
        let (n_in, n_out, k_size) = (psi.columns.nlon, psi.rows.nlon, psi.kernel_size());
        let planes = y.len() / (k_size * psi.rows.points());
        let mut x = vec![0.0; planes * psi.columns.points()];
        for plane in 0..planes {
            for k in 0..k_size {
                for t in 0..psi.rows.nlat {
                    for p in 0..n_out {
                        let v = y[((plane * k_size + k) * psi.rows.nlat + t) * n_out + p];
                        for e in psi.row(t, k) {
                            let j = (e.lon as usize + p * psi.stride) % n_in;
                            x[(plane * psi.columns.nlat + e.ring as usize) * n_in + j] +=
                                e.value as f64 * v;
                        }
                    }
                }
            }
        }
        x
    }
}
