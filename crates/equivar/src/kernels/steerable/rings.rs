//! The radial part of a steerable kernel: Gaussian rings `exp(-(r - r_i)^2 / (2 sigma_i^2))`,
//! each with the largest angular frequency it may carry (DESIGN.md 2.6). The defaults are escnn
//! 1.0's (`compute_basis_params` with its default cutoff `_manual_fco1`), so that bases have
//! the same size as escnn's; every part can be set.

use serde::{Deserialize, Serialize};

use crate::error::EquivarError;

/// One ring of radial support; distances in pixels of the (undilated) kernel grid times the
/// dilation, as the sampling points.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Ring {
    pub radius: f64,
    pub sigma: f64,
    /// Harmonics of frequency up to this (inclusive, compared as a real number) are kept.
    pub max_frequency: f64,
}

impl Ring {
    /// The radial profile at distance `r`.
    pub fn profile(&self, r: f64) -> f64 {
        let d = r - self.radius;
        (-0.5 * d * d / (self.sigma * self.sigma)).exp()
    }
}

fn invalid(reason: String) -> EquivarError {
    EquivarError::InvalidBasis { reason }
}

/// escnn 1.0's rings for a `kernel_size` filter at `dilation`: radii `0, 1, ..., (k-1)/2`
/// (`ceil(k/2)` of them, evenly spread) times the dilation; sigma 0.6, 0.4 on the outermost
/// ring and 0.005 at the centre; frequency cutoff 0 at the centre, `min(2r, 2)` on a ring at
/// radius `k/2` (integer division) and `min(2r, 2r - (r+1) mod 2)` elsewhere.
pub fn default_rings(kernel_size: usize, dilation: usize) -> Result<Vec<Ring>, EquivarError> {
    if kernel_size == 0 || dilation == 0 {
        return Err(invalid(format!(
            "kernel size {kernel_size} and dilation {dilation} must be at least 1"
        )));
    }
    let count = kernel_size.div_ceil(2);
    let last = ((kernel_size - 1) / 2) as f64;
    let border = (kernel_size / 2) as f64;
    let radii: Vec<f64> = (0..count)
        .map(|i| {
            let t = if count == 1 {
                0.0
            } else {
                last * i as f64 / (count - 1) as f64
            };
            t * dilation as f64
        })
        .collect();
    Ok(radii
        .iter()
        .enumerate()
        .map(|(i, &radius)| {
            let sigma = if radius == 0.0 {
                0.005
            } else if i + 1 == count {
                0.4
            } else {
                0.6
            };
            let max_frequency = if radius == 0.0 {
                0.0
            } else if radius == border {
                (2.0 * radius).min(2.0)
            } else {
                (2.0 * radius).min(2.0 * radius - (radius + 1.0).rem_euclid(2.0))
            };
            Ring {
                radius,
                sigma,
                max_frequency,
            }
        })
        .collect())
}

/// Checks rings given by a user for a `kernel_size` filter at `dilation`: radii within the
/// kernel's reach (half its diagonal), widths and cutoffs positive or zero as they must be.
pub fn validate_rings(
    rings: &[Ring],
    kernel_size: usize,
    dilation: usize,
) -> Result<(), EquivarError> {
    if rings.is_empty() {
        return Err(invalid("no rings: give at least one".to_string()));
    }
    let reach = dilation as f64 * (kernel_size as f64 - 1.0) / 2.0 * std::f64::consts::SQRT_2;
    for (i, ring) in rings.iter().enumerate() {
        if !(ring.radius >= 0.0 && ring.radius <= reach + 1e-9) {
            return Err(invalid(format!(
                "ring {i} has radius {}; a {kernel_size}x{kernel_size} kernel at dilation \
                 {dilation} reaches {reach:.3}",
                ring.radius
            )));
        }
        if !(ring.sigma > 0.0 && ring.sigma.is_finite()) {
            return Err(invalid(format!(
                "ring {i} has width (sigma) {}; it must be positive",
                ring.sigma
            )));
        }
        if !(ring.max_frequency >= 0.0 && ring.max_frequency.is_finite()) {
            return Err(invalid(format!(
                "ring {i} has frequency cutoff {}; it must be 0 or more",
                ring.max_frequency
            )));
        }
    }
    Ok(())
}
