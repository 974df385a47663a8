//! Filter bases on a geodesic cap of radius `cutoff` around the north pole, for DISCO
//! convolutions (Ocampo, Price and McEwen 2023; DESIGN.md 2.4). A point of the cap is given by
//! its geodesic distance r from the pole (0 <= r <= cutoff) and its azimuth phi in the
//! filter's frame; a filter is a learned combination `sum_k w_k f_k(r, phi)`.

use std::f64::consts::PI;

use crate::error::{EquivarError, Result};

/// A family of basis functions on the cap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum FilterBasis {
    /// Tensor-product hat functions (the torch-harmonics default). `radial` must be odd: with
    /// dr = 2 cutoff / (radial + 1), one isotropic hat `max(0, 1 - r/dr)` sits at the centre,
    /// and each ring i = 1..=radial/2 at radius i dr carries `azimuthal` functions
    /// `max(0, 1 - |r - i dr| / dr) * max(0, 1 - d(phi, phi_j) / dphi)` centred on the
    /// azimuths phi_j = 2 pi j / azimuthal (dphi = 2 pi / azimuthal, d the distance on the
    /// circle; with one azimuth the ring is isotropic). Size: 1 + (radial / 2) * azimuthal.
    /// Every function is >= 0, the centre one is 1 at r = 0 and all vanish at r = cutoff.
    PiecewiseLinear { radial: usize, azimuthal: usize },
    /// A Hann window in r times radial cosines and circular harmonics:
    /// `cos^2(pi r / (2 cutoff)) * cos(n pi r / cutoff) * a_m(phi)` for n = 0..radial and
    /// a_0 = 1, a_{2m-1} = cos(m phi), a_{2m} = sin(m phi) (m = 1..=azimuthal/2);
    /// `azimuthal` must be odd. Size: radial * azimuthal. Smooth, signed, zero at the rim.
    Harmonic { radial: usize, azimuthal: usize },
}

impl FilterBasis {
    pub fn piecewise_linear(radial: usize, azimuthal: usize) -> Result<Self> {
        let basis = FilterBasis::PiecewiseLinear { radial, azimuthal };
        basis.validate()?;
        Ok(basis)
    }

    pub fn harmonic(radial: usize, azimuthal: usize) -> Result<Self> {
        let basis = FilterBasis::Harmonic { radial, azimuthal };
        basis.validate()?;
        Ok(basis)
    }

    pub fn validate(&self) -> Result<()> {
        let invalid = |reason: String| {
            Err(EquivarError::InvalidLayer {
                layer: format!("{self:?}"),
                reason,
            })
        };
        match *self {
            FilterBasis::PiecewiseLinear { radial, azimuthal } => {
                if radial % 2 == 0 || azimuthal == 0 {
                    return invalid(format!(
                        "a piecewise-linear basis needs an odd number of radial collocation \
                         points (the centre is one; got {radial}) and at least one azimuth \
                         (got {azimuthal}); e.g. kernel shape (3, 3)"
                    ));
                }
            }
            FilterBasis::Harmonic { radial, azimuthal } => {
                if radial == 0 || azimuthal % 2 == 0 {
                    return invalid(format!(
                        "a harmonic basis needs at least one radial order (got {radial}) and an \
                         odd number of azimuthal functions (1, cos, sin pairs; got {azimuthal})"
                    ));
                }
            }
        }
        Ok(())
    }

    /// Number of basis functions.
    pub fn size(&self) -> usize {
        match *self {
            FilterBasis::PiecewiseLinear { radial, azimuthal } => 1 + (radial / 2) * azimuthal,
            FilterBasis::Harmonic { radial, azimuthal } => radial * azimuthal,
        }
    }

    /// Whether every function depends on r only (then DISCO convolutions are equivariant to
    /// all rotations of the sphere, not only those about the polar axis, in the limit).
    pub fn is_isotropic(&self) -> bool {
        match *self {
            FilterBasis::PiecewiseLinear { azimuthal, .. }
            | FilterBasis::Harmonic { azimuthal, .. } => azimuthal == 1,
        }
    }

    /// Calls `visit(k, value)` for every basis function k that is non-zero at `(r, phi)`
    /// (phi in radians, any range) on a cap of radius `cutoff`; nothing outside the cap.
    pub fn for_each_nonzero(
        &self,
        r: f64,
        phi: f64,
        cutoff: f64,
        mut visit: impl FnMut(usize, f64),
    ) {
        if !(0.0..=cutoff).contains(&r) {
            return;
        }
        match *self {
            FilterBasis::PiecewiseLinear { radial, azimuthal } => {
                let dr = 2.0 * cutoff / (radial + 1) as f64;
                let centre = 1.0 - r / dr;
                if centre > 0.0 {
                    visit(0, centre);
                }
                let dphi = 2.0 * PI / azimuthal as f64;
                for ring in 1..=radial / 2 {
                    let radial_hat = 1.0 - (r - ring as f64 * dr).abs() / dr;
                    if radial_hat <= 0.0 {
                        continue;
                    }
                    for j in 0..azimuthal {
                        let angular_hat = if azimuthal == 1 {
                            1.0
                        } else {
                            1.0 - circle_distance(phi, j as f64 * dphi) / dphi
                        };
                        if angular_hat > 0.0 {
                            visit(1 + (ring - 1) * azimuthal + j, radial_hat * angular_hat);
                        }
                    }
                }
            }
            FilterBasis::Harmonic { radial, azimuthal } => {
                let window = (PI * r / (2.0 * cutoff)).cos().powi(2);
                if window <= 0.0 {
                    return;
                }
                for n in 0..radial {
                    let radial_part = window * (n as f64 * PI * r / cutoff).cos();
                    for a in 0..azimuthal {
                        let m = a.div_ceil(2);
                        let angular = match a {
                            0 => 1.0,
                            _ if a % 2 == 1 => (m as f64 * phi).cos(),
                            _ => (m as f64 * phi).sin(),
                        };
                        let value = radial_part * angular;
                        if value != 0.0 {
                            visit(n * azimuthal + a, value);
                        }
                    }
                }
            }
        }
    }

    /// All basis values at `(r, phi)` as a dense vector (zeros included).
    pub fn values(&self, r: f64, phi: f64, cutoff: f64) -> Vec<f64> {
        let mut v = vec![0.0; self.size()];
        self.for_each_nonzero(r, phi, cutoff, |k, value| v[k] = value);
        v
    }
}

/// Distance between two angles on the circle, in [0, pi].
fn circle_distance(a: f64, b: f64) -> f64 {
    let d = (a - b).rem_euclid(2.0 * PI);
    d.min(2.0 * PI - d)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Integral of f_k over the cap (area element sin r dr dphi), by the midpoint rule.
    fn cap_integrals(basis: FilterBasis, cutoff: f64, absolute: bool) -> Vec<f64> {
        let (nr, nphi) = (400, 720);
        let (dr, dphi) = (cutoff / nr as f64, 2.0 * PI / nphi as f64);
        let mut sums = vec![0.0; basis.size()];
        for i in 0..nr {
            let r = (i as f64 + 0.5) * dr;
            for j in 0..nphi {
                let phi = (j as f64 + 0.5) * dphi;
                basis.for_each_nonzero(r, phi, cutoff, |k, v| {
                    sums[k] += if absolute { v.abs() } else { v } * r.sin() * dr * dphi
                });
            }
        }
        sums
    }

    #[test]
    fn piecewise_linear_support_and_partition_of_unity() {
        let basis = FilterBasis::piecewise_linear(3, 3).unwrap();
        assert_eq!(basis.size(), 4);
        let cutoff = 0.1;
        // Centre: 1 at the pole, only the centre function.
        assert_eq!(basis.values(0.0, 0.3, cutoff), vec![1.0, 0.0, 0.0, 0.0]);
        // Nothing at or beyond the rim.
        assert!(basis.values(cutoff, 1.0, cutoff).iter().all(|v| *v == 0.0));
        assert!(basis.values(0.2, 1.0, cutoff).iter().all(|v| *v == 0.0));
        // Inside the cap the hats sum to 1 up to the ring radius (a partition of unity).
        for &(r, phi) in &[(0.01, 0.4), (0.03, 2.0), (0.05, 5.9), (0.049, 3.3)] {
            let sum: f64 = basis.values(r, phi, cutoff).iter().sum();
            assert!((sum - 1.0).abs() < 1e-12, "sum {sum} at r {r}");
            assert!(basis.values(r, phi, cutoff).iter().all(|v| *v >= 0.0));
        }
        // Azimuthal hat j = 1 peaks at 2 pi / 3 on the ring.
        let v = basis.values(0.05, 2.0 * PI / 3.0, cutoff);
        assert!((v[2] - 1.0).abs() < 1e-12 && v[1].abs() < 1e-12, "{v:?}");
    }

    #[test]
    fn piecewise_linear_integrals_match_their_closed_form() {
        // Flat-cap limit: the centre hat integrates to pi dr^2 / 3 (a cone of radius dr), each
        // of the 3 ring wedges to a third of the ring's 2 pi dr^2 (an annulus hat at radius dr:
        // 2 pi int_0^{2dr} (1 - |r - dr|/dr) r dr = 2 pi dr^2).
        let cutoff = 0.01;
        let dr = cutoff / 2.0;
        let got = cap_integrals(FilterBasis::piecewise_linear(3, 3).unwrap(), cutoff, false);
        let want = [
            PI * dr * dr / 3.0,
            2.0 * PI * dr * dr / 3.0,
            2.0 * PI * dr * dr / 3.0,
            2.0 * PI * dr * dr / 3.0,
        ];
        for (g, w) in got.iter().zip(want) {
            assert!((g / w - 1.0).abs() < 2e-3, "{got:?} vs {want:?}");
        }
    }

    #[test]
    fn harmonic_basis_is_smooth_zero_at_the_rim_and_orthogonal_in_phi() {
        let basis = FilterBasis::harmonic(2, 3).unwrap();
        assert_eq!(basis.size(), 6);
        let cutoff = 0.2;
        assert!(
            basis
                .values(cutoff, 0.7, cutoff)
                .iter()
                .all(|v| v.abs() < 1e-15)
        );
        assert_eq!(basis.values(0.0, 0.0, cutoff)[0], 1.0);
        // cos and sin parts integrate to zero over the cap; the isotropic ones do not.
        let signed = cap_integrals(basis, cutoff, false);
        let absolute = cap_integrals(basis, cutoff, true);
        for k in [1, 2, 4, 5] {
            assert!(signed[k].abs() < 1e-9 * absolute[k], "k {k}: {signed:?}");
        }
        assert!(signed[0] > 0.0);
    }

    #[test]
    fn invalid_shapes_are_named() {
        let e = FilterBasis::piecewise_linear(2, 3).unwrap_err().to_string();
        assert!(e.contains("odd number of radial"), "{e}");
        assert!(FilterBasis::harmonic(2, 2).is_err());
        assert!(FilterBasis::piecewise_linear(3, 0).is_err());
    }
}
