//! Group pooling: max or mean over the group axis of each regular field, giving invariant
//! (trivial) fields.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_repr, plan_fields};
use crate::error::Result;
use crate::export::{ChannelGroupReduce, PlainLayer};
use crate::field::{FieldType, Repr};
use crate::frozen::FrozenBuilder;
use crate::nn;
use crate::plan::LayerPlan;
use crate::spec::Reduce;

/// Regular fields -> as many trivial fields, by `reduce` over each field's components.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupPool {
    pub reduce: Reduce,
}

impl LayerRule for GroupPool {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        let ty = expect_repr(
            input,
            Repr::Regular,
            "group pooling reduces regular fields; its input is already invariant",
        )?;
        Ok(PlanStep {
            out_type: FieldType::trivial(ty.group, ty.fields).into(),
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::GroupPool(nn::GroupPool {
            name: plan.name.clone(),
            reduce: self.reduce,
            field_type: plan_fields(plan)?,
        }))
    }
}

impl LayerModule for nn::GroupPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::GroupPool::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::GroupReduce(ChannelGroupReduce {
            order: self.field_type.group.order(),
            reduce: self.reduce,
        })))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.group_reduce(self.field_type.group.order(), self.reduce);
        Ok(())
    }
}
