//! Norm pooling: the norm of every field, an invariant (trivial) field each. The invariant
//! map for irrep fields, where group pooling needs regular ones.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::field::{FeatureType, ReprKind};
use crate::frozen::{FieldOp, FrozenBuilder};
use crate::nn::{self, FieldLayout};
use crate::plan::LayerPlan;

/// Every field -> its norm (model files: `"kind": "norm_pool"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct NormPool {}

impl LayerRule for NormPool {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        let fields = input.in_type.terms.iter().map(|(count, _)| count).sum();
        Ok(PlanStep {
            out_type: FeatureType::new(input.in_type.group, vec![(fields, ReprKind::Trivial)])?,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::NormPool(nn::NormPool {
            layout: FieldLayout::of(&plan.in_type),
            name: plan.name.clone(),
        }))
    }
}

impl LayerModule for nn::NormPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::NormPool::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::NormPool(self.clone())))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.field_op(&self.layout, FieldOp::NormPool);
        Ok(())
    }
}
