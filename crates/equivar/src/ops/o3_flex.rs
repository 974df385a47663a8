//! The O(3) kernels of `equivar-kernels` (spherical harmonics, tensor products) registered as
//! a burn backend extension: plain on `Flex`, with hand-written backwards on
//! `Autodiff<Flex>`.

use std::sync::Arc;

use burn::backend::autodiff::NodeId;
use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, backend_extension};
use burn::tensor::DType;

use equivar_kernels::gate::{self, GatePlan};
use equivar_kernels::spherical_harmonics::{self as sh, ShPlan};
use equivar_kernels::tensor_product::{self as tp, TpPlan};

use super::flex::{dims, f32s, flex_tensor};

#[backend_extension(Flex, Autodiff)]
pub trait O3Backend: Backend {
    /// The spherical harmonics of `vectors [n, 3]`: `[n, (lmax + 1)^2]`.
    fn equivar_spherical_harmonics(
        vectors: FloatTensor<Self>,
        plan: Arc<ShPlan>,
    ) -> FloatTensor<Self>;

    /// The tensor product of `x1 [n, dim1]` and `x2 [n, dim2]` with `weights`
    /// (`[weight_numel]` if `shared`, else `[n, weight_numel]`): `[n, dim_out]`.
    fn equivar_tensor_product(
        x1: FloatTensor<Self>,
        x2: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        plan: Arc<TpPlan>,
        shared: bool,
    ) -> FloatTensor<Self>;

    /// The gated nonlinearity of `x [n, dim_in]`: `[n, dim_out]`.
    fn equivar_gate(x: FloatTensor<Self>, plan: Arc<GatePlan>) -> FloatTensor<Self>;
}

impl O3Backend for Flex {
    fn equivar_spherical_harmonics(vectors: FlexTensor, plan: Arc<ShPlan>) -> FlexTensor {
        assert_eq!(
            vectors.dtype(),
            DType::F32,
            "equivar's harmonics kernel runs in f32"
        );
        let n = dims(&vectors)[0];
        flex_tensor(sh::forward(&plan, &f32s(&vectors)), vec![n, plan.dim()])
    }

    fn equivar_tensor_product(
        x1: FlexTensor,
        x2: FlexTensor,
        weights: FlexTensor,
        plan: Arc<TpPlan>,
        shared: bool,
    ) -> FlexTensor {
        assert_eq!(
            x1.dtype(),
            DType::F32,
            "equivar's tensor product kernel runs in f32"
        );
        let n = dims(&x1)[0];
        let y = tp::forward(&plan, &f32s(&x1), &f32s(&x2), &f32s(&weights), shared);
        flex_tensor(y, vec![n, plan.dim_out])
    }

    fn equivar_gate(x: FlexTensor, plan: Arc<GatePlan>) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "equivar's gate kernel runs in f32");
        let n = dims(&x)[0];
        flex_tensor(gate::forward(&plan, &f32s(&x)), vec![n, plan.dim_out])
    }
}

#[derive(Debug)]
struct GateBackward;

impl Backward<Flex, 1> for GateBackward {
    type State = (NodeId, Arc<GatePlan>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_state, plan) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        if let Some(node) = node {
            let shape = dims(&x);
            let dx = gate::backward(&plan, &f32s(&x), &f32s(&dy));
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
    }
}

#[derive(Debug)]
struct ShBackward;

impl Backward<Flex, 1> for ShBackward {
    type State = (NodeId, Arc<ShPlan>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (vectors_state, plan) = ops.state;
        let vectors: FlexTensor = checkpointer.retrieve_node_output(vectors_state);
        if let Some(node) = node {
            let shape = dims(&vectors);
            let dv = sh::backward(&plan, &f32s(&vectors), &f32s(&dy));
            grads.register::<Flex>(node.id, flex_tensor(dv, shape));
        }
    }
}

#[derive(Debug)]
struct TpBackward;

/// What the product's backward needs: its three inputs and the plan.
#[derive(Clone, Debug)]
struct TpState {
    x1: NodeId,
    x2: NodeId,
    weights: NodeId,
    plan: Arc<TpPlan>,
    shared: bool,
}

impl Backward<Flex, 3> for TpBackward {
    type State = TpState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x1, node_x2, node_w] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let s = ops.state;
        let x1: FlexTensor = checkpointer.retrieve_node_output(s.x1);
        let x2: FlexTensor = checkpointer.retrieve_node_output(s.x2);
        let w: FlexTensor = checkpointer.retrieve_node_output(s.weights);
        let (shape1, shape2, shape_w) = (dims(&x1), dims(&x2), dims(&w));
        let (dx1, dx2, dw) = tp::backward(
            &s.plan,
            &f32s(&x1),
            &f32s(&x2),
            &f32s(&w),
            s.shared,
            &f32s(&dy),
        );
        if let Some(node) = node_x1 {
            grads.register::<Flex>(node.id, flex_tensor(dx1, shape1));
        }
        if let Some(node) = node_x2 {
            grads.register::<Flex>(node.id, flex_tensor(dx2, shape2));
        }
        if let Some(node) = node_w {
            grads.register::<Flex>(node.id, flex_tensor(dw, shape_w));
        }
    }
}

impl<C: CheckpointStrategy> O3Backend for Autodiff<Flex, C> {
    fn equivar_spherical_harmonics(
        vectors: FloatTensor<Self>,
        plan: Arc<ShPlan>,
    ) -> FloatTensor<Self> {
        match ShBackward
            .prepare::<C>([vectors.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&vectors);
                let y = Flex::equivar_spherical_harmonics(vectors.into_primitive(), plan.clone());
                prep.finish((state, plan), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::equivar_spherical_harmonics(
                vectors.into_primitive(),
                plan,
            )),
        }
    }

    fn equivar_tensor_product(
        x1: FloatTensor<Self>,
        x2: FloatTensor<Self>,
        weights: FloatTensor<Self>,
        plan: Arc<TpPlan>,
        shared: bool,
    ) -> FloatTensor<Self> {
        match TpBackward
            .prepare::<C>([x1.node(), x2.node(), weights.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = TpState {
                    x1: prep.checkpoint(&x1),
                    x2: prep.checkpoint(&x2),
                    weights: prep.checkpoint(&weights),
                    plan: plan.clone(),
                    shared,
                };
                let y = Flex::equivar_tensor_product(
                    x1.into_primitive(),
                    x2.into_primitive(),
                    weights.into_primitive(),
                    plan,
                    shared,
                );
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::equivar_tensor_product(
                x1.into_primitive(),
                x2.into_primitive(),
                weights.into_primitive(),
                plan,
                shared,
            )),
        }
    }

    fn equivar_gate(x: FloatTensor<Self>, plan: Arc<GatePlan>) -> FloatTensor<Self> {
        match GateBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let state = prep.checkpoint(&x);
                let y = Flex::equivar_gate(x.into_primitive(), plan.clone());
                prep.finish((state, plan), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::equivar_gate(x.into_primitive(), plan)),
        }
    }
}
