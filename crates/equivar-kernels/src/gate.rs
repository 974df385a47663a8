//! The gated nonlinearity on irreps features, fused per row, forward and backward (float32):
//! `[c_s act_s(scalars) | c_g act_g(gate_u) * gated_u]` (see `equivar::e3::Gate`, whose
//! generic burn path the tests compare with).

use rayon::prelude::*;

/// A scalar activation and its derivative.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Silu,
    Sigmoid,
    Tanh,
    Abs,
}

impl Act {
    #[inline(always)]
    fn value_and_slope(self, x: f32) -> (f32, f32) {
        match self {
            Act::Silu => {
                let s = 1.0 / (1.0 + (-x).exp());
                (x * s, s * (1.0 + x * (1.0 - s)))
            }
            Act::Sigmoid => {
                let s = 1.0 / (1.0 + (-x).exp());
                (s, s * (1.0 - s))
            }
            Act::Tanh => {
                let t = x.tanh();
                (t, 1.0 - t * t)
            }
            Act::Abs => (
                x.abs(),
                if x > 0.0 {
                    1.0
                } else if x < 0.0 {
                    -1.0
                } else {
                    0.0
                },
            ),
        }
    }
}

/// One gated block: `mul` copies of dimension `dim` at `input` in a row, written to `output`,
/// gated by gates `gate..gate + mul` (indices into the row's gates).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Gated {
    pub input: usize,
    pub output: usize,
    pub mul: usize,
    pub dim: usize,
    pub gate: usize,
}

#[derive(Clone, Debug, PartialEq)]
pub struct GatePlan {
    pub dim_in: usize,
    pub dim_out: usize,
    /// Scalar segments `(input offset, length)`, written in order from output 0.
    pub scalars: Vec<(usize, usize)>,
    /// Gate segments `(input offset, length)`, numbered in order.
    pub gates: Vec<(usize, usize)>,
    pub gated: Vec<Gated>,
    pub act_scalars: Act,
    pub act_gates: Act,
    /// The activations' normalisation factors.
    pub scale_scalars: f32,
    pub scale_gates: f32,
}

impl GatePlan {
    fn num_gates(&self) -> usize {
        self.gates.iter().map(|g| g.1).sum()
    }
}

const CHUNK: usize = 256;

/// `out [rows, dim_out]` from `x [rows, dim_in]`.
pub fn forward(plan: &GatePlan, x: &[f32]) -> Vec<f32> {
    let rows = x.len() / plan.dim_in.max(1);
    let mut out = vec![0.0f32; rows * plan.dim_out];
    if plan.dim_out == 0 {
        return out;
    }
    out.par_chunks_mut(CHUNK * plan.dim_out)
        .zip(x.par_chunks(CHUNK * plan.dim_in))
        .for_each(|(out, x)| {
            let mut gates = vec![0.0f32; plan.num_gates()];
            for (y, x) in out
                .chunks_exact_mut(plan.dim_out)
                .zip(x.chunks_exact(plan.dim_in))
            {
                let mut o = 0;
                for &(offset, len) in &plan.scalars {
                    for &v in &x[offset..offset + len] {
                        y[o] = plan.scale_scalars * plan.act_scalars.value_and_slope(v).0;
                        o += 1;
                    }
                }
                let mut g = 0;
                for &(offset, len) in &plan.gates {
                    for &v in &x[offset..offset + len] {
                        gates[g] = plan.scale_gates * plan.act_gates.value_and_slope(v).0;
                        g += 1;
                    }
                }
                for b in &plan.gated {
                    for u in 0..b.mul {
                        let gate = gates[b.gate + u];
                        let (src, dst) = (
                            &x[b.input + u * b.dim..][..b.dim],
                            &mut y[b.output + u * b.dim..][..b.dim],
                        );
                        for (d, &s) in dst.iter_mut().zip(src) {
                            *d = gate * s;
                        }
                    }
                }
            }
        });
    out
}

/// `d loss / d x` from `d loss / d out`.
pub fn backward(plan: &GatePlan, x: &[f32], grad_out: &[f32]) -> Vec<f32> {
    let rows = x.len() / plan.dim_in.max(1);
    let mut dx = vec![0.0f32; rows * plan.dim_in];
    if plan.dim_out == 0 {
        return dx;
    }
    dx.par_chunks_mut(CHUNK * plan.dim_in)
        .zip(x.par_chunks(CHUNK * plan.dim_in))
        .zip(grad_out.par_chunks(CHUNK * plan.dim_out))
        .for_each(|((dx, x), gy)| {
            let n = plan.num_gates();
            let (mut gates, mut slopes, mut dgates) =
                (vec![0.0f32; n], vec![0.0f32; n], vec![0.0f32; n]);
            for ((dx, x), gy) in dx
                .chunks_exact_mut(plan.dim_in)
                .zip(x.chunks_exact(plan.dim_in))
                .zip(gy.chunks_exact(plan.dim_out))
            {
                let mut o = 0;
                for &(offset, len) in &plan.scalars {
                    for k in offset..offset + len {
                        dx[k] =
                            gy[o] * plan.scale_scalars * plan.act_scalars.value_and_slope(x[k]).1;
                        o += 1;
                    }
                }
                let mut g = 0;
                for &(offset, len) in &plan.gates {
                    for &v in &x[offset..offset + len] {
                        let (value, slope) = plan.act_gates.value_and_slope(v);
                        gates[g] = plan.scale_gates * value;
                        slopes[g] = plan.scale_gates * slope;
                        g += 1;
                    }
                }
                dgates.fill(0.0);
                for b in &plan.gated {
                    for u in 0..b.mul {
                        let gate = gates[b.gate + u];
                        let src = &x[b.input + u * b.dim..][..b.dim];
                        let g = &gy[b.output + u * b.dim..][..b.dim];
                        let mut dot = 0.0;
                        for k in 0..b.dim {
                            dx[b.input + u * b.dim + k] = gate * g[k];
                            dot += g[k] * src[k];
                        }
                        dgates[b.gate + u] += dot;
                    }
                }
                let mut g = 0;
                for &(offset, len) in &plan.gates {
                    for d in &mut dx[offset..offset + len] {
                        *d = dgates[g] * slopes[g];
                        g += 1;
                    }
                }
            }
        });
    dx
}
