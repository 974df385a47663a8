//! Mean over all pixels: `n x n -> 1 x 1`, invariant to every permutation of pixels.

use burn::nn::pool::AdaptiveAvgPool2dConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn;
use crate::plan::LayerPlan;

/// The global average pool (no settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPool {}

impl LayerRule for GlobalAvgPool {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        Ok(PlanStep {
            out_size: 1,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::GlobalAvgPool(nn::GlobalAvgPool {
            name: plan.name.clone(),
            field_type: plan.in_type,
        }))
    }
}

impl LayerModule for nn::GlobalAvgPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::GlobalAvgPool::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::GlobalAvgPool(
            AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        )))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.global_avg_pool();
        Ok(())
    }
}
