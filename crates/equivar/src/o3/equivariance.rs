//! Measured equivariance of any function between irreps (f64): `f(D_in(Q) x) = D_out(Q) f(x)`
//! for random rotations `Q = R` and improper elements `Q = -R` (rotation and inversion).

use nalgebra::DMatrix;
use rand::{Rng, SeedableRng, rngs::StdRng};

use super::rotation::{self, Mat3};
use super::{Irreps, O3Error};

/// One input of the function: `rows` feature vectors of `irreps`, row-major. Invariant inputs
/// (per-edge weights, radial features) are scalars: `Nx0e`.
#[derive(Clone, Debug)]
pub struct Input {
    pub irreps: Irreps,
    pub rows: usize,
}

/// The largest deviations found, absolute and relative to the largest output component.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct EquivarianceReport {
    /// max |f(D x) - D f(x)| over rotations.
    pub rotation: f64,
    /// The same over rotations composed with the inversion.
    pub improper: f64,
    /// max |f(x)|, the scale of the errors.
    pub output_max: f64,
}

impl EquivarianceReport {
    /// The larger error relative to the output's scale.
    pub fn relative(&self) -> f64 {
        self.rotation.max(self.improper) / self.output_max.max(f64::MIN_POSITIVE)
    }
}

/// Applies `f` to random normal inputs and to their transformed copies under `trials` random
/// rotations `R` and their improper partners `-R`.
pub fn equivariance_error<F>(
    inputs: &[Input],
    output: &Irreps,
    mut f: F,
    trials: usize,
    seed: u64,
) -> Result<EquivarianceReport, O3Error>
where
    F: FnMut(&[Vec<f64>]) -> Vec<f64>,
{
    let mut rng = StdRng::seed_from_u64(seed);
    let xs: Vec<Vec<f64>> = inputs
        .iter()
        .map(|i| {
            (0..i.rows * i.irreps.dim())
                .map(|_| normal(&mut rng))
                .collect()
        })
        .collect();
    let y = f(&xs);
    if output.dim() == 0 || !y.len().is_multiple_of(output.dim()) {
        return Err(O3Error::OutputLength {
            len: y.len(),
            irreps: output.to_string(),
            dim: output.dim(),
        });
    }
    let output_max = y.iter().fold(0.0f64, |m, v| m.max(v.abs()));
    let mut report = EquivarianceReport {
        rotation: 0.0,
        improper: 0.0,
        output_max,
    };
    for r in rotation::random_rotations(trials, seed ^ 0x5eed) {
        for (improper, q) in [(false, r), (true, rotation::negate(&r))] {
            let moved: Vec<Vec<f64>> = inputs
                .iter()
                .zip(&xs)
                .map(|(i, x)| transform(&i.irreps, &q, x))
                .collect::<Result<_, _>>()?;
            let lhs = f(&moved);
            let rhs = transform(output, &q, &y)?;
            let err = lhs
                .iter()
                .zip(&rhs)
                .fold(0.0f64, |m, (a, b)| m.max((a - b).abs()));
            let slot = if improper {
                &mut report.improper
            } else {
                &mut report.rotation
            };
            *slot = slot.max(err);
        }
    }
    Ok(report)
}

/// [`equivariance_error`], failing with the measured errors when the relative error exceeds
/// `tolerance` (e.g. 1e-10 in f64).
pub fn assert_equivariant<F>(
    inputs: &[Input],
    output: &Irreps,
    f: F,
    tolerance: f64,
) -> Result<EquivarianceReport, O3Error>
where
    F: FnMut(&[Vec<f64>]) -> Vec<f64>,
{
    let report = equivariance_error(inputs, output, f, 4, 0)?;
    if report.relative() > tolerance {
        return Err(O3Error::NotEquivariant {
            rotation: report.rotation,
            improper: report.improper,
            output_max: report.output_max,
            tolerance,
        });
    }
    Ok(report)
}

/// Rows of `x` (features of `irreps`) times `D(q)^T`.
pub fn transform(irreps: &Irreps, q: &Mat3, x: &[f64]) -> Result<Vec<f64>, O3Error> {
    let dim = irreps.dim();
    if dim == 0 {
        return Ok(Vec::new());
    }
    let d: DMatrix<f64> = irreps.d_from_matrix(q)?;
    let rows = x.len() / dim;
    let xm = DMatrix::from_row_slice(rows, dim, x);
    let out = xm * d.transpose();
    Ok((0..rows)
        .flat_map(|i| (0..dim).map(move |j| (i, j)))
        .map(|(i, j)| out[(i, j)])
        .collect())
}

/// A standard normal number (Box-Muller).
fn normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = 1.0 - rng.random::<f64>();
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}
