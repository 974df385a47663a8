//! The frozen model's resampling steps on host buffers: norm max pooling, the Gaussian blur
//! pool and bilinear upsampling, computed as [`crate::nn::NormMaxPool`],
//! [`crate::nn::BlurPool`] and [`crate::nn::Upsample`] (burn's interpolation) define them.

use rayon::prelude::*;

use super::Maps;
use crate::nn::FieldLayout;
use crate::space::Window;

fn out_size(n: usize, w: Window) -> usize {
    (n + 2 * w.padding - w.span()) / w.stride + 1
}

/// The in-image pixel of output `o`'s tap `k` along one axis, if any.
fn tap(o: usize, k: usize, w: Window, n: usize) -> Option<usize> {
    let at = (o * w.stride + k * w.dilation) as isize - w.padding as isize;
    (0..n as isize).contains(&at).then_some(at as usize)
}

/// For each field and window, the field's vector of largest norm (the first on ties).
pub(super) fn norm_max_pool(layout: &FieldLayout, w: Window, x: &Maps) -> Maps {
    let (h, wd, plane) = (x.height, x.width, x.plane());
    let (oh, ow) = (out_size(h, w), out_size(wd, w));
    let channels = x.channels;
    let batch = x.values.len() / (channels * plane).max(1);
    let mut values = vec![0.0f32; batch * channels * oh * ow];
    values
        .par_chunks_mut(channels * oh * ow)
        .zip(x.values.par_chunks(channels * plane))
        .for_each(|(out, x)| {
            let mut channel = 0;
            for &(count, dim) in &layout.terms {
                for _ in 0..count {
                    let field = &x[channel * plane..(channel + dim) * plane];
                    for oy in 0..oh {
                        for ox in 0..ow {
                            let mut best = (f32::NEG_INFINITY, 0usize);
                            for ky in 0..w.kernel {
                                let Some(y) = tap(oy, ky, w, h) else { continue };
                                for kx in 0..w.kernel {
                                    let Some(xx) = tap(ox, kx, w, wd) else {
                                        continue;
                                    };
                                    let p = y * wd + xx;
                                    let n: f32 =
                                        (0..dim).map(|i| field[i * plane + p].powi(2)).sum();
                                    if n > best.0 {
                                        best = (n, p);
                                    }
                                }
                            }
                            for i in 0..dim {
                                out[(channel + i) * oh * ow + oy * ow + ox] =
                                    field[i * plane + best.1];
                            }
                        }
                    }
                    channel += dim;
                }
            }
        });
    Maps {
        values,
        channels,
        height: oh,
        width: ow,
    }
}

/// Every plane convolved with `filter [k, k]` (zero padding) at the window's stride.
pub(super) fn blur(filter: &[f32], w: Window, x: &Maps) -> Maps {
    let (h, wd, plane) = (x.height, x.width, x.plane());
    let (oh, ow) = (out_size(h, w), out_size(wd, w));
    let mut values = vec![0.0f32; x.values.len() / plane * oh * ow];
    values
        .par_chunks_mut(oh * ow)
        .zip(x.values.par_chunks(plane))
        .for_each(|(out, p)| {
            for oy in 0..oh {
                for ox in 0..ow {
                    let mut acc = 0.0f32;
                    for ky in 0..w.kernel {
                        let Some(y) = tap(oy, ky, w, h) else { continue };
                        for kx in 0..w.kernel {
                            let Some(xx) = tap(ox, kx, w, wd) else {
                                continue;
                            };
                            acc += filter[ky * w.kernel + kx] * p[y * wd + xx];
                        }
                    }
                    out[oy * ow + ox] = acc;
                }
            }
        });
    Maps {
        values,
        channels: x.channels,
        height: oh,
        width: ow,
    }
}

/// The input coordinate of output `o` and its two taps with the weight of the second.
fn bilinear_taps(o: usize, n: usize, out: usize, align_corners: bool) -> (usize, usize, f32) {
    let at = if align_corners {
        o as f64 * (n as f64 - 1.0) / (out.max(1) - 1).max(1) as f64
    } else {
        (o as f64 + 0.5) * (n as f64 / out as f64) - 0.5
    };
    let low = at.floor().max(0.0) as usize;
    let high = (low + 1).min(n - 1);
    (low, high, (at - low as f64).max(0.0) as f32)
}

/// Bilinear upsampling of every plane by `scale`.
pub(super) fn upsample(scale: usize, align_corners: bool, x: &Maps) -> Maps {
    let (h, wd, plane) = (x.height, x.width, x.plane());
    let (oh, ow) = (h * scale, wd * scale);
    let rows: Vec<_> = (0..oh)
        .map(|o| bilinear_taps(o, h, oh, align_corners))
        .collect();
    let cols: Vec<_> = (0..ow)
        .map(|o| bilinear_taps(o, wd, ow, align_corners))
        .collect();
    let mut values = vec![0.0f32; x.values.len() / plane * oh * ow];
    values
        .par_chunks_mut(oh * ow)
        .zip(x.values.par_chunks(plane))
        .for_each(|(out, p)| {
            for (oy, &(y0, y1, wy)) in rows.iter().enumerate() {
                for (ox, &(x0, x1, wx)) in cols.iter().enumerate() {
                    out[oy * ow + ox] = p[y0 * wd + x0] * (1.0 - wx) * (1.0 - wy)
                        + p[y0 * wd + x1] * wx * (1.0 - wy)
                        + p[y1 * wd + x0] * (1.0 - wx) * wy
                        + p[y1 * wd + x1] * wx * wy;
                }
            }
        });
    Maps {
        values,
        channels: x.channels,
        height: oh,
        width: ow,
    }
}
