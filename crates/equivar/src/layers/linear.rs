//! The classifier head: a linear map on invariant 1x1 features.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, invalid};
use crate::error::{EquivarError, Result};
use crate::export::{PlainLayer, PooledLinear};
use crate::field::{FeatureType, ReprKind};
use crate::frozen::FrozenBuilder;
use crate::nn::InvariantLinear;
use crate::plan::LayerPlan;

/// `out_features` invariant outputs from invariant 1x1 inputs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Linear {
    pub out_features: usize,
    pub bias: bool,
}

impl LayerRule for Linear {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        if !input.in_type.is_trivial() {
            return Err(EquivarError::FieldTypeMismatch {
                layer: input.layer.to_string(),
                expected: "trivial (invariant) fields".to_string(),
                found: input.in_type.to_string(),
                fix: "a linear head needs invariant features: add a group pool before it"
                    .to_string(),
            });
        }
        let size = input.in_size;
        if size != 1 {
            return Err(EquivarError::FieldTypeMismatch {
                layer: input.layer.to_string(),
                expected: "1x1 features".to_string(),
                found: format!("{size}x{size} features"),
                fix: "add a global average pool before the linear head".to_string(),
            });
        }
        if self.out_features == 0 {
            return Err(invalid(input.layer, "out_features must be at least 1"));
        }
        Ok(PlanStep {
            out_type: FeatureType::new(
                input.in_type.group,
                vec![(self.out_features, ReprKind::Trivial)],
            )?,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        Ok(Layer::Linear(InvariantLinear::new(
            &plan.name,
            plan.in_type.channels(),
            self.out_features,
            self.bias,
            device,
        )))
    }
}

impl LayerModule for InvariantLinear {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        InvariantLinear::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::Linear(PooledLinear {
            linear: self.linear.clone(),
        })))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.linear(
            self.linear.weight.val(),
            self.linear.bias.as_ref().map(|b| b.val()),
        );
        Ok(())
    }
}
