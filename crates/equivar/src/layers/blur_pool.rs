//! Antialiased average pooling: a Gaussian blur at a stride, the same on every channel, so it
//! takes fields of any representation. The filter is symmetric under the square's
//! symmetries, so the layer is exact where a conv with its window is (the grid condition).

use burn::module::Param;
use burn::nn::PaddingConfig2d;
use burn::nn::conv::Conv2dConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_plane, invalid, windowed};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn::{self, gaussian_filter};
use crate::plan::LayerPlan;
use crate::space::Window;

/// A Gaussian blur of standard deviation `sigma` pixels, then every `stride`-th pixel (model
/// files: `"kind": "blur_pool"`). The filter spans `2 round(3 sigma) + 1` pixels (DESIGN.md 2.6) and is padded
/// by half that, as escnn's `PointwiseAvgPoolAntialiased2d` does.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BlurPool {
    #[serde(default = "default_sigma")]
    pub sigma: f64,
    #[serde(default = "default_stride")]
    pub stride: usize,
}

fn default_sigma() -> f64 {
    0.6
}

fn default_stride() -> usize {
    2
}

impl BlurPool {
    /// The window of the blur's filter.
    pub fn filter_window(&self) -> Window {
        let kernel = 2 * (3.0 * self.sigma).round() as usize + 1;
        Window::new(kernel).stride(self.stride).padding(kernel / 2)
    }
}

impl LayerRule for BlurPool {
    fn window(&self) -> Option<Window> {
        Some(self.filter_window())
    }

    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        expect_plane(input)?;
        if !(self.sigma.is_finite() && self.sigma > 0.0 && self.sigma <= 8.0) {
            return Err(invalid(
                input.layer,
                format!(
                    "blur sigma {} is not in (0, 8] pixels; escnn's default is 0.6",
                    self.sigma
                ),
            ));
        }
        if self.stride == 0 {
            return Err(invalid(input.layer, "blur pool stride must be at least 1"));
        }
        windowed(input, self.filter_window(), input.in_type.clone(), false)
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        let window = self.filter_window();
        Ok(Layer::BlurPool(nn::BlurPool {
            filter: gaussian_filter(self.sigma, window.kernel),
            window,
            channels: plan.in_type.channels(),
            name: plan.name.clone(),
        }))
    }
}

impl LayerModule for nn::BlurPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::BlurPool::forward(self, x)
    }

    /// burn's depthwise conv (one group per channel) with the Gaussian filter.
    fn export(&self) -> Result<Option<PlainLayer>> {
        let w = self.window;
        let device = Device::default();
        let mut conv = Conv2dConfig::new([self.channels, self.channels], [w.kernel, w.kernel])
            .with_stride([w.stride, w.stride])
            .with_padding(PaddingConfig2d::Explicit(
                w.padding, w.padding, w.padding, w.padding,
            ))
            .with_groups(self.channels)
            .with_bias(false)
            .init(&device);
        let like = Tensor::<4>::zeros([1, 1, 1, 1], &device);
        conv.weight = Param::from_tensor(self.depthwise_filter(&like));
        Ok(Some(PlainLayer::Conv(conv)))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.blur(self.filter.clone(), self.window);
        Ok(())
    }
}
