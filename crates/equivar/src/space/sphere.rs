//! Grids on the sphere S^2 with quadrature weights: `nlat` rings of constant colatitude
//! theta in [0, pi] (north to south), each with `nlon` equally spaced longitudes phi_j =
//! 2 pi j / nlon. Rotations about the polar axis by whole longitude steps map the grid onto
//! itself, so they act exactly ([`SphereGrid::shift_longitude`]).
//!
//! Weights integrate over the sphere: `sum_i sum_j w_i f(theta_i, phi_j) ~ int_{S^2} f`, so
//! [`SphereGrid::weights`] (per ring, already multiplied by the longitude step 2 pi / nlon)
//! sum to `nlon * sum_i w_i = 4 pi`.

use std::f64::consts::PI;
use std::fmt;

use crate::error::{EquivarError, Result};

/// The latitude rule of a grid.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SphereGridKind {
    /// `nlat` equally spaced colatitudes theta_i = pi i / (nlat - 1), poles included, with
    /// Clenshaw-Curtis weights (exact for polynomials in cos theta of degree < nlat).
    Equiangular,
    /// Colatitudes at the roots of the Legendre polynomial P_nlat(cos theta), poles excluded,
    /// with Gauss weights (exact for polynomials in cos theta of degree < 2 nlat).
    GaussLegendre,
}

impl fmt::Display for SphereGridKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SphereGridKind::Equiangular => "equiangular",
            SphereGridKind::GaussLegendre => "gauss-legendre",
        })
    }
}

impl std::str::FromStr for SphereGridKind {
    type Err = EquivarError;
    fn from_str(s: &str) -> Result<Self> {
        match s {
            "equiangular" => Ok(SphereGridKind::Equiangular),
            "gauss-legendre" | "legendre-gauss" => Ok(SphereGridKind::GaussLegendre),
            other => Err(EquivarError::InvalidLayer {
                layer: "sphere grid".into(),
                reason: format!("unknown grid `{other}`; use equiangular or gauss-legendre"),
            }),
        }
    }
}

/// A tensor-product grid on the sphere: signals on it are `[.., nlat, nlon]` arrays.
#[derive(Clone, Debug, PartialEq)]
pub struct SphereGrid {
    pub kind: SphereGridKind,
    pub nlat: usize,
    pub nlon: usize,
    colatitudes: Vec<f64>,
    /// Per ring, including the longitude step 2 pi / nlon.
    weights: Vec<f64>,
}

impl SphereGrid {
    /// A grid of `nlat x nlon` points; equiangular grids need `nlat >= 2` (both poles),
    /// Gauss-Legendre ones `nlat >= 1`, and both `nlon >= 1`.
    pub fn new(kind: SphereGridKind, nlat: usize, nlon: usize) -> Result<Self> {
        let min_lat = match kind {
            SphereGridKind::Equiangular => 2,
            SphereGridKind::GaussLegendre => 1,
        };
        if nlat < min_lat || nlon == 0 {
            return Err(EquivarError::InvalidLayer {
                layer: format!("{kind} sphere grid {nlat}x{nlon}"),
                reason: format!(
                    "needs at least {min_lat} latitude ring(s) and 1 longitude; use e.g. 32x64"
                ),
            });
        }
        let (colatitudes, ring_weights) = match kind {
            SphereGridKind::Equiangular => clenshaw_curtis(nlat),
            SphereGridKind::GaussLegendre => gauss_legendre(nlat),
        };
        let step = 2.0 * PI / nlon as f64;
        Ok(SphereGrid {
            kind,
            nlat,
            nlon,
            colatitudes,
            weights: ring_weights.into_iter().map(|w| w * step).collect(),
        })
    }

    pub fn equiangular(nlat: usize, nlon: usize) -> Result<Self> {
        Self::new(SphereGridKind::Equiangular, nlat, nlon)
    }

    pub fn gauss_legendre(nlat: usize, nlon: usize) -> Result<Self> {
        Self::new(SphereGridKind::GaussLegendre, nlat, nlon)
    }

    /// Colatitude theta of each ring, in [0, pi], north pole first.
    pub fn colatitudes(&self) -> &[f64] {
        &self.colatitudes
    }

    /// Longitude phi_j = 2 pi j / nlon of column `j`.
    pub fn longitude(&self, j: usize) -> f64 {
        2.0 * PI * j as f64 / self.nlon as f64
    }

    pub fn longitudes(&self) -> Vec<f64> {
        (0..self.nlon).map(|j| self.longitude(j)).collect()
    }

    /// Quadrature weight of every point of ring `i` (the points of one ring share it); all
    /// `nlat * nlon` weights sum to 4 pi.
    pub fn weights(&self) -> &[f64] {
        &self.weights
    }

    pub fn points(&self) -> usize {
        self.nlat * self.nlon
    }

    /// Unit vector of point `(ring, column)`.
    pub fn unit_vector(&self, ring: usize, column: usize) -> [f64; 3] {
        let (theta, phi) = (self.colatitudes[ring], self.longitude(column));
        [
            theta.sin() * phi.cos(),
            theta.sin() * phi.sin(),
            theta.cos(),
        ]
    }

    /// Rotates a signal `[.., nlat, nlon]` (row-major, any number of leading planes) about the
    /// polar axis by `steps` longitude steps (2 pi steps / nlon, east positive): the value at
    /// column j moves to column j + steps. Exact: a permutation of the columns.
    ///
    /// # Panics
    /// If `signal`'s length is not a multiple of the grid's points.
    pub fn shift_longitude<T: Copy>(&self, signal: &[T], steps: i64) -> Vec<T> {
        assert_eq!(
            signal.len() % self.points(),
            0,
            "a signal on a {}x{} grid has a multiple of {} values",
            self.nlat,
            self.nlon,
            self.points()
        );
        let n = self.nlon as i64;
        let shift = steps.rem_euclid(n) as usize;
        let mut out = signal.to_vec();
        for (src, dst) in signal
            .chunks_exact(self.nlon)
            .zip(out.chunks_exact_mut(self.nlon))
        {
            dst[shift..].copy_from_slice(&src[..self.nlon - shift]);
            dst[..shift].copy_from_slice(&src[self.nlon - shift..]);
        }
        out
    }

    /// The latitude spacing near the equator: the default DISCO cutoff scale.
    pub fn latitude_spacing(&self) -> f64 {
        match self.kind {
            SphereGridKind::Equiangular => PI / (self.nlat - 1) as f64,
            SphereGridKind::GaussLegendre => PI / self.nlat as f64,
        }
    }
}

/// The rotation matrix of a unit quaternion `[w, x, y, z]` (normalised here). Uniformly
/// random rotations come from quaternions with four independent standard normal entries.
pub fn rotation_from_quaternion(q: [f64; 4]) -> [[f64; 3]; 3] {
    let n = q.iter().map(|v| v * v).sum::<f64>().sqrt();
    let [w, x, y, z] = q.map(|v| v / n);
    [
        [
            1.0 - 2.0 * (y * y + z * z),
            2.0 * (x * y - w * z),
            2.0 * (x * z + w * y),
        ],
        [
            2.0 * (x * y + w * z),
            1.0 - 2.0 * (x * x + z * z),
            2.0 * (y * z - w * x),
        ],
        [
            2.0 * (x * z - w * y),
            2.0 * (y * z + w * x),
            1.0 - 2.0 * (x * x + y * y),
        ],
    ]
}

/// `R^T v`: the point that `R` moves to `v`.
pub fn apply_inverse(r: &[[f64; 3]; 3], v: [f64; 3]) -> [f64; 3] {
    std::array::from_fn(|i| (0..3).map(|k| r[k][i] * v[k]).sum())
}

/// Clenshaw-Curtis nodes theta_i = pi i / n (n = nlat - 1) and weights for int_0^pi f sin:
/// w_i = c_i / n * (1 - sum_{k=1}^{n/2} b_k cos(2 k theta_i) / (4 k^2 - 1)), with c_i = 1 at
/// the poles and 2 elsewhere, b_k = 1 for k = n/2 (n even) and 2 otherwise. They sum to 2.
fn clenshaw_curtis(nlat: usize) -> (Vec<f64>, Vec<f64>) {
    let n = nlat - 1;
    let theta: Vec<f64> = (0..nlat).map(|i| PI * i as f64 / n as f64).collect();
    let weights = theta
        .iter()
        .enumerate()
        .map(|(i, &t)| {
            let c = if i == 0 || i == n { 1.0 } else { 2.0 };
            let sum: f64 = (1..=n / 2)
                .map(|k| {
                    let b = if 2 * k == n { 1.0 } else { 2.0 };
                    let k = k as f64;
                    b * (2.0 * k * t).cos() / (4.0 * k * k - 1.0)
                })
                .sum();
            c / n as f64 * (1.0 - sum)
        })
        .collect();
    (theta, weights)
}

/// Gauss-Legendre nodes x_i (roots of P_n) by Newton's method from Tricomi's estimate, with
/// weights 2 / ((1 - x^2) P_n'(x)^2); returned as colatitudes arccos(x), north first.
pub(crate) fn gauss_legendre(n: usize) -> (Vec<f64>, Vec<f64>) {
    let mut theta = Vec::with_capacity(n);
    let mut weights = Vec::with_capacity(n);
    for i in 0..n {
        // The i-th largest root, north first.
        let mut x = (PI * (i as f64 + 0.75) / (n as f64 + 0.5)).cos();
        let mut derivative = 1.0;
        for _ in 0..100 {
            let (p, dp) = legendre_and_derivative(n, x);
            derivative = dp;
            let dx = p / dp;
            x -= dx;
            if dx.abs() < 1e-15 {
                break;
            }
        }
        let (_, dp) = legendre_and_derivative(n, x);
        derivative = if dp.is_finite() { dp } else { derivative };
        theta.push(x.clamp(-1.0, 1.0).acos());
        weights.push(2.0 / ((1.0 - x * x) * derivative * derivative));
    }
    (theta, weights)
}

/// P_n(x) and P_n'(x) by the three-term recurrence.
fn legendre_and_derivative(n: usize, x: f64) -> (f64, f64) {
    let (mut p0, mut p1) = (1.0, x);
    if n == 0 {
        return (1.0, 0.0);
    }
    for k in 2..=n {
        let k = k as f64;
        let p2 = ((2.0 * k - 1.0) * x * p1 - (k - 1.0) * p0) / k;
        p0 = p1;
        p1 = p2;
    }
    let dp = n as f64 * (x * p1 - p0) / (x * x - 1.0);
    (p1, dp)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Integrates f over the sphere with the grid's weights.
    fn integrate(grid: &SphereGrid, f: impl Fn([f64; 3]) -> f64) -> f64 {
        let mut sum = 0.0;
        for i in 0..grid.nlat {
            for j in 0..grid.nlon {
                sum += grid.weights()[i] * f(grid.unit_vector(i, j));
            }
        }
        sum
    }

    #[test]
    fn weights_integrate_polynomials_exactly() {
        for grid in [
            SphereGrid::equiangular(33, 64).unwrap(),
            SphereGrid::equiangular(8, 16).unwrap(),
            SphereGrid::gauss_legendre(16, 32).unwrap(),
            SphereGrid::gauss_legendre(5, 12).unwrap(),
        ] {
            let total: f64 = grid.weights().iter().sum::<f64>() * grid.nlon as f64;
            assert!((total - 4.0 * PI).abs() < 1e-12, "{:?}: {total}", grid.kind);
            // int z^2 = 4 pi / 3, int z^4 = 4 pi / 5, int x^2 y^2 = 4 pi / 15, int z = 0.
            let z2 = integrate(&grid, |[_, _, z]| z * z);
            assert!(
                (z2 - 4.0 * PI / 3.0).abs() < 1e-12,
                "{:?} z^2 {z2}",
                grid.kind
            );
            let z4 = integrate(&grid, |[_, _, z]| z.powi(4));
            assert!(
                (z4 - 4.0 * PI / 5.0).abs() < 1e-12,
                "{:?} z^4 {z4}",
                grid.kind
            );
            let xy = integrate(&grid, |[x, y, _]| x * x * y * y);
            assert!(
                (xy - 4.0 * PI / 15.0).abs() < 1e-12,
                "{:?} x2y2 {xy}",
                grid.kind
            );
            assert!(integrate(&grid, |[_, _, z]| z).abs() < 1e-12);
        }
    }

    #[test]
    fn colatitudes_run_north_to_south() {
        let eq = SphereGrid::equiangular(5, 8).unwrap();
        assert_eq!(eq.colatitudes()[0], 0.0);
        assert!((eq.colatitudes()[4] - PI).abs() < 1e-15);
        let gl = SphereGrid::gauss_legendre(6, 8).unwrap();
        assert!(gl.colatitudes().windows(2).all(|w| w[0] < w[1]));
        assert!(gl.colatitudes()[0] > 0.0 && gl.colatitudes()[5] < PI);
        // Symmetric about the equator.
        assert!((gl.colatitudes()[0] + gl.colatitudes()[5] - PI).abs() < 1e-13);
    }

    #[test]
    fn longitude_shift_is_a_column_rotation() {
        let grid = SphereGrid::equiangular(3, 4).unwrap();
        let signal: Vec<u32> = (0..24).collect(); // two planes
        let shifted = grid.shift_longitude(&signal, 1);
        assert_eq!(&shifted[..4], &[3, 0, 1, 2]);
        assert_eq!(&shifted[12..16], &[15, 12, 13, 14]);
        assert_eq!(grid.shift_longitude(&shifted, -1), signal);
        assert_eq!(grid.shift_longitude(&signal, 4), signal);
    }

    #[test]
    fn invalid_grids_are_named() {
        let e = SphereGrid::equiangular(1, 8).unwrap_err().to_string();
        assert!(e.contains("at least 2 latitude"), "{e}");
        assert!(SphereGrid::gauss_legendre(4, 0).is_err());
        assert!("healpix".parse::<SphereGridKind>().is_err());
    }
}
