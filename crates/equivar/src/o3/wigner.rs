//! Wigner D matrices in e3nn's real basis, computed from the spherical harmonics.
//!
//! The degree-l harmonics span an irrep, so `Y^l(R x) = D^l(R) Y^l(x)` defines `D^l(R)`
//! uniquely, and with `component` normalisation (`mean over the sphere of Y_a Y_b = delta`)
//! `D_ab = mean over the sphere of Y_a(R x) Y_b(x)`. The integrand is a polynomial of degree
//! 2l, so a product rule of `l + 1` Gauss-Legendre latitudes and `2l + 2` longitudes gives
//! it to rounding. These are the matrices of e3nn's `wigner_D` and `D_from_matrix`:
//! `D(R1 R2) = D(R1) D(R2)`, orthogonal, and `D^1(R) = R`.

use nalgebra::DMatrix;

use super::harmonics::{Normalization, SphericalHarmonics};
use super::rotation::{self, Mat3};
use super::{Irreps, MAX_L, O3Error, Parity};
use crate::space::gauss_legendre;

/// `D^l(R)` for every degree `l` in `0..=lmax`, for a proper rotation `R`.
pub fn wigner_d_up_to(lmax: usize, r: &Mat3) -> Result<Vec<DMatrix<f64>>, O3Error> {
    if lmax > MAX_L {
        return Err(O3Error::DegreeTooHigh {
            l: lmax,
            what: "Wigner D matrices",
        });
    }
    let det = rotation::determinant(r);
    if (det - 1.0).abs() > 1e-6 {
        return Err(O3Error::NotARotation { det });
    }
    let sh = SphericalHarmonics::new(lmax, Normalization::Component, false)?;
    let (theta, weights) = gauss_legendre(lmax + 1);
    let longitudes = 2 * lmax + 2;
    let mut out: Vec<DMatrix<f64>> = (0..=lmax)
        .map(|l| DMatrix::zeros(2 * l + 1, 2 * l + 1))
        .collect();
    let (mut y, mut y_rot) = (vec![0.0; sh.dim()], vec![0.0; sh.dim()]);
    for (t, w) in theta.iter().zip(&weights) {
        // Mean over the sphere: the latitude weights sum to 2, the longitudes are equal.
        let weight = w / 2.0 / longitudes as f64;
        let (st, ct) = t.sin_cos();
        for j in 0..longitudes {
            let phi = std::f64::consts::TAU * j as f64 / longitudes as f64;
            let x = [st * phi.cos(), st * phi.sin(), ct];
            sh.eval_into(x, &mut y);
            sh.eval_into(rotation::apply(r, x), &mut y_rot);
            for (l, d) in out.iter_mut().enumerate() {
                let base = l * l;
                for a in 0..2 * l + 1 {
                    let ya = y_rot[base + a] * weight;
                    for b in 0..2 * l + 1 {
                        d[(a, b)] += ya * y[base + b];
                    }
                }
            }
        }
    }
    Ok(out)
}

/// `D^l(R)` for a proper rotation `R`.
pub fn wigner_d(l: usize, r: &Mat3) -> Result<DMatrix<f64>, O3Error> {
    Ok(wigner_d_up_to(l, r)?.swap_remove(l))
}

/// `D^l(Y(alpha) X(beta) Y(gamma))`: e3nn's `wigner_D(l, alpha, beta, gamma)`.
pub fn wigner_d_from_angles(
    l: usize,
    alpha: f64,
    beta: f64,
    gamma: f64,
) -> Result<DMatrix<f64>, O3Error> {
    wigner_d(l, &rotation::angles_to_matrix(alpha, beta, gamma))
}

impl Irreps {
    /// The block-diagonal matrix by which an orthogonal matrix `Q` acts on features of these
    /// irreps. For an improper `Q` (det -1) each block is `p D(-Q)`, as e3nn's
    /// `D_from_matrix`.
    pub fn d_from_matrix(&self, q: &Mat3) -> Result<DMatrix<f64>, O3Error> {
        let det = rotation::determinant(q);
        let improper = det < 0.0;
        let proper = if improper { rotation::negate(q) } else { *q };
        let lmax = self.lmax().unwrap_or(0);
        let ds = wigner_d_up_to(lmax, &proper)?;
        let mut out = DMatrix::zeros(self.dim(), self.dim());
        let mut offset = 0;
        for block in self.blocks() {
            let sign = if improper && block.ir.p == Parity::Odd {
                -1.0
            } else {
                1.0
            };
            let d = &ds[block.ir.l];
            let n = block.ir.dim();
            for _ in 0..block.mul {
                out.view_mut((offset, offset), (n, n))
                    .copy_from(&(d * sign));
                offset += n;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn degree_one_is_the_rotation_matrix() {
        for r in rotation::random_rotations(5, 3) {
            let d = wigner_d(1, &r).unwrap();
            for i in 0..3 {
                for j in 0..3 {
                    assert!((d[(i, j)] - r[i][j]).abs() < 1e-13);
                }
            }
        }
    }

    #[test]
    fn improper_matrices_and_reflections_are_refused_or_handled() {
        let mirror = [[1.0, 0.0, 0.0], [0.0, 1.0, 0.0], [0.0, 0.0, -1.0]];
        assert!(
            wigner_d(2, &mirror)
                .unwrap_err()
                .to_string()
                .contains("det")
        );
        let irreps: Irreps = "1x0o+1x1o".parse().unwrap();
        let d = irreps
            .d_from_matrix(&rotation::negate(&rotation::IDENTITY))
            .unwrap();
        for k in 0..4 {
            assert!((d[(k, k)] + 1.0).abs() < 1e-13);
        }
    }
}
