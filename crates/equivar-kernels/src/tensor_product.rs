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

use gemm::Parallelism;
use rayon::prelude::*;

use crate::Isa;
use crate::conv::sgemm_strided;

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

/// Rows per rayon task and per batched step: the uvw paths multiply a block of rows by the
/// path's weights as one small GEMM per output component.
const CHUNK: usize = 128;

/// Per-task scratch, reused across paths and chunks.
#[derive(Default)]
struct Scratch {
    /// Every input block as `[i][r][u]` (input 1) and `[j][r][v]` (input 2), gathered once
    /// per chunk and shared by the paths that read it.
    x1: Vec<Vec<f32>>,
    x2: Vec<Vec<f32>>,
    /// The coupled tensor `[k][r][u][v]`, times the path coefficient.
    t: Vec<f32>,
    /// Its gradient, same layout.
    dt: Vec<f32>,
    /// Output tiles `[(r, k)][w]` of the uvw paths, or one row's gradient block `[k][u]`.
    gt: Vec<f32>,
    /// Input gradients in the gathered layout, scattered once per chunk.
    dx1: Vec<Vec<f32>>,
    dx2: Vec<Vec<f32>>,
}

impl Scratch {
    /// Gathers every block of both inputs for `rows` rows.
    fn gather_all(&mut self, plan: &TpPlan, x1: &[f32], x2: &[f32], rows: usize) {
        self.x1.resize_with(plan.in1.len(), Vec::new);
        self.x2.resize_with(plan.in2.len(), Vec::new);
        for (b, dst) in plan.in1.iter().zip(&mut self.x1) {
            gather(x1, plan.dim1, rows, b, dst);
        }
        for (b, dst) in plan.in2.iter().zip(&mut self.x2) {
            gather(x2, plan.dim2, rows, b, dst);
        }
    }
}

fn fill(v: &mut Vec<f32>, len: usize) {
    v.clear();
    v.resize(len, 0.0);
}

#[inline(always)]
fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA { a.mul_add(b, c) } else { a * b + c }
}

/// `y += f x` and `sum a x` in one pass; the sum runs in 8 lanes (a single chain would wait
/// on the FMA latency at every element).
#[inline(always)]
fn axpy_dot<const FMA: bool>(f: f32, x: &[f32], a: &[f32], y: &mut [f32]) -> f32 {
    let mut lanes = [0.0f32; 8];
    let split = x.len() / 8 * 8;
    for ((x, a), y) in x[..split]
        .chunks_exact(8)
        .zip(a.chunks_exact(8))
        .zip(y.chunks_exact_mut(8))
    {
        // Fixed-size arrays: the loop below becomes two 8-wide FMAs.
        let (x, a): (&[f32; 8], &[f32; 8]) = (x.try_into().unwrap(), a.try_into().unwrap());
        let y: &mut [f32; 8] = y.try_into().unwrap();
        for l in 0..8 {
            y[l] = madd::<FMA>(f, x[l], y[l]);
            lanes[l] = madd::<FMA>(a[l], x[l], lanes[l]);
        }
    }
    let mut tail = 0.0;
    for k in split..x.len() {
        y[k] = madd::<FMA>(f, x[k], y[k]);
        tail = madd::<FMA>(a[k], x[k], tail);
    }
    lanes.iter().sum::<f32>() + tail
}

/// Block `b` of `rows` rows (row stride `dim`) as `dst[i][r][u]`: stores run along `u`,
/// loads stride by `2l + 1` inside one row.
#[inline(always)]
fn gather(x: &[f32], dim: usize, rows: usize, b: &Block, dst: &mut Vec<f32>) {
    fill(dst, b.dim * rows * b.mul);
    for r in 0..rows {
        let row = &x[r * dim + b.offset..][..b.mul * b.dim];
        for i in 0..b.dim {
            let out = &mut dst[(i * rows + r) * b.mul..][..b.mul];
            for (u, o) in out.iter_mut().enumerate() {
                *o = row[u * b.dim + i];
            }
        }
    }
}

/// `s.t[k][r][u][v] = coefficient * sum over the 3j entries of c x1[i][r][u] x2[j][r][v]`.
#[inline(always)]
fn couple<const FMA: bool>(
    path: &Path,
    (m1, m2, d3): (usize, usize, usize),
    rows: usize,
    s: &mut Scratch,
) {
    let uv = m1 * m2;
    fill(&mut s.t, d3 * rows * uv);
    let (g1, g2) = (&s.x1[path.in1], &s.x2[path.in2]);
    for c in &path.couplings {
        let value = c.value * path.coefficient;
        let (i, j, k) = (c.i as usize, c.j as usize, c.k as usize);
        for r in 0..rows {
            let x1 = &g1[(i * rows + r) * m1..][..m1];
            let x2 = &g2[(j * rows + r) * m2..][..m2];
            let t = &mut s.t[(r * d3 + k) * uv..][..uv];
            if m2 == 1 {
                let f = value * x2[0];
                for (t, &a) in t.iter_mut().zip(x1) {
                    *t = madd::<FMA>(f, a, *t);
                }
            } else {
                for (u, &a) in x1.iter().enumerate() {
                    let f = value * a;
                    for (t, &b) in t[u * m2..][..m2].iter_mut().zip(x2) {
                        *t = madd::<FMA>(f, b, *t);
                    }
                }
            }
        }
    }
}

/// `out[rows, dim_out]` from `x1[rows, dim1]`, `x2[rows, dim2]` and the weights: one vector
/// of `weight_numel` (`shared`) or `rows` of them.
pub fn forward(plan: &TpPlan, x1: &[f32], x2: &[f32], weights: &[f32], shared: bool) -> Vec<f32> {
    forward_with(plan, x1, x2, weights, shared, Isa::for_autovectorized())
}

/// [`forward`] with a chosen build.
pub fn forward_with(
    plan: &TpPlan,
    x1: &[f32],
    x2: &[f32],
    weights: &[f32],
    shared: bool,
    isa: Isa,
) -> Vec<f32> {
    let rows = check_lengths(plan, x1, x2, weights, shared);
    let mut out = vec![0.0f32; rows * plan.dim_out];
    out.par_chunks_mut(CHUNK * plan.dim_out)
        .enumerate()
        .for_each(|(chunk, out)| {
            let first = chunk * CHUNK;
            let n = out.len() / plan.dim_out;
            let x1 = &x1[first * plan.dim1..][..n * plan.dim1];
            let x2 = &x2[first * plan.dim2..][..n * plan.dim2];
            let w = if shared {
                weights
            } else {
                &weights[first * plan.weight_numel..][..n * plan.weight_numel]
            };
            let mut s = Scratch::default();
            forward_chunk_built(isa, plan, (x1, x2, w, shared), out, &mut s)
        });
    out
}

#[inline(always)]
fn forward_chunk<const FMA: bool>(
    plan: &TpPlan,
    (x1, x2, w, shared): (&[f32], &[f32], &[f32], bool),
    out: &mut [f32],
    s: &mut Scratch,
) {
    let rows = out.len() / plan.dim_out;
    let numel = plan.weight_numel;
    s.gather_all(plan, x1, x2, rows);
    for path in &plan.paths {
        let (b1, b2, bo) = (
            &plan.in1[path.in1],
            &plan.in2[path.in2],
            &plan.out[path.out],
        );
        let (m1, m2, d3) = (b1.mul, b2.mul, bo.dim);
        let uv = m1 * m2;
        couple::<FMA>(path, (m1, m2, d3), rows, s);
        match (path.mode, shared) {
            (Mode::Uvw, true) => {
                // out[r][w, k] += sum_p T[k][r][p] W[p][w]: one GEMM per k over the rows.
                let mo = bo.mul;
                let wp = &w[path.weight_offset..][..uv * mo];
                for k in 0..d3 {
                    sgemm_strided(
                        (rows, mo, uv),
                        (&mut out[bo.offset + k..], plan.dim_out, d3),
                        true,
                        (&s.t[k * uv..], d3 * uv, 1),
                        (wp, mo, 1),
                        Parallelism::None,
                    );
                }
            }
            (Mode::Uvw, false) => {
                let mo = bo.mul;
                for r in 0..rows {
                    let wp = &w[r * numel + path.weight_offset..][..uv * mo];
                    for k in 0..d3 {
                        let t = &s.t[(r * d3 + k) * uv..][..uv];
                        let o = &mut out[r * plan.dim_out + bo.offset..];
                        for (p, &tv) in t.iter().enumerate() {
                            for (wo, &wv) in wp[p * mo..][..mo].iter().enumerate() {
                                o[wo * d3 + k] = madd::<FMA>(tv, wv, o[wo * d3 + k]);
                            }
                        }
                    }
                }
            }
            (Mode::Uvu, _) => {
                for r in 0..rows {
                    let wr = if shared {
                        &w[path.weight_offset..][..uv]
                    } else {
                        &w[r * numel + path.weight_offset..][..uv]
                    };
                    let o = &mut out[r * plan.dim_out + bo.offset..][..m1 * d3];
                    // This row's [k][u] tile, written out along u then k (contiguous).
                    let tile = &s.t[r * d3 * uv..][..d3 * uv];
                    if m2 == 1 {
                        for (u, o) in o.chunks_exact_mut(d3).enumerate() {
                            for (k, o) in o.iter_mut().enumerate() {
                                *o = madd::<FMA>(tile[k * uv + u], wr[u], *o);
                            }
                        }
                        continue;
                    }
                    for k in 0..d3 {
                        let t = &tile[k * uv..][..uv];
                        for u in 0..m1 {
                            let dot: f32 = t[u * m2..][..m2]
                                .iter()
                                .zip(&wr[u * m2..][..m2])
                                .map(|(a, b)| a * b)
                                .sum();
                            o[u * d3 + k] += dot;
                        }
                    }
                }
            }
        }
    }
}

isa_builds! {
    fn forward_chunk_built(plan: &TpPlan, inputs: (&[f32], &[f32], &[f32], bool), out: &mut [f32], s: &mut Scratch) = forward_chunk::<FMA>
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
    backward_with(
        plan,
        x1,
        x2,
        weights,
        shared,
        grad_out,
        Isa::for_autovectorized(),
    )
}

/// [`backward`] with a chosen build.
pub fn backward_with(
    plan: &TpPlan,
    x1: &[f32],
    x2: &[f32],
    weights: &[f32],
    shared: bool,
    grad_out: &[f32],
    isa: Isa,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let rows = check_lengths(plan, x1, x2, weights, shared);
    assert_eq!(
        grad_out.len(),
        rows * plan.dim_out,
        "tensor product: grad_out length"
    );
    let numel = plan.weight_numel;
    let mut dx1 = vec![0.0f32; rows * plan.dim1];
    let mut dx2 = vec![0.0f32; rows * plan.dim2];
    // Shared weights: each task's partial sum, added up below; per-row weights: its rows.
    let parts: Vec<Vec<f32>> = dx1
        .par_chunks_mut(CHUNK * plan.dim1)
        .zip(dx2.par_chunks_mut(CHUNK * plan.dim2))
        .enumerate()
        .map(|(chunk, (dx1, dx2))| {
            let first = chunk * CHUNK;
            let n = dx1.len() / plan.dim1;
            let x1 = &x1[first * plan.dim1..][..n * plan.dim1];
            let x2 = &x2[first * plan.dim2..][..n * plan.dim2];
            let gy = &grad_out[first * plan.dim_out..][..n * plan.dim_out];
            let w = if shared {
                weights
            } else {
                &weights[first * numel..][..n * numel]
            };
            let mut dw = vec![0.0f32; w.len()];
            let mut s = Scratch::default();
            backward_chunk_built(
                isa,
                plan,
                (x1, x2, w, shared),
                gy,
                (dx1, dx2, &mut dw),
                &mut s,
            );
            dw
        })
        .collect();
    let dw = if shared {
        let mut dw = vec![0.0f32; numel];
        for part in parts {
            for (a, b) in dw.iter_mut().zip(part) {
                *a += b;
            }
        }
        dw
    } else {
        parts.concat()
    };
    (dx1, dx2, dw)
}

#[inline(always)]
fn backward_chunk<const FMA: bool>(
    plan: &TpPlan,
    (x1, x2, w, shared): (&[f32], &[f32], &[f32], bool),
    gy: &[f32],
    (dx1, dx2, dw): (&mut [f32], &mut [f32], &mut [f32]),
    s: &mut Scratch,
) {
    let rows = gy.len() / plan.dim_out;
    let numel = plan.weight_numel;
    s.gather_all(plan, x1, x2, rows);
    s.dx1.resize_with(plan.in1.len(), Vec::new);
    s.dx2.resize_with(plan.in2.len(), Vec::new);
    for (b, d) in plan.in1.iter().zip(&mut s.dx1) {
        fill(d, b.dim * rows * b.mul);
    }
    for (b, d) in plan.in2.iter().zip(&mut s.dx2) {
        fill(d, b.dim * rows * b.mul);
    }
    for path in &plan.paths {
        let (b1, b2, bo) = (
            &plan.in1[path.in1],
            &plan.in2[path.in2],
            &plan.out[path.out],
        );
        let (m1, m2, d3) = (b1.mul, b2.mul, bo.dim);
        let uv = m1 * m2;
        // T carries the coefficient, so dW = sum T G needs no more; dT = c W G gets it below.
        couple::<FMA>(path, (m1, m2, d3), rows, s);
        fill(&mut s.dt, d3 * rows * uv);
        match (path.mode, shared) {
            (Mode::Uvw, true) => {
                let mo = bo.mul;
                let wp = &w[path.weight_offset..][..uv * mo];
                let dwp = &mut dw[path.weight_offset..][..uv * mo];
                for k in 0..d3 {
                    let g = &gy[bo.offset + k..];
                    // dT_k[r][p] = sum_w G_k[r][w] W[p][w]
                    sgemm_strided(
                        (rows, uv, mo),
                        (&mut s.dt[k * uv..], d3 * uv, 1),
                        false,
                        (g, plan.dim_out, d3),
                        (wp, 1, mo),
                        Parallelism::None,
                    );
                    // dW[p][w] += sum_r T_k[r][p] G_k[r][w]
                    sgemm_strided(
                        (uv, mo, rows),
                        (dwp, mo, 1),
                        true,
                        (&s.t[k * uv..], 1, d3 * uv),
                        (g, plan.dim_out, d3),
                        Parallelism::None,
                    );
                }
            }
            (Mode::Uvw, false) => {
                let mo = bo.mul;
                for r in 0..rows {
                    let wp = &w[r * numel + path.weight_offset..][..uv * mo];
                    let dwp = &mut dw[r * numel + path.weight_offset..][..uv * mo];
                    let g = &gy[r * plan.dim_out + bo.offset..][..mo * d3];
                    for k in 0..d3 {
                        let t = &s.t[(r * d3 + k) * uv..][..uv];
                        let dt = &mut s.dt[(r * d3 + k) * uv..][..uv];
                        for p in 0..uv {
                            let mut acc = 0.0;
                            for wo in 0..mo {
                                acc = madd::<FMA>(g[wo * d3 + k], wp[p * mo + wo], acc);
                                dwp[p * mo + wo] =
                                    madd::<FMA>(t[p], g[wo * d3 + k], dwp[p * mo + wo]);
                            }
                            dt[p] = acc;
                        }
                    }
                }
            }
            (Mode::Uvu, _) => {
                for r in 0..rows {
                    let (wr, dwr) = if shared {
                        (
                            &w[path.weight_offset..][..uv],
                            &mut dw[path.weight_offset..][..uv],
                        )
                    } else {
                        (
                            &w[r * numel + path.weight_offset..][..uv],
                            &mut dw[r * numel + path.weight_offset..][..uv],
                        )
                    };
                    let g = &gy[r * plan.dim_out + bo.offset..][..m1 * d3];
                    if m2 == 1 {
                        // The row's gradient block as [k][u], so every loop runs along u.
                        fill(&mut s.gt, d3 * m1);
                        for (u, gu) in g.chunks_exact(d3).enumerate() {
                            for (k, &v) in gu.iter().enumerate() {
                                s.gt[k * m1 + u] = v;
                            }
                        }
                        for k in 0..d3 {
                            let gk = &s.gt[k * m1..][..m1];
                            let t = &s.t[(r * d3 + k) * uv..][..uv];
                            let dt = &mut s.dt[(r * d3 + k) * uv..][..uv];
                            for u in 0..m1 {
                                dwr[u] = madd::<FMA>(gk[u], t[u], dwr[u]);
                                dt[u] = gk[u] * wr[u];
                            }
                        }
                        continue;
                    }
                    for k in 0..d3 {
                        let t = &s.t[(r * d3 + k) * uv..][..uv];
                        let dt = &mut s.dt[(r * d3 + k) * uv..][..uv];
                        for u in 0..m1 {
                            let gv = g[u * d3 + k];
                            for v in 0..m2 {
                                let p = u * m2 + v;
                                dwr[p] = madd::<FMA>(gv, t[p], dwr[p]);
                                dt[p] = gv * wr[p];
                            }
                        }
                    }
                }
            }
        }
        // dx1[i][r][u] += c sum C x2[j][r][v] dT[k][r][u][v]; dx2[j][r][v] likewise.
        let (g1, g2) = (&s.x1[path.in1], &s.x2[path.in2]);
        let (d1, d2) = (&mut s.dx1[path.in1], &mut s.dx2[path.in2]);
        for cp in &path.couplings {
            let value = cp.value * path.coefficient;
            let (i, j, k) = (cp.i as usize, cp.j as usize, cp.k as usize);
            for r in 0..rows {
                let dt = &s.dt[(r * d3 + k) * uv..][..uv];
                let a = &g1[(i * rows + r) * m1..][..m1];
                let b = &g2[(j * rows + r) * m2..][..m2];
                let da = &mut d1[(i * rows + r) * m1..][..m1];
                if m2 == 1 {
                    let acc = axpy_dot::<FMA>(value * b[0], dt, a, da);
                    d2[j * rows + r] += value * acc;
                } else {
                    let db = &mut d2[(j * rows + r) * m2..][..m2];
                    for u in 0..m1 {
                        let d = &dt[u * m2..][..m2];
                        let mut acc = 0.0;
                        for v in 0..m2 {
                            acc = madd::<FMA>(d[v], b[v], acc);
                            db[v] = madd::<FMA>(value * a[u], d[v], db[v]);
                        }
                        da[u] = madd::<FMA>(value, acc, da[u]);
                    }
                }
            }
        }
    }
    scatter(&s.dx1, &plan.in1, plan.dim1, rows, dx1);
    scatter(&s.dx2, &plan.in2, plan.dim2, rows, dx2);
}

/// Writes gathered-layout gradients `[i][r][u]` into rows (each element of `dst` belongs to
/// exactly one block): transposed in an L1 buffer, then copied whole, so the large
/// destination sees contiguous stores only.
#[inline(always)]
fn scatter(gathered: &[Vec<f32>], blocks: &[Block], dim: usize, rows: usize, dst: &mut [f32]) {
    let mut buf = Vec::new();
    for (g, b) in gathered.iter().zip(blocks) {
        buf.clear();
        buf.resize(b.mul * b.dim, 0.0);
        for r in 0..rows {
            for i in 0..b.dim {
                let src = &g[(i * rows + r) * b.mul..][..b.mul];
                for (u, &v) in src.iter().enumerate() {
                    buf[u * b.dim + i] = v;
                }
            }
            dst[r * dim + b.offset..][..b.mul * b.dim].copy_from_slice(&buf);
        }
    }
}

isa_builds! {
    fn backward_chunk_built(
        plan: &TpPlan,
        inputs: (&[f32], &[f32], &[f32], bool),
        gy: &[f32],
        grads: (&mut [f32], &mut [f32], &mut [f32]),
        s: &mut Scratch,
    ) = backward_chunk::<FMA>
}
