//! Spatial max and average pooling, channel by channel: equivariant exactly when the pooling
//! windows sit symmetrically in the image (see [`Window::is_exact_pool`]).

use burn::nn::PaddingConfig2d;
use burn::nn::pool::{AvgPool2dConfig, MaxPool2dConfig};
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_plane, invalid, windowed};
use crate::error::{EquivarError, Result};
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn::SpatialPool;
use crate::ops::Kernels;
use crate::plan::LayerPlan;
use crate::space::Window;
use crate::spec::Reduce;

/// Max over each window (any kernel, stride, dilation; padding at most half the kernel).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MaxPool {
    pub window: Window,
}

/// Mean over each window, zero padding counted (PyTorch's default); no dilation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct AvgPool {
    pub window: Window,
}

/// Pools may pad at most half their kernel, so that no window sees only padding.
pub(super) fn check_padding(input: &PlanInput, window: Window) -> Result<()> {
    expect_plane(input)?;
    if 2 * window.padding > window.kernel {
        return Err(invalid(
            input.layer,
            format!(
                "pool padding {} exceeds half the kernel {}: some windows would see only \
                 padding; use padding <= kernel / 2",
                window.padding, window.kernel
            ),
        ));
    }
    Ok(())
}

fn build(plan: &LayerPlan, reduce: Reduce, window: Window) -> Result<Layer> {
    Ok(Layer::SpatialPool(SpatialPool {
        name: plan.name.clone(),
        reduce,
        window,
        channels: plan.in_type.channels(),
        kernels: Kernels::default(),
    }))
}

impl LayerRule for MaxPool {
    fn window(&self) -> Option<Window> {
        Some(self.window)
    }

    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        check_padding(input, self.window)?;
        if !input.in_type.permutes_components() {
            return Err(EquivarError::FieldTypeMismatch {
                layer: input.layer.to_string(),
                expected: "trivial, regular or quotient fields".to_string(),
                found: input.in_type.to_string(),
                fix: "a channel-wise max does not commute with the rotation of irrep fields; \
                      use norm max pooling or average pooling on them"
                    .to_string(),
            });
        }
        windowed(input, self.window, input.in_type.clone(), true)
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        build(plan, Reduce::Max, self.window)
    }
}

impl LayerRule for AvgPool {
    fn window(&self) -> Option<Window> {
        Some(self.window)
    }

    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        check_padding(input, self.window)?;
        if self.window.dilation != 1 {
            return Err(invalid(
                input.layer,
                "average pooling has no dilation; use dilation 1",
            ));
        }
        windowed(input, self.window, input.in_type.clone(), true)
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        build(plan, Reduce::Mean, self.window)
    }
}

impl LayerModule for SpatialPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        SpatialPool::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        let w = self.window;
        let padding = PaddingConfig2d::Explicit(w.padding, w.padding, w.padding, w.padding);
        Ok(Some(match self.reduce {
            Reduce::Max => PlainLayer::MaxPool(
                MaxPool2dConfig::new([w.kernel, w.kernel])
                    .with_strides([w.stride, w.stride])
                    .with_padding(padding)
                    .with_dilation([w.dilation, w.dilation])
                    .init(),
            ),
            Reduce::Mean => PlainLayer::AvgPool(
                AvgPool2dConfig::new([w.kernel, w.kernel])
                    .with_strides([w.stride, w.stride])
                    .with_padding(padding)
                    .init(),
            ),
        }))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.pool(self.reduce, self.window);
        Ok(())
    }

    fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }
}
