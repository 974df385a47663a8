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

/// `act(x)[c][i][j] = x[c][pixels.source(i, j)]` on one image `[c, n, n]`.
fn act(pixels: GridAction, x: &[f32], n: usize) -> Vec<f32> {
    let plane = n * n;
    let sources: Vec<usize> = (0..plane)
        .map(|k| {
            let (p, q) = pixels.source(k / n, k % n, n);
            p * n + q
        })
        .collect();
    let mut out = vec![0.0f32; x.len()];
    for (out, from) in out.chunks_exact_mut(plane).zip(x.chunks_exact(plane)) {
        for (o, &s) in out.iter_mut().zip(&sources) {
            *o = from[s];
        }
    }
    out
}

/// The plain resampling of one image `[c, n, n]`: `(values, side)`.
fn resample(resampling: Resampling, x: &[f32], channels: usize, n: usize) -> (Vec<f32>, usize) {
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
    (out, m)
}

/// The index of the pose whose score `sum_p (h . w)(p) |x(p)|^2` is largest, the first on
/// ties (as burn's `argmax`).
fn canonical_pose(poses: &[Pose], x: &[f32], channels: usize, n: usize) -> usize {
    let plane = n * n;
    let mut norms = vec![0.0f64; plane];
    for c in 0..channels {
        for (v, &x) in norms.iter_mut().zip(&x[c * plane..][..plane]) {
            *v += (x as f64) * (x as f64);
        }
    }
    let w = pose_map(n);
    let mut best = (f64::NEG_INFINITY, 0);
    for (k, pose) in poses.iter().enumerate() {
        let score: f64 = (0..plane)
            .map(|p| {
                let (i, j) = pose.pixels.source(p / n, p % n, n);
                norms[p] * w[i * n + j] as f64
            })
            .sum();
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
    let mut values = vec![0.0f32; x.values.len() / (n * n).max(1) * m * m];
    values
        .par_chunks_mut(channels * m * m)
        .zip(x.values.par_chunks(channels * n * n))
        .for_each(|(out, image)| {
            let pose = &poses[canonical_pose(poses, image, channels, n)];
            let turned = act(pose.inverse, image, n);
            let (sampled, m) = resample(resampling, &turned, channels, n);
            out.copy_from_slice(&act(pose.pixels, &sampled, m));
        });
    Maps {
        values,
        channels,
        height: m,
        width: m,
    }
}
