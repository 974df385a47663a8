//! Plain loops straight from the definitions, in f64, for the tests.

use super::SparsePsi;

pub fn gather(psi: &SparsePsi, x: &[f64]) -> Vec<f64> {
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

pub fn scatter(psi: &SparsePsi, y: &[f64]) -> Vec<f64> {
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
