//! Norm nonlinearities (norm-ReLU, squash): each field keeps its direction and gets a new
//! norm, a function of the old. Equivariant on fields of every representation, irreps
//! included (see [`crate::nn::NormNonlinearity`]).

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, invalid};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::{FieldOp, FrozenBuilder};
use crate::nn::{self, FieldLayout, NormFunction};
use crate::plan::LayerPlan;

/// `function` on the norm of every field (model files: `"kind": "norm_nonlinearity"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormNonlinearity {
    pub function: NormFunction,
    /// A learned threshold per field (norm-ReLU only).
    #[serde(default = "default_bias")]
    pub bias: bool,
}

fn default_bias() -> bool {
    true
}

impl LayerRule for NormNonlinearity {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        if self.bias && self.function == NormFunction::Squash {
            return Err(invalid(
                input.layer,
                "squash has no threshold to learn; set `bias: false` (or use norm_relu)",
            ));
        }
        Ok(PlanStep::same(input))
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        Ok(Layer::NormNonlinearity(nn::NormNonlinearity::new(
            &plan.name,
            FieldLayout::of(&plan.in_type),
            self.function,
            self.bias,
            device,
        )))
    }
}

impl LayerModule for nn::NormNonlinearity {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::NormNonlinearity::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::NormNonlinearity(self.clone())))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.field_op(
            &self.layout,
            FieldOp::Norm {
                function: self.function,
                threshold: self
                    .threshold
                    .as_ref()
                    .map(|t| crate::frozen::host(t.val())),
            },
        );
        Ok(())
    }
}
