//! Pointwise nonlinearities: equivariant on trivial and regular fields, whose group action
//! only moves pixels and permutes channels.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep};
use crate::error::{EquivarError, Result};
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn::Pointwise;
use crate::ops::Kernels;
use crate::plan::LayerPlan;
use crate::spec::Activation;

/// `function` applied entry by entry (model files: `"kind": "activation"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Nonlinearity {
    pub function: Activation,
}

impl LayerRule for Nonlinearity {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        if !input.in_type.permutes_components() {
            return Err(EquivarError::FieldTypeMismatch {
                layer: input.layer.to_string(),
                expected: "trivial, regular or quotient fields".to_string(),
                found: input.in_type.to_string(),
                fix: "a pointwise nonlinearity does not commute with the rotation of irrep \
                      fields; use a norm or gated nonlinearity on them"
                    .to_string(),
            });
        }
        Ok(PlanStep::same(input))
    }

    fn build(&self, _plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::Activation(Pointwise::new(self.function)))
    }
}

impl LayerModule for Pointwise {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        Pointwise::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        // The exported model is plain burn.
        Ok(Some(PlainLayer::Activation(Pointwise {
            function: self.function,
            kernels: Kernels::Burn,
        })))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.activation(self.function);
        Ok(())
    }

    fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }
}
