//! Norm max pooling: for each field and window, the field's vector of largest norm. The max
//! pool for fields of any representation, irreps included; exact where a max pool is (a
//! mirror-symmetric set of in-image taps, [`Window::is_exact_pool`]).

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::spatial_pool::check_padding;
use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, windowed};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn::{self, FieldLayout};
use crate::plan::LayerPlan;
use crate::space::Window;

/// Norm max pooling over `window` (model files: `"kind": "norm_max_pool"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct NormMaxPool {
    pub window: Window,
}

impl LayerRule for NormMaxPool {
    fn window(&self) -> Option<Window> {
        Some(self.window)
    }

    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        check_padding(input, self.window)?;
        windowed(input, self.window, input.in_type.clone(), true)
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::NormMaxPool(nn::NormMaxPool {
            layout: FieldLayout::of(&plan.in_type),
            window: self.window,
            name: plan.name.clone(),
        }))
    }
}

impl LayerModule for nn::NormMaxPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::NormMaxPool::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::NormMaxPool(self.clone())))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.norm_max_pool(&self.layout, self.window);
        Ok(())
    }
}
