//! CPU kernels for training-mode batch norm on NCHW f32 data, in place of burn's default,
//! which transposes the input to `[C, B*H*W]` (two full copies forward, two backward) and
//! walks it in about ten separate passes. Here: one pass for the statistics and one for the
//! output forward; one reduction pass and one output pass backward. Channels are reduced in
//! parallel; sums are taken per contiguous `H*W` run in f32 and across runs in f64.

use rayon::prelude::*;

use crate::activation::{relu_of, relu_passes};
use crate::{Isa, par_zeroed, sum_of, sum_of_pairs};

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
    let isa = Isa::for_autovectorized();
    let per_channel: Vec<(f32, f32)> = (0..s.channels)
        .into_par_iter()
        .map(|c| {
            let mut moments = (0.0, 0.0);
            channel_moments_built(isa, s, x, c, &mut moments);
            moments
        })
        .collect();
    let (means, vars): (Vec<f32>, Vec<f32>) = per_channel.into_iter().unzip();
    [means, vars].concat()
}

/// Channel `c`'s mean and biased variance, as [`stats`] reports them.
#[inline(always)]
fn channel_moments<const FMA: bool>(s: &NormShape, x: &[f32], c: usize, out: &mut (f32, f32)) {
    let sum: f64 = s.runs(x, c).map(|r| sum_of(r, |v| v) as f64).sum();
    let mean = sum / s.per_channel();
    let m = mean as f32;
    let squares: f64 = s
        .runs(x, c)
        .map(|r| sum_of(r, |v| (v - m) * (v - m)) as f64)
        .sum();
    *out = (mean as f32, (squares / s.per_channel()) as f32);
}

isa_builds! {
    fn channel_moments_built(s: &NormShape, x: &[f32], c: usize, out: &mut (f32, f32)) = channel_moments::<FMA>
}

/// One normalised value: centred first, as folding the mean into the shift cancels badly
/// when var << eps. The forward and the ReLU mask of the backward both compute it here, so
/// they agree bit for bit.
#[inline(always)]
fn normalised(v: f32, (mean, scale, shift): (f32, f32, f32)) -> f32 {
    (v - mean) * scale + shift
}

/// `y = (x - mean) scale + shift` over one run of pixels, then its ReLU if `relu`.
#[inline(always)]
fn normalise_run<const FMA: bool>(x: &[f32], y: &mut [f32], affine: (f32, f32, f32), relu: bool) {
    if relu {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = relu_of(normalised(v, affine));
        }
    } else {
        for (o, &v) in y.iter_mut().zip(x) {
            *o = normalised(v, affine);
        }
    }
}

isa_builds! {
    fn normalise_run_built(x: &[f32], y: &mut [f32], affine: (f32, f32, f32), relu: bool) = normalise_run::<FMA>
}

/// `g` where the ReLU after the normalisation `affine` let `v`'s output pass, else 0: the
/// mask is recomputed from `x`, so the forward's output need not be kept.
#[inline(always)]
fn passed(v: f32, g: f32, affine: (f32, f32, f32)) -> f32 {
    if relu_passes(normalised(v, affine)) {
        g
    } else {
        0.0
    }
}

/// Channel `c`'s `(sum dy, sum dy (x - mean))` over its runs, `dy` masked by `relu`.
#[inline(always)]
fn channel_grad_sums<const FMA: bool>(
    s: &NormShape,
    (x, dy): (&[f32], &[f32]),
    c: usize,
    (mean, relu): (f32, Option<(f32, f32, f32)>),
    out: &mut (f64, f64),
) {
    let (mut sum_dy, mut sum_dy_centred) = (0.0f64, 0.0f64);
    for (xr, gr) in s.runs(x, c).zip(s.runs(dy, c)) {
        let (a, b) = match relu {
            None => (
                sum_of(gr, |g| g),
                sum_of_pairs(xr, gr, |v, g| (v - mean) * g),
            ),
            Some(affine) => (
                sum_of_pairs(xr, gr, |v, g| passed(v, g, affine)),
                sum_of_pairs(xr, gr, |v, g| (v - mean) * passed(v, g, affine)),
            ),
        };
        sum_dy += a as f64;
        sum_dy_centred += b as f64;
    }
    *out = (sum_dy, sum_dy_centred);
}

isa_builds! {
    fn channel_grad_sums_built(
        s: &NormShape,
        runs: (&[f32], &[f32]),
        c: usize,
        centre: (f32, Option<(f32, f32, f32)>),
        out: &mut (f64, f64),
    ) = channel_grad_sums::<FMA>
}

/// `dx = scale (dy - mean_dy - x_hat mean_dy_xhat)` over one run of pixels, with
/// `x_hat = (x - mean) istd` and `dy` masked by `relu`.
#[inline(always)]
fn input_grad_run<const FMA: bool>(
    (x, dy, dx): (&[f32], &[f32], &mut [f32]),
    (mean, istd, scale, mean_dy, mean_dy_xhat): (f32, f32, f32, f32, f32),
    relu: Option<(f32, f32, f32)>,
) {
    let grad = |v: f32, g: f32| scale * (g - mean_dy - (v - mean) * istd * mean_dy_xhat);
    let values = dx.iter_mut().zip(x).zip(dy);
    match relu {
        None => values.for_each(|((d, &v), &g)| *d = grad(v, g)),
        Some(affine) => values.for_each(|((d, &v), &g)| *d = grad(v, passed(v, g, affine))),
    }
}

isa_builds! {
    fn input_grad_run_built(
        runs: (&[f32], &[f32], &mut [f32]),
        terms: (f32, f32, f32, f32, f32),
        relu: Option<(f32, f32, f32)>,
    ) = input_grad_run::<FMA>
}

fn inv_std(variance: f32, epsilon: f64) -> f32 {
    (1.0 / (variance as f64 + epsilon).sqrt()) as f32
}

/// The affine map channel `c` normalises by: `(mean, gamma / sqrt(var + eps), beta)`.
fn channel_affine(
    c: usize,
    (gamma, beta): (&[f32], &[f32]),
    stats: &[f32],
    epsilon: f64,
) -> (f32, f32, f32) {
    let channels = gamma.len();
    let scale = gamma[c] * inv_std(stats[channels + c], epsilon);
    (stats[c], scale, beta[c])
}

/// `y = (x - mean) / sqrt(var + eps) * gamma + beta`, with `stats` from [`stats`]; with
/// `relu`, its ReLU (as [`crate::activation::relu`]) in the same pass.
pub fn apply(
    s: &NormShape,
    x: &[f32],
    (gamma, beta): (&[f32], &[f32]),
    stats: &[f32],
    epsilon: f64,
    relu: bool,
) -> Vec<f32> {
    assert_eq!(x.len(), s.len(), "batch norm: input length for {s:?}");
    assert_eq!(stats.len(), 2 * s.channels, "batch norm: statistics length");
    assert!(gamma.len() == s.channels && beta.len() == s.channels);
    let isa = Isa::for_autovectorized();
    par_zeroed(s.len(), s.pixels, |run, y| {
        let affine = channel_affine(run % s.channels, (gamma, beta), stats, epsilon);
        let x = &x[run * s.pixels..][..s.pixels];
        normalise_run_built(isa, x, y, affine, relu);
    })
}

/// Gradients of [`apply`] fed by [`stats`] of the same `x` (the statistics' dependence on `x`
/// included): `(dx, dgamma, dbeta)`. `relu_beta` is `beta` where the forward applied the
/// ReLU, `None` where it did not.
pub fn backward(
    s: &NormShape,
    x: &[f32],
    gamma: &[f32],
    stats: &[f32],
    epsilon: f64,
    dy: &[f32],
    relu_beta: Option<&[f32]>,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    assert_eq!(dy.len(), s.len(), "batch norm: output-gradient length");
    assert!(gamma.len() == s.channels && relu_beta.is_none_or(|b| b.len() == s.channels));
    let c_count = s.channels;
    let isa = Isa::for_autovectorized();
    let relu_affine =
        |c: usize| relu_beta.map(|beta| channel_affine(c, (gamma, beta), stats, epsilon));
    // Per channel: sum(dy) = dbeta and sum(dy * x_hat) = dgamma (dy as the ReLU passed it).
    let sums: Vec<(f32, f32)> = (0..c_count)
        .into_par_iter()
        .map(|c| {
            let istd = inv_std(stats[c_count + c], epsilon);
            let mut sums = (0.0, 0.0);
            let centre = (stats[c], relu_affine(c));
            channel_grad_sums_built(isa, s, (x, dy), c, centre, &mut sums);
            (sums.0 as f32, (sums.1 * istd as f64) as f32)
        })
        .collect();
    let (dbeta, dgamma): (Vec<f32>, Vec<f32>) = sums.iter().copied().unzip();
    let count = s.per_channel() as f32;
    let dx = par_zeroed(s.len(), s.pixels, |run, dx| {
        let c = run % c_count;
        let (mean, istd) = (stats[c], inv_std(stats[c_count + c], epsilon));
        let (mean_dy, mean_dy_xhat) = (dbeta[c] / count, dgamma[c] / count);
        let terms = (mean, istd, gamma[c] * istd, mean_dy, mean_dy_xhat);
        let (x, dy) = (
            &x[run * s.pixels..][..s.pixels],
            &dy[run * s.pixels..][..s.pixels],
        );
        input_grad_run_built(isa, (x, dy, dx), terms, relu_affine(c));
    });
    (dx, dgamma, dbeta)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::test_util::{as_f64, relative_error, values};

    /// The normalised output in f64, straight from the definition (biased batch variance).
    fn reference(s: &NormShape, x: &[f64], gamma: &[f64], beta: &[f64], eps: f64) -> Vec<f64> {
        let n = s.per_channel();
        let mut y = vec![0.0; s.len()];
        for c in 0..s.channels {
            let idx = |b: usize, p: usize| (b * s.channels + c) * s.pixels + p;
            let all = || (0..s.batch).flat_map(move |b| (0..s.pixels).map(move |p| idx(b, p)));
            let mean = all().map(|i| x[i]).sum::<f64>() / n;
            let var = all().map(|i| (x[i] - mean).powi(2)).sum::<f64>() / n;
            for i in all() {
                y[i] = (x[i] - mean) / (var + eps).sqrt() * gamma[c] + beta[c];
            }
        }
        y
    }

    /// Forward against the f64 definition; gradients against central differences of
    /// `L = <dy, y(x, gamma, beta)>` evaluated in f64 (smooth, so the differences are exact to
    /// ~1e-8, far below the float32 kernels' error).
    #[test]
    fn batch_norm_matches_the_definition_and_its_differences() {
        let (eps, h) = (1e-5, 1e-4);
        for s in [
            NormShape {
                batch: 3,
                channels: 4,
                pixels: 7,
            },
            NormShape {
                batch: 1,
                channels: 2,
                pixels: 33,
            },
        ] {
            let x = values(s.len(), 5);
            let gamma: Vec<f32> = values(s.channels, 6)
                .iter()
                .map(|v| 1.0 + v / 2.0)
                .collect();
            let beta = values(s.channels, 7);
            let dy = values(s.len(), 8);
            let st = stats(&s, &x);
            let y = apply(&s, &x, (&gamma, &beta), &st, eps, false);
            let (x64, g64, b64) = (as_f64(&x), as_f64(&gamma), as_f64(&beta));
            let want = reference(&s, &x64, &g64, &b64, eps);
            assert!(relative_error(&y, &want, 1.0) <= 1e-5, "{s:?} forward");

            let loss = |x: &[f64], g: &[f64], b: &[f64]| -> f64 {
                let y = reference(&s, x, g, b, eps);
                y.iter().zip(&dy).map(|(y, d)| y * *d as f64).sum()
            };
            let diff = |v: &[f64], i: usize, f: &dyn Fn(&[f64]) -> f64| {
                let (mut up, mut down) = (v.to_vec(), v.to_vec());
                up[i] += h;
                down[i] -= h;
                (f(&up) - f(&down)) / (2.0 * h)
            };
            let (dx, dgamma, dbeta) = backward(&s, &x, &gamma, &st, eps, &dy, None);
            let want_dx: Vec<f64> = (0..x.len())
                .map(|i| diff(&x64, i, &|v| loss(v, &g64, &b64)))
                .collect();
            let want_dg: Vec<f64> = (0..s.channels)
                .map(|i| diff(&g64, i, &|v| loss(&x64, v, &b64)))
                .collect();
            let want_db: Vec<f64> = (0..s.channels)
                .map(|i| diff(&b64, i, &|v| loss(&x64, &g64, v)))
                .collect();
            for (what, got, want) in [
                ("dx", &dx, &want_dx),
                ("dgamma", &dgamma, &want_dg),
                ("dbeta", &dbeta, &want_db),
            ] {
                let e = relative_error(got, want, 1.0);
                assert!(e <= 1e-5, "{s:?} {what}: {e:.2e}");
            }
        }
    }

    /// Batch norm with its ReLU in one op: the same output, bit for bit, as the ReLU of the
    /// output without, and the same gradients as the two backwards one after the other (the
    /// mask recomputed from x instead of read from the output).
    #[test]
    fn batch_norm_with_relu_is_the_relu_of_batch_norm() {
        let eps = 1e-5;
        let s = NormShape {
            batch: 3,
            channels: 5,
            pixels: 37,
        };
        let x = values(s.len(), 11);
        let gamma: Vec<f32> = values(s.channels, 12).iter().map(|v| v - 0.2).collect();
        // Shifts that leave each channel with some values cut and some passed.
        let beta: Vec<f32> = values(s.channels, 13).iter().map(|v| v * 0.5).collect();
        let dy = values(s.len(), 14);
        let st = stats(&s, &x);
        let plain = apply(&s, &x, (&gamma, &beta), &st, eps, false);
        let fused = apply(&s, &x, (&gamma, &beta), &st, eps, true);
        let want = crate::activation::relu(&plain);
        assert_eq!(fused, want, "forward");
        let cut = want.iter().filter(|&&v| v == 0.0).count();
        assert!(cut > s.len() / 5 && cut < s.len() * 4 / 5, "{cut} cut");

        let masked = crate::activation::relu_backward(&want, &dy);
        let chained = backward(&s, &x, &gamma, &st, eps, &masked, None);
        let got = backward(&s, &x, &gamma, &st, eps, &dy, Some(&beta));
        for (what, got, want) in [
            ("dx", &got.0, &chained.0),
            ("dgamma", &got.1, &chained.1),
            ("dbeta", &got.2, &chained.2),
        ] {
            let e = relative_error(got, &as_f64(want), 1.0);
            assert!(e <= 1e-6, "{what}: {e:.2e}");
        }
    }
}
