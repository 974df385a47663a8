//! DISCO's sparse contraction on the CPU, plane by plane (a plane is one channel of one
//! image), rayon over the planes.
//!
//! - [`gather`]: `y[k, t, p] = sum_(i, j) psi[t, k, (i, j)] x[i, (j + p s) mod nlon_in]`, a
//!   column-grid plane `[nlat_in, nlon_in]` to K row-grid planes `[K, nlat_out, nlon_out]`.
//! - [`scatter`]: its adjoint, K row-grid planes to one column-grid plane.
//!
//! Each output row is built in blocks of [`LANES`] longitudes held in registers while all of
//! its psi entries stream past, reading the input rows from a copy laid twice end to end, so
//! the wrap-around of the longitude shift needs no branch and every read is contiguous.

use std::cell::RefCell;

use rayon::prelude::*;

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
fn accumulate_row(
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
                    acc[l] += v * src[l];
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
    let (n_in, n_out) = (psi.columns.nlon, psi.rows.nlon);
    let plane_in = psi.columns.points();
    let k_size = psi.kernel_size();
    let plane_out = k_size * psi.rows.points();
    assert_eq!(x.len() % plane_in, 0, "x is [planes, nlat_in, nlon_in]");
    let planes = x.len() / plane_in;
    let mut y = vec![0.0f32; planes * plane_out];
    y.par_chunks_mut(plane_out)
        .zip(x.par_chunks(plane_in))
        .for_each(|(y, x)| {
            DOUBLED.with_borrow_mut(|doubled| {
                double_rows(x, n_in, doubled);
                for k in 0..k_size {
                    for t in 0..psi.rows.nlat {
                        let out = &mut y[(k * psi.rows.nlat + t) * n_out..][..n_out];
                        let terms = psi
                            .row(t, k)
                            .iter()
                            .map(|e| (e.ring as usize * 2 * n_in + e.lon as usize, e.value));
                        accumulate_row(out, terms, doubled, psi.stride);
                    }
                }
            })
        });
    y
}

/// The adjoint of [`gather`]: `y [planes, K, nlat_out, nlon_out]` to `x [planes, nlat_in,
/// nlon_in]`, `x[i, (j + p s) mod nlon_in] += psi[t, k, (i, j)] y[k, t, p]`.
pub fn scatter(psi: &DiscoPsi, y: &[f32]) -> Vec<f32> {
    let (n_in, n_out) = (psi.columns.nlon, psi.rows.nlon);
    let plane_in = psi.columns.points();
    let plane_out = psi.kernel_size() * psi.rows.points();
    assert_eq!(
        y.len() % plane_out,
        0,
        "y is [planes, K, nlat_out, nlon_out]"
    );
    let planes = y.len() / plane_out;
    let s = psi.stride;
    let mut x = vec![0.0f32; planes * plane_in];
    x.par_chunks_mut(plane_in)
        .zip(y.par_chunks(plane_out))
        .for_each(|(x, y)| {
            DOUBLED.with_borrow_mut(|doubled| {
                double_rows(y, n_out, doubled);
                for i in 0..psi.columns.nlat {
                    let out = &mut x[i * n_in..][..n_in];
                    let entries = psi.ring(i);
                    if s == 1 {
                        // x[i, q] = sum_e v_e y[row_e, q - j_e]: row q - j + n of the doubled copy.
                        let terms = entries.iter().map(|e| {
                            (e.row as usize * 2 * n_out + n_out - e.lon as usize, e.value)
                        });
                        accumulate_row(out, terms, doubled, 1);
                    } else {
                        // Only q = j + p s receive from entry e: p = (q - j) / s.
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
            })
        });
    x
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
