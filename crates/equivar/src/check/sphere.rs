//! Measuring the equivariance of DISCO convolutions on the sphere.
//!
//! - Polar rotations by whole longitude steps permute the grid; the layer commutes with them
//!   exactly (up to float rounding).
//! - General rotations Q in SO(3) do not map the grid to itself. For a smooth band-limited
//!   input f (a random polynomial in x, y, z of degree [`SIGNAL_DEGREE`]) the layer applied to
//!   the rotated samples, `L(f o Q^T)` on the grid, is compared with the layer's output at the
//!   rotated points, `L(f)(Q^T w)`, which the DISCO definition gives at any point of the
//!   sphere (same quadrature, filter centred there). The relative error, in the grid's
//!   quadrature-weighted L2 norm, is discretisation error: it falls as the grid is refined.
//!   For isotropic filters both sides converge to the same spherical convolution; filters
//!   with azimuthal parts are oriented by the longitude frame, so for them only polar
//!   rotations are symmetries and the error stays finite.

use std::f64::consts::PI;
use std::fmt;

use burn::tensor::{Device, Tensor, TensorData};
use rayon::prelude::*;
use serde::{Deserialize, Serialize};

use crate::error::{EquivarError, Result};
use crate::kernels::FilterBasis;
use crate::nn::{DiscoConfig, DiscoConvS2};
use crate::ops::Kernels;
use crate::space::{SphereGrid, apply_inverse, rotation_from_quaternion};

/// Degree of the random polynomial input signals.
pub const SIGNAL_DEGREE: usize = 6;

/// The filters' cap radius in the check, in radians, the same on every grid: one continuous
/// operator whose quadrature the finer grids refine (two latitude spacings at 32x64, 16 at
/// 256x512). With the layers' default, one spacing of each grid, the filter shrinks with the
/// grid and its smallest basis function can hold a single point or none, so the error would
/// measure sampling luck, not convergence.
pub const CHECK_CUTOFF: f64 = 0.2;

/// The DISCO layers `equivar check` knows, by name: `(name, basis, description)`.
pub fn disco_models() -> Vec<(&'static str, FilterBasis, &'static str)> {
    vec![
        (
            "disco-s2",
            FilterBasis::PiecewiseLinear {
                radial: 3,
                azimuthal: 3,
            },
            "DISCO conv 2 -> 3 channels, piecewise-linear basis (3, 3) (anisotropic)",
        ),
        (
            "disco-s2-iso",
            FilterBasis::PiecewiseLinear {
                radial: 3,
                azimuthal: 1,
            },
            "DISCO conv 2 -> 3 channels, piecewise-linear basis (3, 1) (isotropic)",
        ),
    ]
}

/// Errors of one layer on one grid.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GridError {
    /// `[nlat, nlon]`.
    pub grid: [usize; 2],
    /// Max relative error under rotations about the polar axis by 1 and 5 longitude steps.
    pub polar_rel_error: f64,
    /// Mean over the random rotations of the weighted-L2 relative error.
    pub so3_rel_error: f64,
    pub so3_rel_errors: Vec<f64>,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct SphereEquivarianceReport {
    pub model: String,
    pub description: String,
    pub isotropic: bool,
    pub signal: String,
    pub cutoff: String,
    pub grids: Vec<GridError>,
}

impl fmt::Display for SphereEquivarianceReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}: {}", self.model, self.description)?;
        writeln!(f, "input: {}; cutoff: {}", self.signal, self.cutoff)?;
        writeln!(
            f,
            "{:>10} {:>18} {:>22}",
            "grid", "polar rel error", "SO(3) rel error (L2)"
        )?;
        for g in &self.grids {
            writeln!(
                f,
                "{:>10} {:>18.3e} {:>22.3e}",
                format!("{}x{}", g.grid[0], g.grid[1]),
                g.polar_rel_error,
                g.so3_rel_error
            )?;
        }
        if !self.isotropic {
            write!(
                f,
                "(anisotropic filters are oriented by the longitude frame: only polar rotations \
                 are exact symmetries; the SO(3) error does not vanish with resolution)"
            )?;
        }
        Ok(())
    }
}

/// A small deterministic generator (xorshift), so reports are reproducible from the seed.
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Self {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }
    fn uniform(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }
    fn normal(&mut self) -> f64 {
        let (u, v) = (self.uniform().max(1e-300), self.uniform());
        (-2.0 * u.ln()).sqrt() * (2.0 * PI * v).cos()
    }
}

/// A uniformly random rotation (from a random unit quaternion).
fn random_rotation(rng: &mut Rng) -> [[f64; 3]; 3] {
    rotation_from_quaternion([rng.normal(), rng.normal(), rng.normal(), rng.normal()])
}

/// A random polynomial of degree <= SIGNAL_DEGREE in (x, y, z): a band-limited function.
struct Polynomial {
    terms: Vec<([i32; 3], f64)>,
}

impl Polynomial {
    fn random(rng: &mut Rng) -> Self {
        let d = SIGNAL_DEGREE as i32;
        let mut terms = Vec::new();
        for a in 0..=d {
            for b in 0..=d - a {
                for c in 0..=d - a - b {
                    terms.push(([a, b, c], rng.normal()));
                }
            }
        }
        Polynomial { terms }
    }
    fn eval(&self, v: [f64; 3]) -> f64 {
        self.terms
            .iter()
            .map(|([a, b, c], w)| w * v[0].powi(*a) * v[1].powi(*b) * v[2].powi(*c))
            .sum()
    }
}

/// The layer's output at any point: the DISCO definition with the filter centred at unit
/// vector `centre` (frame R_z(phi) R_y(theta)), on the layer's input grid and quadrature.
fn output_at(
    layer: &DiscoConvS2,
    weight: &[f64],
    bias: &[f64],
    signal: &[f64],
    centre: [f64; 3],
) -> Vec<f64> {
    let psi = &layer.psi;
    let (grid, basis, cutoff) = (&psi.columns, psi.basis, psi.cutoff);
    let k_size = basis.size();
    let channels = signal.len() / grid.points();
    let theta = centre[2].clamp(-1.0, 1.0).acos();
    let phi = centre[1].atan2(centre[0]);
    let (sp, cp) = phi.sin_cos();
    let (st, ct) = theta.sin_cos();
    let cos_cutoff = cutoff.cos();
    let mut sums = vec![0.0; channels * k_size];
    let mut norms = vec![0.0; k_size];
    let step = 2.0 * PI / grid.nlon as f64;
    for (i, &theta_i) in grid.colatitudes().iter().enumerate() {
        if (theta_i - theta).abs() > cutoff {
            continue;
        }
        // Longitudes within the cap: cos d = cos t cos t_i + sin t sin t_i cos(dphi) >= cos c.
        let denominator = st * theta_i.sin();
        let half_width = if denominator <= 1e-12 {
            PI
        } else {
            ((cos_cutoff - ct * theta_i.cos()) / denominator)
                .clamp(-1.0, 1.0)
                .acos()
        };
        let (first, last) = if half_width >= PI {
            (0, grid.nlon as i64 - 1)
        } else {
            (
                ((phi - half_width) / step).floor() as i64 - 1,
                ((phi + half_width) / step).ceil() as i64 + 1,
            )
        };
        let span = (last - first + 1).min(grid.nlon as i64);
        for jj in first..first + span {
            let j = jj.rem_euclid(grid.nlon as i64) as usize;
            let v = grid.unit_vector(i, j);
            if v[0] * centre[0] + v[1] * centre[1] + v[2] * centre[2] < cos_cutoff {
                continue;
            }
            let (x1, y1, z1) = (cp * v[0] + sp * v[1], -sp * v[0] + cp * v[1], v[2]);
            let (x2, y2, z2) = (ct * x1 - st * z1, y1, st * x1 + ct * z1);
            let r = z2.clamp(-1.0, 1.0).acos();
            let q = grid.weights()[i];
            basis.for_each_nonzero(r, y2.atan2(x2), cutoff, |k, value| {
                norms[k] += value.abs() * q;
                for c in 0..channels {
                    sums[c * k_size + k] +=
                        value * q * signal[c * grid.points() + i * grid.nlon + j];
                }
            });
        }
    }
    let out_channels = bias.len();
    (0..out_channels)
        .map(|o| {
            let mut total = bias[o];
            for c in 0..channels {
                for k in 0..k_size {
                    if norms[k] > 0.0 {
                        total += weight[(o * channels + c) * k_size + k] * sums[c * k_size + k]
                            / norms[k];
                    }
                }
            }
            total
        })
        .collect()
}

fn host<const D: usize>(t: Tensor<D>) -> Vec<f64> {
    t.into_data()
        .convert::<f64>()
        .try_to_vec::<f64>()
        .expect("f64 after convert")
}

/// Measures `model` (see [`disco_models`]) on equiangular `nlat x 2 nlat` grids, on `device`
/// with `kernels`.
pub fn disco_equivariance(
    model: &str,
    grids: &[[usize; 2]],
    rotations: usize,
    seed: u64,
    device: &Device,
    kernels: Kernels,
) -> Result<SphereEquivarianceReport> {
    let (name, basis, description) = disco_models()
        .into_iter()
        .find(|(name, _, _)| *name == model)
        .ok_or_else(|| EquivarError::UnknownModel {
            name: model.to_string(),
            known: disco_models()
                .iter()
                .map(|m| m.0)
                .collect::<Vec<_>>()
                .join(", "),
        })?;
    let (c_in, c_out) = (2, 3);
    let mut rows = Vec::new();
    for &[nlat, nlon] in grids {
        device.seed(seed);
        let grid = SphereGrid::equiangular(nlat, nlon)?;
        let mut layer = DiscoConfig::new(c_in, c_out, grid.clone(), grid.clone(), basis)
            .with_cutoff(CHECK_CUTOFF)
            .init_conv(device)?;
        layer.kernels = kernels;
        let weight = host(layer.weight.val());
        let bias: Vec<f64> = vec![0.0; c_out];
        let mut rng = Rng::new(seed ^ 0x5EED_0F5A);
        let signals: Vec<Polynomial> = (0..c_in).map(|_| Polynomial::random(&mut rng)).collect();
        let sample = |rotation: Option<&[[f64; 3]; 3]>| -> Vec<f64> {
            let mut v = Vec::with_capacity(c_in * grid.points());
            for s in &signals {
                for i in 0..nlat {
                    for j in 0..nlon {
                        let w = grid.unit_vector(i, j);
                        v.push(s.eval(rotation.map_or(w, |q| apply_inverse(q, w))));
                    }
                }
            }
            v
        };
        let run = |v: &[f64]| -> Vec<f64> {
            let data: Vec<f32> = v.iter().map(|x| *x as f32).collect();
            host(layer.forward(Tensor::from_data(
                TensorData::new(data, [1, c_in, nlat, nlon]),
                device,
            )))
        };

        // Polar rotations: exact.
        let x = sample(None);
        let y = run(&x);
        let mut polar: f64 = 0.0;
        for steps in [1, 5] {
            let shifted = run(&grid.shift_longitude(&x, steps));
            let want = grid.shift_longitude(&y, steps);
            let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
            let diff = shifted
                .iter()
                .zip(&want)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            polar = polar.max(diff / scale);
        }

        // General rotations.
        let weighted_norm = |v: &[f64]| -> f64 {
            v.chunks(grid.points())
                .map(|plane| {
                    plane
                        .iter()
                        .enumerate()
                        .map(|(p, a)| grid.weights()[p / nlon] * a * a)
                        .sum::<f64>()
                })
                .sum::<f64>()
                .sqrt()
        };
        let mut errors = Vec::new();
        for _ in 0..rotations {
            let q = random_rotation(&mut rng);
            let rotated_first = run(&sample(Some(&q)));
            let points: Vec<(usize, usize)> = (0..nlat)
                .flat_map(|i| (0..nlon).map(move |j| (i, j)))
                .collect();
            let at_points: Vec<Vec<f64>> = points
                .par_iter()
                .map(|&(i, j)| {
                    let centre = apply_inverse(&q, grid.unit_vector(i, j));
                    output_at(&layer, &weight, &bias, &x, centre)
                })
                .collect();
            let mut want = vec![0.0; c_out * grid.points()];
            for (p, values) in at_points.iter().enumerate() {
                for (o, v) in values.iter().enumerate() {
                    want[o * grid.points() + p] = *v;
                }
            }
            let diff: Vec<f64> = rotated_first
                .iter()
                .zip(&want)
                .map(|(a, b)| a - b)
                .collect();
            errors.push(weighted_norm(&diff) / weighted_norm(&want));
        }
        rows.push(GridError {
            grid: [nlat, nlon],
            polar_rel_error: polar,
            so3_rel_error: errors.iter().sum::<f64>() / errors.len().max(1) as f64,
            so3_rel_errors: errors,
        });
    }
    Ok(SphereEquivarianceReport {
        model: name.to_string(),
        description: description.to_string(),
        isotropic: basis.is_isotropic(),
        signal: format!(
            "2 channels of random polynomials of degree {SIGNAL_DEGREE} in (x, y, z); {rotations} \
             random rotations (seed {seed})"
        ),
        cutoff: format!("{CHECK_CUTOFF} rad on every grid"),
        grids: rows,
    })
}
