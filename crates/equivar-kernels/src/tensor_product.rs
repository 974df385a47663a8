//! Clebsch-Gordan tensor products of irreps features in float32, forward and backward, fused
//! per row (edge or node): every path reads its 3j symbols as a sparse list, so no dense
//! `(2l+1)^3` tensor is touched and no per-path intermediate leaves the cache.
//!
//! A path couples block `in1` of input 1 (`mul1` copies of degree l1) with block `in2` of
//! input 2 into block `out`: with `T[k][u][v] = sum over the 3j entries (i, j, k, c) of
//! c x1[u, i] x2[v, j]`,
//! - `uvw` (fully connected): `out[w, k] += coefficient * sum_uv W[u, v, w] T[k][u][v]`,
//! - `uvu` (channel-wise): `out[u, k] += coefficient * sum_v W[u, v] T[k][u][v]`.
//!
//! Weights are one vector shared by all rows, or one per row (e.g. from a radial network).
//! Features follow e3nn's layout: row-major rows, a block's copy `u` at `offset + u * dim`.
//! The reference is `equivar::o3::TensorProduct::forward_f64` (f64, one index of the
//! definition at a time), which equivar's tests compare these kernels with.

use rayon::prelude::*;

/// One block of a feature layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Block {
    pub offset: usize,
    pub mul: usize,
    /// `2l + 1`.
    pub dim: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Weights `[mul1, mul2, mul_out]`, every pair of input channels into every output.
    Uvw,
    /// Weights `[mul1, mul2]`, output channel `u` (so `mul_out = mul1`).
    Uvu,
}

/// One nonzero 3j entry `C[i, j, k] = value`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Coupling {
    pub i: u16,
    pub j: u16,
    pub k: u16,
    pub value: f32,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Path {
    pub in1: usize,
    pub in2: usize,
    pub out: usize,
    pub mode: Mode,
    /// The path's normalisation factor, applied to its output.
    pub coefficient: f32,
    /// Where its weights start in a row's weight vector.
    pub weight_offset: usize,
    pub couplings: Vec<Coupling>,
}

impl Path {
    /// Number of weights: `mul1 mul2 mul_out` (uvw) or `mul1 mul2` (uvu).
    pub fn weight_len(&self, plan: &TpPlan) -> usize {
        let (a, b) = (plan.in1[self.in1].mul, plan.in2[self.in2].mul);
        match self.mode {
            Mode::Uvw => a * b * plan.out[self.out].mul,
            Mode::Uvu => a * b,
        }
    }
}

/// A whole tensor product: the three layouts and the paths.
#[derive(Clone, Debug, PartialEq)]
pub struct TpPlan {
    pub in1: Vec<Block>,
    pub in2: Vec<Block>,
    pub out: Vec<Block>,
    pub dim1: usize,
    pub dim2: usize,
    pub dim_out: usize,
    pub paths: Vec<Path>,
    pub weight_numel: usize,
}

impl TpPlan {
    /// Checks the plan's internal consistency: blocks inside their dimensions, 3j indices in
    /// range, uvu paths with `mul_out = mul1`, weights inside `weight_numel`.
    pub fn validate(&self) -> Result<(), String> {
        let fits = |blocks: &[Block], dim: usize, what: &str| {
            for b in blocks {
                if b.offset + b.mul * b.dim > dim {
                    return Err(format!("a block of {what} ends past its dimension {dim}"));
                }
            }
            Ok(())
        };
        fits(&self.in1, self.dim1, "input 1")?;
        fits(&self.in2, self.dim2, "input 2")?;
        fits(&self.out, self.dim_out, "the output")?;
        for (n, p) in self.paths.iter().enumerate() {
            let (a, b, o) = (
                self.in1
                    .get(p.in1)
                    .ok_or(format!("path {n}: no input-1 block {}", p.in1))?,
                self.in2
                    .get(p.in2)
                    .ok_or(format!("path {n}: no input-2 block {}", p.in2))?,
                self.out
                    .get(p.out)
                    .ok_or(format!("path {n}: no output block {}", p.out))?,
            );
            if p.mode == Mode::Uvu && o.mul != a.mul {
                return Err(format!(
                    "path {n}: uvu needs as many output channels as input-1 channels"
                ));
            }
            if p.couplings
                .iter()
                .any(|c| c.i as usize >= a.dim || c.j as usize >= b.dim || c.k as usize >= o.dim)
            {
                return Err(format!("path {n}: a 3j index is out of range"));
            }
            if p.weight_offset + p.weight_len(self) > self.weight_numel {
                return Err(format!("path {n}: weights end past weight_numel"));
            }
        }
        Ok(())
    }
}

/// The number of rows; panics on inconsistent lengths (callers check shapes first).
fn check_lengths(plan: &TpPlan, x1: &[f32], x2: &[f32], weights: &[f32], shared: bool) -> usize {
    assert!(
        plan.dim1 > 0 && plan.dim2 > 0,
        "tensor product: empty input layout"
    );
    let rows = x1.len() / plan.dim1;
    assert_eq!(x1.len(), rows * plan.dim1, "tensor product: x1 length");
    assert_eq!(x2.len(), rows * plan.dim2, "tensor product: x2 length");
    let expected = if shared {
        plan.weight_numel
    } else {
        rows * plan.weight_numel
    };
    assert_eq!(weights.len(), expected, "tensor product: weights length");
    rows
}

/// Rows per rayon task.
const CHUNK: usize = 64;

/// Per-task scratch: input blocks transposed to `[i][u]`, the coupled tensor and output
/// accumulators.
#[derive(Default)]
struct Scratch {
    x1t: Vec<f32>,
    x2t: Vec<f32>,
    t: Vec<f32>,
    acc: Vec<f32>,
    dt: Vec<f32>,
    dx1t: Vec<f32>,
    dx2t: Vec<f32>,
}

/// Transposes block `b` of `row` (`[u][i]`) to `[i][u]`.
fn transpose_block(row: &[f32], b: &Block, dst: &mut Vec<f32>) {
    dst.clear();
    dst.resize(b.mul * b.dim, 0.0);
    for u in 0..b.mul {
        for i in 0..b.dim {
            dst[i * b.mul + u] = row[b.offset + u * b.dim + i];
        }
    }
}

/// `T[k][u][v]` of one path for one row.
fn couple(path: &Path, mul1: usize, mul2: usize, dim3: usize, s: &mut Scratch) {
    let uv = mul1 * mul2;
    s.t.clear();
    s.t.resize(dim3 * uv, 0.0);
    for c in &path.couplings {
        let (x1, x2) = (
            &s.x1t[c.i as usize * mul1..][..mul1],
            &s.x2t[c.j as usize * mul2..][..mul2],
        );
        let t = &mut s.t[c.k as usize * uv..][..uv];
        if mul2 == 1 {
            let f = c.value * x2[0];
            for (t, &a) in t.iter_mut().zip(x1) {
                *t += f * a;
            }
        } else {
            for (u, &a) in x1.iter().enumerate() {
                let f = c.value * a;
                for (t, &b) in t[u * mul2..][..mul2].iter_mut().zip(x2) {
                    *t += f * b;
                }
            }
        }
    }
}

/// `out[rows, dim_out]` from `x1[rows, dim1]`, `x2[rows, dim2]` and the weights: one vector
/// of `weight_numel` (`shared`) or `rows` of them.
pub fn forward(plan: &TpPlan, x1: &[f32], x2: &[f32], weights: &[f32], shared: bool) -> Vec<f32> {
    let rows = check_lengths(plan, x1, x2, weights, shared);
    let mut out = vec![0.0f32; rows * plan.dim_out];
    out.par_chunks_mut(CHUNK * plan.dim_out)
        .enumerate()
        .for_each(|(chunk, out)| {
            let mut s = Scratch::default();
            for (r, out) in out.chunks_exact_mut(plan.dim_out).enumerate() {
                let row = chunk * CHUNK + r;
                let w = if shared {
                    weights
                } else {
                    &weights[row * plan.weight_numel..][..plan.weight_numel]
                };
                forward_row(
                    plan,
                    &x1[row * plan.dim1..][..plan.dim1],
                    &x2[row * plan.dim2..][..plan.dim2],
                    w,
                    out,
                    &mut s,
                );
            }
        });
    out
}

fn forward_row(plan: &TpPlan, x1: &[f32], x2: &[f32], w: &[f32], out: &mut [f32], s: &mut Scratch) {
    for path in &plan.paths {
        let (b1, b2, bo) = (
            &plan.in1[path.in1],
            &plan.in2[path.in2],
            &plan.out[path.out],
        );
        transpose_block(x1, b1, &mut s.x1t);
        transpose_block(x2, b2, &mut s.x2t);
        couple(path, b1.mul, b2.mul, bo.dim, s);
        let uv = b1.mul * b2.mul;
        let w = &w[path.weight_offset..];
        match path.mode {
            Mode::Uvw => {
                let mo = bo.mul;
                s.acc.clear();
                s.acc.resize(bo.dim * mo, 0.0);
                for k in 0..bo.dim {
                    let acc = &mut s.acc[k * mo..][..mo];
                    for (p, &t) in s.t[k * uv..][..uv].iter().enumerate() {
                        for (a, &wv) in acc.iter_mut().zip(&w[p * mo..][..mo]) {
                            *a += t * wv;
                        }
                    }
                }
                for wo in 0..mo {
                    for k in 0..bo.dim {
                        out[bo.offset + wo * bo.dim + k] += path.coefficient * s.acc[k * mo + wo];
                    }
                }
            }
            Mode::Uvu => {
                let m2 = b2.mul;
                for u in 0..b1.mul {
                    let wu = &w[u * m2..][..m2];
                    for k in 0..bo.dim {
                        let t = &s.t[k * uv + u * m2..][..m2];
                        let dot: f32 = t.iter().zip(wu).map(|(a, b)| a * b).sum();
                        out[bo.offset + u * bo.dim + k] += path.coefficient * dot;
                    }
                }
            }
        }
    }
}

/// Gradients of `sum(grad_out * forward(x1, x2, weights))`: `(d x1, d x2, d weights)`, the
/// weight gradient shaped like `weights` (summed over rows when shared).
pub fn backward(
    plan: &TpPlan,
    x1: &[f32],
    x2: &[f32],
    weights: &[f32],
    shared: bool,
    grad_out: &[f32],
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = check_lengths(plan, x1, x2, weights, shared);
    assert_eq!(
        grad_out.len(),
        rows * plan.dim_out,
        "tensor product: grad_out length"
    );
    let mut dx1 = vec![0.0f32; rows * plan.dim1];
    let mut dx2 = vec![0.0f32; rows * plan.dim2];
    let mut dw = vec![0.0f32; weights.len()];
    let numel = plan.weight_numel;
    let per_row_dw: Vec<Vec<f32>> = dx1
        .par_chunks_mut(CHUNK * plan.dim1)
        .zip(dx2.par_chunks_mut(CHUNK * plan.dim2))
        .enumerate()
        .map(|(chunk, (dx1, dx2))| {
            let mut s = Scratch::default();
            // Shared weights: this task's partial sum; per-row weights: its rows' slots.
            let first = chunk * CHUNK;
            let count = dx1.len() / plan.dim1.max(1);
            let mut dw_local = vec![0.0f32; if shared { numel } else { count * numel }];
            for r in 0..count {
                let row = first + r;
                let w = if shared {
                    weights
                } else {
                    &weights[row * numel..][..numel]
                };
                let dwr = if shared {
                    &mut dw_local[..]
                } else {
                    &mut dw_local[r * numel..][..numel]
                };
                backward_row(
                    plan,
                    (
                        &x1[row * plan.dim1..][..plan.dim1],
                        &x2[row * plan.dim2..][..plan.dim2],
                        w,
                    ),
                    &grad_out[row * plan.dim_out..][..plan.dim_out],
                    (
                        &mut dx1[r * plan.dim1..][..plan.dim1],
                        &mut dx2[r * plan.dim2..][..plan.dim2],
                        dwr,
                    ),
                    &mut s,
                );
            }
            dw_local
        })
        .collect();
    if shared {
        for part in per_row_dw {
            for (a, b) in dw.iter_mut().zip(part) {
                *a += b;
            }
        }
    } else {
        let mut offset = 0;
        for part in per_row_dw {
            dw[offset..offset + part.len()].copy_from_slice(&part);
            offset += part.len();
        }
    }
    (dx1, dx2, dw)
}

fn backward_row(
    plan: &TpPlan,
    (x1, x2, w): (&[f32], &[f32], &[f32]),
    gy: &[f32],
    (dx1, dx2, dw): (&mut [f32], &mut [f32], &mut [f32]),
    s: &mut Scratch,
) {
    for path in &plan.paths {
        let (b1, b2, bo) = (
            &plan.in1[path.in1],
            &plan.in2[path.in2],
            &plan.out[path.out],
        );
        let (m1, m2) = (b1.mul, b2.mul);
        let uv = m1 * m2;
        transpose_block(x1, b1, &mut s.x1t);
        transpose_block(x2, b2, &mut s.x2t);
        couple(path, m1, m2, bo.dim, s);
        let w = &w[path.weight_offset..];
        let dw = &mut dw[path.weight_offset..];
        let c = path.coefficient;
        s.dt.clear();
        s.dt.resize(bo.dim * uv, 0.0);
        match path.mode {
            Mode::Uvw => {
                let mo = bo.mul;
                // g[k][w] = c * grad_out[w, k]
                s.acc.clear();
                s.acc.resize(bo.dim * mo, 0.0);
                for wo in 0..mo {
                    for k in 0..bo.dim {
                        s.acc[k * mo + wo] = c * gy[bo.offset + wo * bo.dim + k];
                    }
                }
                for k in 0..bo.dim {
                    let g = &s.acc[k * mo..][..mo];
                    for p in 0..uv {
                        let wp = &w[p * mo..][..mo];
                        s.dt[k * uv + p] = g.iter().zip(wp).map(|(a, b)| a * b).sum();
                        let t = s.t[k * uv + p];
                        for (d, &gv) in dw[p * mo..][..mo].iter_mut().zip(g) {
                            *d += t * gv;
                        }
                    }
                }
            }
            Mode::Uvu => {
                for u in 0..m1 {
                    for k in 0..bo.dim {
                        let g = c * gy[bo.offset + u * bo.dim + k];
                        for v in 0..m2 {
                            let p = u * m2 + v;
                            dw[p] += g * s.t[k * uv + p];
                            s.dt[k * uv + p] = g * w[p];
                        }
                    }
                }
            }
        }
        // dx1[u, i] += sum C x2[v, j] dT[k][u][v]; dx2[v, j] += sum C x1[u, i] dT[k][u][v].
        s.dx1t.clear();
        s.dx1t.resize(b1.dim * m1, 0.0);
        s.dx2t.clear();
        s.dx2t.resize(b2.dim * m2, 0.0);
        for cp in &path.couplings {
            let (i, j, k) = (cp.i as usize, cp.j as usize, cp.k as usize);
            let dt = &s.dt[k * uv..][..uv];
            for u in 0..m1 {
                let a = s.x1t[i * m1 + u];
                let mut acc1 = 0.0;
                for v in 0..m2 {
                    let d = dt[u * m2 + v] * cp.value;
                    acc1 += d * s.x2t[j * m2 + v];
                    s.dx2t[j * m2 + v] += d * a;
                }
                s.dx1t[i * m1 + u] += acc1;
            }
        }
        for u in 0..m1 {
            for i in 0..b1.dim {
                dx1[b1.offset + u * b1.dim + i] += s.dx1t[i * m1 + u];
            }
        }
        for v in 0..m2 {
            for j in 0..b2.dim {
                dx2[b2.offset + v * b2.dim + j] += s.dx2t[j * m2 + v];
            }
        }
    }
}
