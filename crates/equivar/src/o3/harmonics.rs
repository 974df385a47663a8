//! Real spherical harmonics in e3nn's basis (f64), with their gradients.
//!
//! e3nn's basis is the textbook real basis (no Condon-Shortley phase, components m = -l..l)
//! with the polar axis along y: `Y(x, y, z) = Y_textbook(X, Y, Z)` at `(X, Y, Z) = (z, x, y)`.
//! So degree 1 is the vector itself, `sqrt(3) (x, y, z)`, and the degree-1 Wigner matrix is
//! the rotation matrix.
//!
//! Every degree comes from recurrences, never from per-degree tables: with
//! `C_m + i S_m = (X + i Y)^m` and the associated Legendre polynomials divided by
//! `sin^m(theta)`, written as homogeneous polynomials `P_l^m(Z, r^2)`,
//! - `P_m^m = (2m - 1)!!`, `P_{m+1}^m = (2m + 1) Z P_m^m`,
//! - `P_l^m = ((2l - 1) Z P_{l-1}^m - (l + m - 1) r^2 P_{l-2}^m) / (l - m)`,
//!
//! and `Y_{l,m} = sqrt(2) K_lm P_l^m C_m`, `Y_{l,-m} = sqrt(2) K_lm P_l^m S_m`,
//! `Y_{l,0} = K_l0 P_l^0`, with `K_lm^2 = (2l + 1) (l - m)! / (l + m)!` for e3nn's
//! `component` normalisation. Without input normalisation the harmonics are these
//! homogeneous polynomials of the raw vector, as e3nn's.

use serde::{Deserialize, Serialize};

use super::{Irreps, MAX_L, O3Error};

/// The output scale of the harmonics (e3nn's `normalization`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Normalization {
    /// `|Y^l(x)|^2 = 2l + 1` on the unit sphere: each component has mean square 1 over the
    /// sphere; `Y^0 = 1`. What SEGNN and NequIP use.
    Component,
    /// `|Y^l(x)| = 1` on the unit sphere.
    Norm,
    /// Each component has unit integral of its square over the sphere (e3nn's default).
    Integral,
}

impl Normalization {
    /// The factor from `component` to this normalisation for degree `l`.
    pub(crate) fn factor(self, l: usize) -> f64 {
        match self {
            Normalization::Component => 1.0,
            Normalization::Norm => 1.0 / ((2 * l + 1) as f64).sqrt(),
            Normalization::Integral => 1.0 / (4.0 * std::f64::consts::PI).sqrt(),
        }
    }
}

/// The spherical harmonics of degrees `0..=lmax`, concatenated: `(lmax + 1)^2` numbers per
/// vector, irreps `1x0e+1x1o+1x2e+...`.
#[derive(Clone, Debug, PartialEq)]
pub struct SphericalHarmonics {
    lmax: usize,
    normalization: Normalization,
    normalize: bool,
    /// `(2m - 1)!!` for `m = 0..=lmax`.
    double_factorial: Vec<f64>,
    /// `[l][m]`: the factor in front of `P_l^m C_m` (with the sqrt(2) for m > 0).
    scale: Vec<Vec<f64>>,
}

impl SphericalHarmonics {
    /// `normalize`: evaluate at `x / |x|` (a zero vector then gives `Y^0` and zeros), as
    /// e3nn's `normalize=True`; otherwise the homogeneous polynomials of `x` itself.
    pub fn new(
        lmax: usize,
        normalization: Normalization,
        normalize: bool,
    ) -> Result<Self, O3Error> {
        if lmax > MAX_L {
            return Err(O3Error::DegreeTooHigh {
                l: lmax,
                what: "spherical harmonics",
            });
        }
        let mut double_factorial = vec![1.0; lmax + 1];
        for m in 1..=lmax {
            double_factorial[m] = double_factorial[m - 1] * (2 * m - 1) as f64;
        }
        let scale = (0..=lmax)
            .map(|l| {
                (0..=l)
                    .map(|m| {
                        // (l - m)! / (l + m)! as one product, without the factorials.
                        let ratio: f64 = ((l - m + 1)..=(l + m)).map(|k| 1.0 / k as f64).product();
                        let k = ((2 * l + 1) as f64 * ratio).sqrt() * normalization.factor(l);
                        if m == 0 {
                            k
                        } else {
                            std::f64::consts::SQRT_2 * k
                        }
                    })
                    .collect()
            })
            .collect();
        Ok(SphericalHarmonics {
            lmax,
            normalization,
            normalize,
            double_factorial,
            scale,
        })
    }

    pub fn lmax(&self) -> usize {
        self.lmax
    }

    pub fn normalization(&self) -> Normalization {
        self.normalization
    }

    pub fn dim(&self) -> usize {
        (self.lmax + 1) * (self.lmax + 1)
    }

    /// `1x0e+1x1o+...`: the output irreps for a polar input vector (`1o`).
    pub fn irreps(&self) -> Irreps {
        Irreps::spherical_harmonics(self.lmax)
    }

    /// The harmonics of one vector into `out` (length [`dim`](Self::dim)).
    pub fn eval_into(&self, v: [f64; 3], out: &mut [f64]) {
        self.eval_impl(v, out, None);
    }

    /// The harmonics of one vector.
    pub fn eval(&self, v: [f64; 3]) -> Vec<f64> {
        let mut out = vec![0.0; self.dim()];
        self.eval_impl(v, &mut out, None);
        out
    }

    /// The harmonics of many vectors, vector-major: `out[i * dim + k]`.
    pub fn eval_many(&self, vectors: &[[f64; 3]]) -> Vec<f64> {
        let dim = self.dim();
        let mut out = vec![0.0; vectors.len() * dim];
        for (v, chunk) in vectors.iter().zip(out.chunks_exact_mut(dim)) {
            self.eval_impl(*v, chunk, None);
        }
        out
    }

    /// The harmonics and their gradients: `gradient[k] = dY_k / d(x, y, z)`.
    pub fn eval_with_gradient(&self, v: [f64; 3]) -> (Vec<f64>, Vec<[f64; 3]>) {
        let mut out = vec![0.0; self.dim()];
        let mut gradient = vec![[0.0; 3]; self.dim()];
        self.eval_impl(v, &mut out, Some(&mut gradient));
        (out, gradient)
    }

    fn eval_impl(&self, v: [f64; 3], out: &mut [f64], mut gradient: Option<&mut [[f64; 3]]>) {
        assert_eq!(out.len(), self.dim(), "output length must be (lmax + 1)^2");
        let norm = (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt();
        let (u, r2, dr2) = if self.normalize {
            if norm == 0.0 {
                // e3nn: a zero vector normalises to zero; only degree 0 survives.
                out.fill(0.0);
                out[0] = self.scale[0][0];
                if let Some(g) = gradient {
                    g.fill([0.0; 3]);
                }
                return;
            }
            let u = v.map(|c| c / norm);
            (u, 1.0, u.map(|c| 2.0 * c))
        } else {
            (v, norm * norm, v.map(|c| 2.0 * c))
        };
        self.homogeneous(u, r2, dr2, out, gradient.as_deref_mut());
        if self.normalize
            && let Some(g) = gradient
        {
            // Y(v / |v|): project the polynomial's gradient at u onto the tangent plane.
            for gk in g.iter_mut() {
                let radial = gk[0] * u[0] + gk[1] * u[1] + gk[2] * u[2];
                *gk = [0, 1, 2].map(|i| (gk[i] - radial * u[i]) / norm);
            }
        }
    }

    /// The homogeneous polynomials at `v` with `r2` standing for `|v|^2` (and `dr2` its
    /// gradient); gradients with respect to `(x, y, z)` when asked for.
    fn homogeneous(
        &self,
        v: [f64; 3],
        r2: f64,
        dr2: [f64; 3],
        out: &mut [f64],
        mut gradient: Option<&mut [[f64; 3]]>,
    ) {
        // Textbook coordinates (X, Y, Z) = (z, x, y) and their gradients in (x, y, z).
        let (cx, cy, cz) = (v[2], v[0], v[1]);
        const DX: [f64; 3] = [0.0, 0.0, 1.0];
        const DY: [f64; 3] = [1.0, 0.0, 0.0];
        const DZ: [f64; 3] = [0.0, 1.0, 0.0];
        let axpy =
            |a: f64, x: [f64; 3], b: f64, y: [f64; 3]| [0, 1, 2].map(|i| a * x[i] + b * y[i]);

        // (C_m, S_m) = (X + iY)^m and their gradients.
        let (mut c, mut s) = (1.0, 0.0);
        let (mut dc, mut ds) = ([0.0; 3], [0.0; 3]);
        for m in 0..=self.lmax {
            if m > 0 {
                let (c_next, s_next) = (cx * c - cy * s, cx * s + cy * c);
                let dc_next = [0, 1, 2].map(|i| DX[i] * c + cx * dc[i] - DY[i] * s - cy * ds[i]);
                let ds_next = [0, 1, 2].map(|i| DX[i] * s + cx * ds[i] + DY[i] * c + cy * dc[i]);
                (c, s, dc, ds) = (c_next, s_next, dc_next, ds_next);
            }
            // P_l^m for l = m, m+1, ... by the three-term recurrence.
            let (mut p_prev, mut dp_prev) = (0.0, [0.0; 3]);
            let (mut p, mut dp) = (self.double_factorial[m], [0.0; 3]);
            for l in m..=self.lmax {
                if l > m {
                    let (a, b) = ((2 * l - 1) as f64, (l + m - 1) as f64);
                    let inv = 1.0 / (l - m) as f64;
                    let p_next = (a * cz * p - b * r2 * p_prev) * inv;
                    let dp_next = [0, 1, 2].map(|i| {
                        (a * (DZ[i] * p + cz * dp[i]) - b * (dr2[i] * p_prev + r2 * dp_prev[i]))
                            * inv
                    });
                    (p_prev, dp_prev, p, dp) = (p, dp, p_next, dp_next);
                }
                let k = self.scale[l][m];
                let centre = l * l + l;
                out[centre + m] = k * p * c;
                if m > 0 {
                    out[centre - m] = k * p * s;
                }
                if let Some(g) = gradient.as_deref_mut() {
                    g[centre + m] = axpy(k * c, dp, k * p, dc);
                    if m > 0 {
                        g[centre - m] = axpy(k * s, dp, k * p, ds);
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gradient_matches_central_differences() {
        for normalize in [true, false] {
            let sh = SphericalHarmonics::new(7, Normalization::Component, normalize).unwrap();
            let v = [0.4, -0.7, 1.3];
            let (_, gradient) = sh.eval_with_gradient(v);
            let h = 1e-6;
            for axis in 0..3 {
                let (mut plus, mut minus) = (v, v);
                plus[axis] += h;
                minus[axis] -= h;
                let (yp, ym) = (sh.eval(plus), sh.eval(minus));
                for k in 0..sh.dim() {
                    let fd = (yp[k] - ym[k]) / (2.0 * h);
                    let scale = 1.0 + fd.abs();
                    assert!(
                        (fd - gradient[k][axis]).abs() < 1e-7 * scale,
                        "normalize {normalize} k {k} axis {axis}: {fd} vs {}",
                        gradient[k][axis]
                    );
                }
            }
        }
    }
}
