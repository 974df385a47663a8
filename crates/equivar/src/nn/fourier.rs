//! Fourier-pointwise nonlinearities (Weiler & Cesa 2019, section 2.6; escnn's
//! `FourierPointwise`): a field whose coordinates are Fourier coefficients of a band-limited
//! function on the group (a `regular(L)` field of SO(2)/O(2), a regular or trivial field) is
//! sampled at `N` group elements, the function is applied to each sample, and the samples are
//! projected back onto the band limit: `y = A^+ f(A x)`. Rotating the field shifts its
//! samples, so the map is exactly equivariant under the elements that permute the samples
//! (the plan requires the quarter turns and the mirrors among them) and approximately under
//! the rest, closer the more samples.

use burn::module::Module;
use burn::tensor::{Device, Tensor, TensorData};
use nalgebra::DMatrix;

use super::check_channels;
use super::pointwise::apply_activation;
use crate::error::{EquivarError, Result};
use crate::field::{FeatureType, ReprKind};
use crate::group::{O2Element, PlanarGroup};
use crate::spec::Activation;

/// One term's sampling and projection.
#[derive(Clone, Debug, PartialEq)]
pub struct FourierTerm {
    pub count: usize,
    pub dim: usize,
    pub samples: usize,
    /// `A`, `[samples, dim]`: a field's coordinates to its function's samples.
    pub sample: Vec<f32>,
    /// `A^+`, `[dim, samples]`: samples back to coordinates, projected on the band limit.
    pub project: Vec<f32>,
}

/// The band limit of the fields a Fourier nonlinearity takes, or `None` for a term it cannot
/// take (irreps and quotients: not the coefficients of a function on the group).
pub(crate) fn band_limit(group: PlanarGroup, kind: ReprKind) -> Option<usize> {
    match kind {
        ReprKind::Trivial => Some(0),
        ReprKind::BandLimitedRegular(l) => Some(l),
        ReprKind::Regular => group
            .order()
            .map(|_| group.rotation_order().unwrap_or(1) / 2),
        ReprKind::Irrep(_) | ReprKind::Quotient(_) => None,
    }
}

/// The default number of samples for SO(2)/O(2) fields up to frequency `l`: rotations at
/// twice the Nyquist rate, rounded up to a multiple of 4 (so the quarter turns are among
/// them), and as many mirrored ones for O(2).
pub fn default_samples(group: PlanarGroup, l: usize) -> usize {
    let rotations = (2 * (2 * l + 1)).div_ceil(4) * 4;
    if group.has_reflections() {
        2 * rotations
    } else {
        rotations
    }
}

/// The elements sampled: all of a finite group, `samples` evenly spread over SO(2) (half of
/// them mirrored for O(2)). Errors if the quarter turns (and the mirror) are not among them.
fn sample_elements(
    group: PlanarGroup,
    samples: usize,
) -> std::result::Result<Vec<O2Element>, String> {
    if group.order().is_some() {
        return Ok(group.elements());
    }
    let rotations = if group.has_reflections() {
        if !samples.is_multiple_of(2) {
            return Err(format!(
                "{samples} samples of O(2) do not split into rotations and mirrored rotations; \
                 use an even number"
            ));
        }
        samples / 2
    } else {
        samples
    };
    if rotations == 0 || !rotations.is_multiple_of(4) {
        return Err(format!(
            "{rotations} sampled rotations do not include the quarter turns, which the pixel \
             grid needs exact; use a multiple of 4{}",
            if group.has_reflections() {
                " (times 2 for O(2)'s mirrors)"
            } else {
                ""
            }
        ));
    }
    Ok(group.even_samples(samples))
}

impl FourierTerm {
    /// The sampling of `count x kind` fields of `group` at `samples` elements (all of a
    /// finite group's), or the reason it cannot be.
    pub fn new(
        group: PlanarGroup,
        count: usize,
        kind: ReprKind,
        samples: usize,
    ) -> std::result::Result<Self, String> {
        let l = band_limit(group, kind).ok_or_else(|| {
            format!(
                "`{}` fields are not Fourier coefficients of functions on the group; a Fourier \
                 nonlinearity takes regular(L), regular and trivial fields (use a norm or \
                 gated nonlinearity on irreps)",
                kind.text(group)
            )
        })?;
        let elements = sample_elements(group, samples)?;
        let rho = kind.representation(group).map_err(|e| e.to_string())?;
        // Samples of the function whose coefficients (in the irreps' basis) are Q^T x.
        let a = rho.sampling_matrix(&elements) * rho.change_of_basis().transpose();
        let pinv = a
            .clone()
            .pseudo_inverse(1e-10)
            .map_err(|e| format!("no projection back onto the band limit: {e}"))?;
        let dim = rho.dim();
        let identity_error = (&pinv * &a - DMatrix::<f64>::identity(dim, dim))
            .abs()
            .max();
        if identity_error > 1e-8 {
            return Err(format!(
                "{} samples cannot tell frequencies up to {l} apart; use at least {} rotations",
                elements.len(),
                2 * l + 1
            ));
        }
        let flat = |m: &DMatrix<f64>| -> Vec<f32> {
            (0..m.nrows())
                .flat_map(|r| (0..m.ncols()).map(move |c| (r, c)))
                .map(|(r, c)| m[(r, c)] as f32)
                .collect()
        };
        Ok(FourierTerm {
            count,
            dim,
            samples: elements.len(),
            sample: flat(&a),
            project: flat(&pinv),
        })
    }
}

/// `f` applied to the samples of every field (see the module docs).
#[derive(Module, Debug)]
pub struct FourierPointwise {
    #[module(skip)]
    pub function: Activation,
    #[module(skip)]
    pub terms: Vec<FourierTerm>,
    #[module(skip)]
    pub name: String,
}

impl FourierPointwise {
    /// The nonlinearity on fields of `t`, with `samples` elements of SO(2)/O(2) (the
    /// default for the band limit if `None`; finite groups use all their elements).
    pub fn new(
        name: &str,
        t: &FeatureType,
        function: Activation,
        samples: Option<usize>,
    ) -> Result<Self> {
        let l = t
            .terms
            .iter()
            .filter_map(|&(_, kind)| band_limit(t.group, kind))
            .max()
            .unwrap_or(0);
        let samples = samples.unwrap_or_else(|| default_samples(t.group, l));
        let terms = t
            .terms
            .iter()
            .map(|&(count, kind)| FourierTerm::new(t.group, count, kind, samples))
            .collect::<std::result::Result<Vec<_>, String>>()
            .map_err(|reason| EquivarError::InvalidLayer {
                layer: name.to_string(),
                reason,
            })?;
        Ok(FourierPointwise {
            function,
            terms,
            name: name.to_string(),
        })
    }

    pub fn channels(&self) -> usize {
        self.terms.iter().map(|t| t.count * t.dim).sum()
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.channels(), &x);
        let [b, _, h, w] = x.dims();
        let (device, dtype) = (x.device(), x.dtype());
        let matrix = |values: &[f32], rows: usize, cols: usize, device: &Device| {
            Tensor::<3>::from_data(
                TensorData::new(values.to_vec(), [1, rows, cols]),
                (device, dtype),
            )
        };
        let mut at = 0;
        let parts = self
            .terms
            .iter()
            .map(|t| {
                let (n, d) = (t.samples, t.dim);
                let fields = x
                    .clone()
                    .narrow(1, at, t.count * d)
                    .reshape([b * t.count, d, h * w]);
                at += t.count * d;
                let a = matrix(&t.sample, n, d, &device).expand([b * t.count, n, d]);
                let pinv = matrix(&t.project, d, n, &device).expand([b * t.count, d, n]);
                let samples = apply_activation3(self.function, a.matmul(fields));
                pinv.matmul(samples).reshape([b, t.count * d, h, w])
            })
            .collect();
        Tensor::cat(parts, 1)
    }
}

/// [`apply_activation`] on a rank-3 tensor.
fn apply_activation3(f: Activation, x: Tensor<3>) -> Tensor<3> {
    let [a, b, c] = x.dims();
    apply_activation(f, x.reshape([a, b, c, 1])).reshape([a, b, c])
}
