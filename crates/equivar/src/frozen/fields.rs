//! The frozen model's field-wise steps on host buffers: norm nonlinearities, gates and norm
//! pooling, computed as [`crate::nn::FieldLayout`] defines them for tensors.

use rayon::prelude::*;

use crate::nn::{FieldLayout, FourierTerm, NormFunction};

/// What a field-wise step does (see [`crate::nn::NormNonlinearity`],
/// [`crate::nn::GatedNonlinearity`], [`crate::nn::NormPool`]).
#[derive(Clone, Debug)]
pub enum FieldOp {
    /// Each field scaled so its norm becomes `function(norm)`, with one threshold per field.
    Norm {
        function: NormFunction,
        threshold: Option<Vec<f32>>,
    },
    /// Each field scaled by the sigmoid of its gate (the gates follow the fields).
    Gate,
    /// Each field replaced by its norm.
    NormPool,
}

/// A field's norm as the tensor path computes it (floored, so zero fields stay finite).
fn norm(squared: f32) -> f32 {
    squared.max(1e-12).sqrt()
}

/// Channels of the step's input, for the layout of its fields.
pub(super) fn in_channels(layout: &FieldLayout, op: &FieldOp) -> usize {
    match op {
        FieldOp::Gate => layout.channels() + layout.fields(),
        _ => layout.channels(),
    }
}

/// Channels of the step's output.
pub(super) fn out_channels(layout: &FieldLayout, op: &FieldOp) -> usize {
    match op {
        FieldOp::NormPool => layout.fields(),
        _ => layout.channels(),
    }
}

/// Applies `op` to `x`: `[batch, in_channels, plane]` to `[batch, out_channels, plane]`.
pub(super) fn apply(layout: &FieldLayout, op: &FieldOp, x: &[f32], plane: usize) -> Vec<f32> {
    let (c_in, c_out) = (in_channels(layout, op), out_channels(layout, op));
    let batch = x.len() / (c_in * plane).max(1);
    let mut out = vec![0.0f32; batch * c_out * plane];
    out.par_chunks_mut(c_out * plane)
        .zip(x.par_chunks(c_in * plane))
        .for_each(|(out, x)| {
            let (mut channel, mut field) = (0, 0);
            for &(count, dim) in &layout.terms {
                for _ in 0..count {
                    let src = &x[channel * plane..(channel + dim) * plane];
                    for p in 0..plane {
                        let squared: f32 = (0..dim).map(|i| src[i * plane + p].powi(2)).sum();
                        let n = norm(squared);
                        let factor = match op {
                            FieldOp::NormPool => {
                                out[field * plane + p] = n;
                                continue;
                            }
                            FieldOp::Gate => {
                                let gate = x[(layout.channels() + field) * plane + p];
                                1.0 / (1.0 + (-gate).exp())
                            }
                            FieldOp::Norm {
                                function: NormFunction::NormRelu,
                                threshold,
                            } => {
                                let b = threshold.as_ref().map_or(0.0, |t| t[field]);
                                (n - b).max(0.0) / n
                            }
                            FieldOp::Norm {
                                function: NormFunction::Squash,
                                ..
                            } => n / (1.0 + n * n),
                        };
                        for i in 0..dim {
                            out[(channel + i) * plane + p] = src[i * plane + p] * factor;
                        }
                    }
                    channel += dim;
                    field += 1;
                }
            }
        });
    out
}

/// A Fourier-pointwise nonlinearity on `x [batch, channels, plane]`: per field and pixel,
/// the samples `A v`, `f` on them, and the projection `A^+` back.
pub(super) fn fourier(
    terms: &[FourierTerm],
    x: &[f32],
    plane: usize,
    f: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    let channels: usize = terms.iter().map(|t| t.count * t.dim).sum();
    let mut out = vec![0.0f32; x.len()];
    out.par_chunks_mut(channels * plane)
        .zip(x.par_chunks(channels * plane))
        .for_each(|(out, x)| {
            let mut channel = 0;
            for t in terms {
                let (n, d) = (t.samples, t.dim);
                let mut v = vec![0.0f32; d];
                let mut s = vec![0.0f32; n];
                for _ in 0..t.count {
                    for p in 0..plane {
                        for (i, vi) in v.iter_mut().enumerate() {
                            *vi = x[(channel + i) * plane + p];
                        }
                        for (r, sr) in s.iter_mut().enumerate() {
                            *sr = (0..d).map(|i| t.sample[r * d + i] * v[i]).sum();
                        }
                        f(&mut s);
                        for i in 0..d {
                            out[(channel + i) * plane + p] =
                                (0..n).map(|r| t.project[i * n + r] * s[r]).sum();
                        }
                    }
                    channel += d;
                }
            }
        });
    out
}
