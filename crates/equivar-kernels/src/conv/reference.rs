//! Plain loops over the definition, `y[b, o, oy, ox] = bias[o] + sum x[b, c, iy, ix] w[o, c,
//! ky, kx]`: the reference the kernels are tested against.

use super::{ConvGrads, ConvShape, Wanted};

/// Calls `f(x_index, w_index, y_index)` for every product term of the conv.
fn for_each_term(s: &ConvShape, mut f: impl FnMut(usize, usize, usize)) {
    let (ho, wo, k) = (s.out_height(), s.out_width(), s.kernel);
    for b in 0..s.batch {
        for o in 0..s.c_out {
            for oy in 0..ho {
                for ox in 0..wo {
                    let yi = ((b * s.c_out + o) * ho + oy) * wo + ox;
                    for c in 0..s.c_in {
                        for ky in 0..k {
                            for kx in 0..k {
                                let iy =
                                    (oy * s.stride + ky * s.dilation) as isize - s.padding as isize;
                                let ix =
                                    (ox * s.stride + kx * s.dilation) as isize - s.padding as isize;
                                if iy < 0
                                    || ix < 0
                                    || iy >= s.height as isize
                                    || ix >= s.width as isize
                                {
                                    continue;
                                }
                                let xi = ((b * s.c_in + c) * s.height + iy as usize) * s.width
                                    + ix as usize;
                                let wi = ((o * s.c_in + c) * k + ky) * k + kx;
                                f(xi, wi, yi);
                            }
                        }
                    }
                }
            }
        }
    }
}

pub fn forward(s: &ConvShape, x: &[f32], w: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    let n = s.out_pixels();
    let mut y: Vec<f64> = (0..s.output_len())
        .map(|i| bias.map_or(0.0, |b| b[(i / n) % s.c_out] as f64))
        .collect();
    for_each_term(s, |xi, wi, yi| y[yi] += x[xi] as f64 * w[wi] as f64);
    y.into_iter().map(|v| v as f32).collect()
}

pub fn backward(s: &ConvShape, x: &[f32], w: &[f32], dy: &[f32], wanted: Wanted) -> ConvGrads {
    let mut dx = vec![0.0f64; s.input_len()];
    let mut dw = vec![0.0f64; s.weight_len()];
    for_each_term(s, |xi, wi, yi| {
        dx[xi] += w[wi] as f64 * dy[yi] as f64;
        dw[wi] += x[xi] as f64 * dy[yi] as f64;
    });
    let n = s.out_pixels();
    let mut db = vec![0.0f64; s.c_out];
    for (i, g) in dy.iter().enumerate() {
        db[(i / n) % s.c_out] += *g as f64;
    }
    let narrow = |v: Vec<f64>| v.into_iter().map(|g| g as f32).collect();
    ConvGrads {
        input: wanted.input.then(|| narrow(dx)),
        weight: wanted.weight.then(|| narrow(dw)),
        bias: wanted.bias.then(|| narrow(db)),
    }
}
