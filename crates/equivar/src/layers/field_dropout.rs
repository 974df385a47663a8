//! Field dropout: drops whole fields (of any representation) in training, so every draw keeps
//! the layer equivariant.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, invalid};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn;
use crate::plan::LayerPlan;

/// Drops each field with probability `p` in training; the identity in inference.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FieldDropout {
    pub p: f64,
}

impl LayerRule for FieldDropout {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        if !(0.0..1.0).contains(&self.p) {
            return Err(invalid(
                input.layer,
                format!("dropout probability {} is not in [0, 1)", self.p),
            ));
        }
        Ok(PlanStep::same(input))
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::Dropout(nn::FieldDropout::new(
            &plan.name,
            nn::FieldLayout::of(&plan.in_type),
            self.p,
        )))
    }
}

impl LayerModule for nn::FieldDropout {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::FieldDropout::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(None)
    }

    fn lower(&self, _frozen: &mut FrozenBuilder) -> Result<()> {
        Ok(())
    }
}
