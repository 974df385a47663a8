//! Batch norm with statistics, scale and shift shared over the components of each field, so
//! it commutes with the group (which only moves pixels and permutes a field's components).

use burn::module::{Module, Param, RunningState};
use burn::nn::BatchNormConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_fields, invalid, plan_fields,
};
use crate::error::Result;
use crate::export::{PlainLayer, repeat_each};
use crate::frozen::{FrozenBuilder, host};
use crate::nn::EquivariantBatchNorm;
use crate::ops::Kernels;
use crate::plan::LayerPlan;

/// Batch norm per field (PyTorch's defaults: epsilon 1e-5, momentum 0.1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BatchNorm {
    pub epsilon: f64,
    pub momentum: f64,
}

impl LayerRule for BatchNorm {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        let ok =
            self.epsilon.is_finite() && self.epsilon > 0.0 && (0.0..=1.0).contains(&self.momentum);
        if !ok {
            return Err(invalid(
                input.layer,
                "batch norm needs epsilon > 0 and momentum in [0, 1]",
            ));
        }
        expect_fields(
            input,
            "this batch norm shares statistics over trivial and regular fields of a finite group",
        )?;
        Ok(PlanStep::same(input))
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        Ok(Layer::BatchNorm(EquivariantBatchNorm::new(
            &plan.name,
            plan_fields(plan)?,
            self.epsilon,
            self.momentum,
            device,
        )))
    }
}

impl LayerModule for EquivariantBatchNorm {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        EquivariantBatchNorm::forward(self, x)
    }

    /// burn's per-channel batch norm, each field's statistics repeated over its components.
    fn export(&self) -> Result<Option<PlainLayer>> {
        let times = self.field_type.field_size();
        let bn = &self.norm;
        let device = bn.gamma.val().device();
        let mut plain = BatchNormConfig::new(self.field_type.channels())
            .with_epsilon(bn.epsilon)
            .with_momentum(bn.momentum)
            .init(&device);
        plain.gamma = Param::from_tensor(repeat_each(bn.gamma.val(), times));
        plain.beta = Param::from_tensor(repeat_each(bn.beta.val(), times));
        plain.running_mean = RunningState::new(repeat_each(bn.running_mean.value(), times));
        plain.running_var = RunningState::new(repeat_each(bn.running_var.value(), times));
        Ok(Some(PlainLayer::BatchNorm(plain.valid())))
    }

    /// The inference-mode affine map per channel, folded into the conv before it if any.
    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        let norm = &self.norm;
        let times = self.field_type.field_size();
        let gamma = host(norm.gamma.val());
        let beta = host(norm.beta.val());
        let mean = host(norm.running_mean.value());
        let var = host(norm.running_var.value());
        let (scale, shift): (Vec<f32>, Vec<f32>) = (0..gamma.len())
            .flat_map(|f| {
                let scale = gamma[f] as f64 / (var[f] as f64 + norm.epsilon).sqrt();
                let shift = beta[f] as f64 - mean[f] as f64 * scale;
                std::iter::repeat_n((scale as f32, shift as f32), times)
            })
            .unzip();
        frozen.affine(scale, shift);
        Ok(())
    }

    fn batch_norm(&self) -> Option<&EquivariantBatchNorm> {
        Some(self)
    }

    fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }
}
