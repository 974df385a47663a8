//! The O(3) ops: spherical harmonics of vectors and Clebsch-Gordan tensor products. On Flex
//! in float32 (and [`Kernels`] other than `Burn`) equivar's fused kernels run; elsewhere the
//! same maths is written with burn's tensor ops, which any backend runs and autodiff
//! differentiates.

use std::sync::Arc;

use burn::backend::Dispatch;
use burn::tensor::activation;
use burn::tensor::{Tensor, TensorData};

use equivar_kernels::gate::{Act, GatePlan};
use equivar_kernels::spherical_harmonics::ShPlan;
use equivar_kernels::tensor_product::{Mode, TpPlan};

use super::{Kernels, O3Backend};

/// The weights of a tensor product: one vector for every row, or one per row.
#[derive(Clone, Debug)]
pub enum TpWeights {
    /// `[weight_numel]`.
    Shared(Tensor<1>),
    /// `[rows, weight_numel]`, e.g. from a radial network per edge.
    PerRow(Tensor<2>),
}

/// The harmonics of `vectors [n, 3]` as `plan` says: `[n, (lmax + 1)^2]`.
pub fn spherical_harmonics(vectors: Tensor<2>, plan: &Arc<ShPlan>, kernels: Kernels) -> Tensor<2> {
    let [_, three] = vectors.dims();
    assert_eq!(three, 3, "spherical_harmonics: vectors are [n, 3]");
    if kernels.serve(&vectors) {
        return Tensor::from_dispatch(Dispatch::equivar_spherical_harmonics(
            vectors.into_dispatch(),
            plan.clone(),
        ));
    }
    spherical_harmonics_generic(vectors, plan)
}

/// The recurrences of [`equivar_kernels::spherical_harmonics`] on columns of burn tensors.
fn spherical_harmonics_generic(vectors: Tensor<2>, plan: &ShPlan) -> Tensor<2> {
    let [n, _] = vectors.dims();
    let device = vectors.device();
    let (v, r2) = if plan.normalize {
        let norm = vectors.clone().square().sum_dim(1).sqrt();
        // A zero vector stays zero (degree 0 is a constant), as in e3nn.
        let safe = norm.clone().clamp_min(f32::MIN_POSITIVE);
        (vectors / safe, None)
    } else {
        let r2 = vectors.clone().square().sum_dim(1);
        (vectors, Some(r2))
    };
    let col = |i: usize| v.clone().narrow(1, i, 1);
    // Textbook coordinates (X, Y, Z) = (z, x, y).
    let (cx, cy, cz) = (col(2), col(0), col(1));
    // On the unit sphere r^2 = 1, except for zero vectors, where it is 0 like the rest.
    let r2 = r2.unwrap_or_else(|| cx.clone().square() + cy.clone().square() + cz.clone().square());
    let dim = plan.dim();
    let mut out: Vec<Option<Tensor<2>>> = vec![None; dim];
    let ones = Tensor::<2>::ones([n, 1], &device);
    let (mut c, mut s) = (ones.clone(), Tensor::<2>::zeros([n, 1], &device));
    for m in 0..=plan.lmax {
        if m > 0 {
            let c1 = cx.clone() * c.clone() - cy.clone() * s.clone();
            let s1 = cx.clone() * s + cy.clone() * c;
            (c, s) = (c1, s1);
        }
        let mut p0 = Tensor::<2>::zeros([n, 1], &device);
        let mut p1 = ones.clone() * plan.double_factorial(m);
        for l in m..=plan.lmax {
            if l > m {
                let (a, b) = ((2 * l - 1) as f32, (l + m - 1) as f32);
                let inv = 1.0 / (l - m) as f32;
                let p2 = (cz.clone() * p1.clone() * a - r2.clone() * p0 * b) * inv;
                (p0, p1) = (p1, p2);
            }
            let k = plan.scale(l, m);
            let centre = l * l + l;
            out[centre + m] = Some(p1.clone() * c.clone() * k);
            if m > 0 {
                out[centre - m] = Some(p1.clone() * s.clone() * k);
            }
        }
    }
    Tensor::cat(
        out.into_iter()
            .map(|t| t.expect("every component is written"))
            .collect(),
        1,
    )
}

/// The tensor product `plan` describes, of `x1 [n, dim1]` and `x2 [n, dim2]`: `[n, dim_out]`.
pub fn tensor_product(
    x1: Tensor<2>,
    x2: Tensor<2>,
    weights: TpWeights,
    plan: &Arc<TpPlan>,
    kernels: Kernels,
) -> Tensor<2> {
    let [n, d1] = x1.dims();
    let [n2, d2] = x2.dims();
    assert_eq!(
        [d1, d2],
        [plan.dim1, plan.dim2],
        "tensor_product: inputs are [n, {}] and [n, {}]",
        plan.dim1,
        plan.dim2
    );
    assert_eq!(
        n, n2,
        "tensor_product: both inputs have one row per edge or node"
    );
    let (shared, w) = match weights {
        TpWeights::Shared(w) => {
            assert_eq!(
                w.dims(),
                [plan.weight_numel],
                "tensor_product: shared weights are [{}]",
                plan.weight_numel
            );
            (true, w.reshape([1, plan.weight_numel]))
        }
        TpWeights::PerRow(w) => {
            assert_eq!(
                w.dims(),
                [n, plan.weight_numel],
                "tensor_product: per-row weights are [n, {}]",
                plan.weight_numel
            );
            (false, w)
        }
    };
    if kernels.serve(&x1) && plan.weight_numel > 0 {
        let w = if shared {
            w.reshape([plan.weight_numel]).into_dispatch()
        } else {
            w.into_dispatch()
        };
        return Tensor::from_dispatch(Dispatch::equivar_tensor_product(
            x1.into_dispatch(),
            x2.into_dispatch(),
            w,
            plan.clone(),
            shared,
        ));
    }
    tensor_product_generic(x1, x2, w, shared, plan)
}

/// Per path: the outer product of the two blocks contracted with the dense 3j matrix, then
/// the weights; paths into the same output block add up.
fn tensor_product_generic(
    x1: Tensor<2>,
    x2: Tensor<2>,
    w: Tensor<2>,
    shared: bool,
    plan: &TpPlan,
) -> Tensor<2> {
    let [n, _] = x1.dims();
    let device = x1.device();
    let mut blocks: Vec<Option<Tensor<3>>> = vec![None; plan.out.len()];
    for path in &plan.paths {
        let (b1, b2, bo) = (plan.in1[path.in1], plan.in2[path.in2], plan.out[path.out]);
        let (m1, m2, mo, d3) = (b1.mul, b2.mul, bo.mul, bo.dim);
        let a = x1
            .clone()
            .narrow(1, b1.offset, m1 * b1.dim)
            .reshape([n, m1, 1, b1.dim, 1]);
        let b = x2
            .clone()
            .narrow(1, b2.offset, m2 * b2.dim)
            .reshape([n, 1, m2, 1, b2.dim]);
        let outer = (a * b).reshape([n * m1 * m2, b1.dim * b2.dim]);
        let mut dense = vec![0.0f32; b1.dim * b2.dim * d3];
        for c in &path.couplings {
            dense[(c.i as usize * b2.dim + c.j as usize) * d3 + c.k as usize] = c.value;
        }
        let cg = Tensor::<2>::from_data(TensorData::new(dense, [b1.dim * b2.dim, d3]), &device);
        // T [n, m1 m2, d3]
        let t = outer.matmul(cg).reshape([n, m1 * m2, d3]);
        let numel = path.weight_len(plan);
        let rows = if shared { 1 } else { n };
        let pw = w.clone().narrow(1, path.weight_offset, numel);
        let y = match path.mode {
            Mode::Uvw => {
                // [n, d3, m1 m2] x [rows, m1 m2, mo] -> [n, d3, mo] -> [n, mo, d3]
                let pw = pw.reshape([rows, m1 * m2, mo]);
                t.swap_dims(1, 2).matmul(pw).swap_dims(1, 2)
            }
            Mode::Uvu => {
                let pw = pw.reshape([rows, m1, m2, 1]);
                (t.reshape([n, m1, m2, d3]) * pw)
                    .sum_dim(2)
                    .reshape([n, m1, d3])
            }
        } * path.coefficient;
        blocks[path.out] = Some(match blocks[path.out].take() {
            Some(acc) => acc + y,
            None => y,
        });
    }
    let parts: Vec<Tensor<2>> = blocks
        .into_iter()
        .zip(&plan.out)
        .map(|(b, bo)| match b {
            Some(t) => t.reshape([n, bo.mul * bo.dim]),
            None => Tensor::zeros([n, bo.mul * bo.dim], &device),
        })
        .collect();
    if parts.is_empty() {
        return Tensor::zeros([n, 0], &device);
    }
    Tensor::cat(parts, 1)
}

/// The gated nonlinearity `plan` describes, of `x [n, dim_in]`: `[n, dim_out]`.
pub fn gate(x: Tensor<2>, plan: &Arc<GatePlan>, kernels: Kernels) -> Tensor<2> {
    let [n, dim] = x.dims();
    assert_eq!(dim, plan.dim_in, "gate: input is [n, {}]", plan.dim_in);
    if kernels.serve(&x) && plan.dim_out > 0 {
        return Tensor::from_dispatch(Dispatch::equivar_gate(x.into_dispatch(), plan.clone()));
    }
    gate_generic(x, plan, n)
}

fn act(a: Act, x: Tensor<2>) -> Tensor<2> {
    match a {
        Act::Silu => activation::silu(x),
        Act::Sigmoid => activation::sigmoid(x),
        Act::Tanh => x.tanh(),
        Act::Abs => x.abs(),
    }
}

/// Scalars and gates through their activations, each gated copy times its gate: burn ops.
fn gate_generic(x: Tensor<2>, plan: &GatePlan, n: usize) -> Tensor<2> {
    let segments = |list: &[(usize, usize)]| -> Option<Tensor<2>> {
        let parts: Vec<Tensor<2>> = list
            .iter()
            .map(|&(offset, len)| x.clone().narrow(1, offset, len))
            .collect();
        (!parts.is_empty()).then(|| Tensor::cat(parts, 1))
    };
    let mut parts = Vec::new();
    if let Some(s) = segments(&plan.scalars) {
        parts.push(act(plan.act_scalars, s) * plan.scale_scalars);
    }
    if let Some(g) = segments(&plan.gates) {
        let gates = act(plan.act_gates, g) * plan.scale_gates;
        for b in &plan.gated {
            let y = x
                .clone()
                .narrow(1, b.input, b.mul * b.dim)
                .reshape([n, b.mul, b.dim]);
            let g = gates
                .clone()
                .narrow(1, b.gate, b.mul)
                .reshape([n, b.mul, 1]);
            parts.push((y * g).reshape([n, b.mul * b.dim]));
        }
    }
    if parts.is_empty() {
        return Tensor::zeros([n, 0], &x.device());
    }
    Tensor::cat(parts, 1)
}
