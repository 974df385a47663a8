//! Bilinear upsampling (escnn's `R2Upsampling`): every channel interpolated alike, so it takes
//! fields of any representation; the interpolation is symmetric under the square's
//! symmetries, so it is exact at every input size.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_plane, invalid};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn;
use crate::plan::LayerPlan;

/// Upsampling by `scale` (model files: `"kind": "upsample"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Upsample {
    pub scale: usize,
    /// Corner-aligned sampling instead of half-pixel (PyTorch's `align_corners`).
    #[serde(default)]
    pub align_corners: bool,
}

impl LayerRule for Upsample {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        expect_plane(input)?;
        if !(2..=16).contains(&self.scale) {
            return Err(invalid(
                input.layer,
                format!("upsampling scale {} is not in 2..=16", self.scale),
            ));
        }
        Ok(PlanStep {
            out_size: input.in_size * self.scale,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::Upsample(nn::Upsample {
            scale: self.scale,
            align_corners: self.align_corners,
            channels: plan.in_type.channels(),
            name: plan.name.clone(),
        }))
    }
}

impl LayerModule for nn::Upsample {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::Upsample::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::Upsample(self.clone())))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.upsample(self.scale, self.align_corners);
        Ok(())
    }
}
