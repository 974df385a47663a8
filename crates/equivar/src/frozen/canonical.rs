//! The frozen model's equivariant subsampling and upsampling on host buffers, computed as
//! [`crate::nn::CanonicalResample`] defines them: per image, the grid symmetry `h` whose
//! pose score peaks (the first on ties), then `h . S(h^-1 . x)`. The resampling `S` treats
//! every channel alike, so the channel actions `rho(h) rho(h^-1)` cancel: only the pixels
//! move, whatever the feature type.

use rayon::prelude::*;

use super::Maps;
use crate::group::O2Element;
use crate::nn::{Resampling, pose_map};
use crate::space::{GridAction, PixelAction};

/// One candidate pose: a grid symmetry `h` with its action, and that of `h^-1`, on the
/// pixels.
#[derive(Clone, Copy, Debug)]
pub struct Pose {
    pixels: GridAction,
    inverse: GridAction,
}

impl Pose {
    /// `h`'s pose; `None` if `h` does not permute the pixels (the quarter turns and mirrors
    /// of C4 and D4 do).
    pub fn of(h: O2Element) -> Option<Pose> {
        let grid = |g: O2Element| match PixelAction::of(g) {
            PixelAction::Exact(action) => Some(action),
            PixelAction::Interpolated(_) => None,
        };
        Some(Pose {
            pixels: grid(h)?,
            inverse: grid(h.inverse())?,
        })
    }
}

/// `act(x)[c][p] = x[c][sources[p]]` on one image `[c, plane]`.
fn act(sources: &[usize], x: &[f32]) -> Vec<f32> {
    let mut out = vec![0.0f32; x.len()];
    let plane = sources.len();
    for (out, from) in out.chunks_exact_mut(plane).zip(x.chunks_exact(plane)) {
        for (o, &s) in out.iter_mut().zip(sources) {
            *o = from[s];
        }
    }
    out
}

/// The plain resampling of one image `[c, n, n]`.
fn resample(resampling: Resampling, x: &[f32], channels: usize, n: usize) -> Vec<f32> {
    let m = resampling.out_size(n);
    let mut out = vec![0.0f32; channels * m * m];
    let s = resampling.stride();
    for c in 0..channels {
        let (from, to) = (&x[c * n * n..][..n * n], &mut out[c * m * m..][..m * m]);
        match resampling {
            Resampling::Subsample { .. } => {
                for i in 0..m {
                    for j in 0..m {
                        to[i * m + j] = from[i * s * n + j * s];
                    }
                }
            }
            Resampling::Upsample { .. } => {
                for i in 0..n {
                    for j in 0..n {
                        to[i * s * m + j * s] = from[i * n + j];
                    }
                }
            }
        }
    }
    out
}

/// The index of the pose whose score `sum_p (h . w)(p) |x(p)|^2` is largest, the first on
/// ties (as burn's `argmax`); `weights[k]` is pose k's moved map `h . w`.
fn canonical_pose(weights: &[Vec<f64>], x: &[f32], channels: usize, plane: usize) -> usize {
    let mut norms = vec![0.0f64; plane];
    for c in 0..channels {
        for (v, &x) in norms.iter_mut().zip(&x[c * plane..][..plane]) {
            *v += (x as f64) * (x as f64);
        }
    }
    let mut best = (f64::NEG_INFINITY, 0);
    for (k, weights) in weights.iter().enumerate() {
        let score: f64 = norms.iter().zip(weights).map(|(v, w)| v * w).sum();
        if score > best.0 {
            best = (score, k);
        }
    }
    best.1
}

/// Each image of `x` resampled in its canonical pose and moved back.
pub(super) fn canonical_resample(resampling: Resampling, poses: &[Pose], x: &Maps) -> Maps {
    let (n, channels) = (x.height, x.channels);
    let m = resampling.out_size(n);
    // Per pose h, once per call: the moved pose map `h . w`, and the pixel tables of h^-1
    // on the input and of h on the output.
    let w = pose_map(n);
    let weights: Vec<Vec<f64>> = poses
        .iter()
        .map(|pose| {
            pose.pixels
                .sources(n)
                .iter()
                .map(|&s| w[s] as f64)
                .collect()
        })
        .collect();
    let into_pose: Vec<Vec<usize>> = poses.iter().map(|pose| pose.inverse.sources(n)).collect();
    let back: Vec<Vec<usize>> = poses.iter().map(|pose| pose.pixels.sources(m)).collect();
    let mut values = vec![0.0f32; x.values.len() / (n * n).max(1) * m * m];
    values
        .par_chunks_mut(channels * m * m)
        .zip(x.values.par_chunks(channels * n * n))
        .for_each(|(out, image)| {
            let k = canonical_pose(&weights, image, channels, n * n);
            let sampled = resample(resampling, &act(&into_pose[k], image), channels, n);
            out.copy_from_slice(&act(&back[k], &sampled));
        });
    Maps {
        values,
        channels,
        height: m,
        width: m,
    }
}
