//! The gated nonlinearity (Weiler et al. 2018): fields of any representation, each scaled by
//! the sigmoid of an invariant gate. The gates are the input's last term, one trivial field
//! per gated field: `"C8: 4x irrep(1) + 2x irrep(2) + 6x trivial"` gates 6 fields and gives
//! `"C8: 4x irrep(1) + 2x irrep(2)"`. A conv before it makes the gates with the fields.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, invalid};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::field::{FeatureType, ReprKind};
use crate::frozen::{FieldOp, FrozenBuilder};
use crate::nn::{self, FieldLayout};
use crate::plan::LayerPlan;

/// Gates every field but the last term's, which are the gates (model files:
/// `"kind": "gated_nonlinearity"`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct GatedNonlinearity {}

impl GatedNonlinearity {
    /// The gated fields' type: the input without its gates, or the error saying what the
    /// input must look like.
    pub fn out_type(layer: &str, in_type: &FeatureType) -> Result<FeatureType> {
        let shape = "the input must end with the gates, one trivial field per gated field \
                     (e.g. `C8: 4x irrep(1) + 2x irrep(2) + 6x trivial`); let the conv before \
                     make them";
        let Some((&(gates, last), gated)) = in_type.terms.split_last() else {
            return Err(invalid(layer, shape));
        };
        if last != ReprKind::Trivial || gated.is_empty() {
            return Err(invalid(
                layer,
                format!("`{in_type}` has no gated fields before trivial gates; {shape}"),
            ));
        }
        let fields: usize = gated.iter().map(|(count, _)| count).sum();
        if fields != gates {
            return Err(invalid(
                layer,
                format!("`{in_type}` has {fields} fields to gate but {gates} gates; {shape}"),
            ));
        }
        FeatureType::new(in_type.group, gated.to_vec())
    }
}

impl LayerRule for GatedNonlinearity {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        Ok(PlanStep {
            out_type: Self::out_type(input.layer, input.in_type)?,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::Gated(nn::GatedNonlinearity {
            gated: FieldLayout::of(&plan.out_type),
            name: plan.name.clone(),
        }))
    }
}

impl LayerModule for nn::GatedNonlinearity {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::GatedNonlinearity::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::Gated(self.clone())))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.field_op(&self.gated, FieldOp::Gate);
        Ok(())
    }
}
