//! CPU kernels for training-mode batch norm on NCHW f32 data, in place of burn's default,
//! which transposes the input to `[C, B*H*W]` (two full copies forward, two backward) and
//! walks it in about ten separate passes. Here: one pass for the statistics and one for the
//! output forward; one reduction pass and one output pass backward. Channels are reduced in
//! parallel; sums are taken per contiguous `H*W` run in f32 and across runs in f64.

use rayon::prelude::*;

use super::{sum_of, sum_of_pairs};

/// The layout of a batch-norm input: `[batch, channels, pixels]`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NormShape {
    pub batch: usize,
    pub channels: usize,
    pub pixels: usize,
}

impl NormShape {
    fn len(&self) -> usize {
        self.batch * self.channels * self.pixels
    }

    /// Values per channel: the count the statistics average over.
    fn per_channel(&self) -> f64 {
        (self.batch * self.pixels) as f64
    }

    /// The contiguous runs of channel `c`, one per image.
    fn runs<'a>(&self, data: &'a [f32], c: usize) -> impl Iterator<Item = &'a [f32]> + 'a {
        let (channels, pixels) = (self.channels, self.pixels);
        (0..self.batch).map(move |b| &data[(b * channels + c) * pixels..][..pixels])
    }
}

/// Per-channel mean and biased variance, `[means..., variances...]` (burn's convention: the
/// variance the running statistics are fed is biased).
pub fn stats(s: &NormShape, x: &[f32]) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "batch norm: input length for {s:?}");
    let per_channel: Vec<(f32, f32)> = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let sum: f64 = s.runs(x, c).map(|r| sum_of(r, |v| v) as f64).sum();
            let mean = sum / s.per_channel();
            let m = mean as f32;
            let squares: f64 = s
                .runs(x, c)
                .map(|r| sum_of(r, |v| (v - m) * (v - m)) as f64)
                .sum();
            (mean as f32, (squares / s.per_channel()) as f32)
        })
        .collect();
    let (means, vars): (Vec<f32>, Vec<f32>) = per_channel.into_iter().unzip();
    [means, vars].concat()
}

fn inv_std(variance: f32, epsilon: f64) -> f32 {
    (1.0 / (variance as f64 + epsilon).sqrt()) as f32
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`, with `stats` from [`stats`].
pub fn apply(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    beta: &[f32],
    stats: &[f32],
    epsilon: f64,
) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "batch norm: input length for {s:?}");
    assert_eq!(stats.len(), 2 * s.channels, "batch norm: statistics length");
    let mut y = vec![0.0f32; s.len()];
    y.par_chunks_mut(s.pixels)
        .zip(x.par_chunks(s.pixels))
        .enumerate()
        .for_each(|(run, (y, x))| {
            let c = run % s.channels;
            let (mean, shift) = (stats[c], beta[c]);
            let scale = gamma[c] * inv_std(stats[s.channels + c], epsilon);
            // centre first: folding the mean into the shift cancels badly when var << eps
            for (o, v) in y.iter_mut().zip(x) {
                *o = (v - mean) * scale + shift;
            }
        });
    y
}

/// Gradients of [`apply`] fed by [`stats`] of the same `x` (the statistics' dependence on `x`
/// included): `(dx, dgamma, dbeta)`.
pub fn backward(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    stats: &[f32],
    epsilon: f64,
    dy: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), s.len(), "batch norm: output-gradient length");
    let c_count = s.channels;
    // Per channel: sum(dy) = dbeta and sum(dy * x_hat) = dgamma.
    let sums: Vec<(f32, f32)> = (0..c_count)
        .into_par_iter()
        .map(|c| {
            let (mean, istd) = (stats[c], inv_std(stats[c_count + c], epsilon));
            let (mut sum_dy, mut sum_dy_xhat) = (0.0f64, 0.0f64);
            for (xr, gr) in s.runs(x, c).zip(s.runs(dy, c)) {
                sum_dy += sum_of(gr, |g| g) as f64;
                let dot = sum_of_pairs(xr, gr, |v, g| (v - mean) * g);
                sum_dy_xhat += dot as f64 * istd as f64;
            }
            (sum_dy as f32, sum_dy_xhat as f32)
        })
        .collect();
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = sums.iter().copied().unzip();
    let count = s.per_channel() as f32;
    let mut dx = vec![0.0f32; s.len()];
    dx.par_chunks_mut(s.pixels)
        .zip(x.par_chunks(s.pixels).zip(dy.par_chunks(s.pixels)))
        .enumerate()
        .for_each(|(run, (dx, (x, dy)))| {
            let c = run % c_count;
            let (mean, istd) = (stats[c], inv_std(stats[c_count + c], epsilon));
            let (mean_dy, mean_dy_xhat) = (dbeta[c] / count, dgamma[c] / count);
            let scale = gamma[c] * istd;
            for ((d, v), g) in dx.iter_mut().zip(x).zip(dy) {
                let x_hat = (v - mean) * istd;
                *d = scale * (g - mean_dy - x_hat * mean_dy_xhat);
            }
        });
    (dx, dgamma, dbeta)
}
