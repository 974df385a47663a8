//! Batch norm: on trivial and regular fields of a finite group the inner batch norm (escnn's
//! `InnerBatchNorm`: statistics, scale and shift shared over the components of each field, so
//! it commutes with the group, which only moves pixels and permutes a field's components);
//! on fields of any other type the IID batch norm ([`crate::nn::IidBatchNorm`]), which
//! computes the same on regular fields.

use burn::module::{Module, Param, RunningState};
use burn::nn::BatchNormConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{BatchStatistics, Layer, LayerModule, LayerRule, PlanInput, PlanStep, invalid};
use crate::error::Result;
use crate::export::{PlainLayer, repeat_each};
use crate::frozen::{FrozenBuilder, host};
use crate::nn::{EquivariantBatchNorm, IidBatchNorm};
use crate::ops::Kernels;
use crate::plan::LayerPlan;
use crate::spec::Activation;

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
        Ok(PlanStep::same(input))
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        Ok(match plan.in_type.field_type() {
            Some(fields) => Layer::BatchNorm(EquivariantBatchNorm::new(
                &plan.name,
                fields,
                self.epsilon,
                self.momentum,
                device,
            )),
            None => Layer::IidBatchNorm(IidBatchNorm::new(
                &plan.name,
                &plan.in_type,
                self.epsilon,
                self.momentum,
                device,
            )),
        })
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

    fn batch_norm(&self) -> Option<&dyn BatchStatistics> {
        Some(self)
    }

    fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }

    /// In training, a ReLU after the batch norm runs in its passes (where both layers use
    /// the same kernels: a per-layer choice is kept).
    fn forward_fused(&self, next: &Layer, x: &Tensor<4>) -> Option<Tensor<4>> {
        let relu = matches!(next, Layer::Activation(a)
            if a.function == Activation::Relu && a.kernels == self.kernels);
        (relu && self.is_training(x)).then(|| self.forward_train(x.clone(), true))
    }
}

/// Moments: the mean and the second moment per field.
impl BatchStatistics for EquivariantBatchNorm {
    fn batch_moments(&self, x: Tensor<4>) -> (Tensor<4>, Vec<Tensor<1>>) {
        let (y, mean, variance) = self.forward_batch_stats(x);
        let second = variance + mean.clone().square();
        (y, vec![mean, second])
    }

    fn set_from_moments(&self, moments: Vec<Tensor<1>>) {
        let [mean, second] = <[Tensor<1>; 2]>::try_from(moments).expect("two moments");
        let variance = (second - mean.clone().square()).clamp_min(0.0);
        self.set_running_stats(mean, variance);
    }

    fn running_len(&self) -> usize {
        2 * self.field_type.fields
    }
}

impl LayerModule for IidBatchNorm {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        IidBatchNorm::forward(self, x)
    }

    /// burn's per-channel batch norm: the invariant mean per channel, each field's variance,
    /// scale repeated over its channels, the shift per channel.
    fn export(&self) -> Result<Option<PlainLayer>> {
        let device = self.gamma.val().device();
        let channels = self.channels();
        let mut plain = BatchNormConfig::new(channels)
            .with_epsilon(self.epsilon)
            .with_momentum(self.momentum)
            .init(&device);
        let like = Tensor::<4>::zeros([1, channels, 1, 1], &device);
        plain.gamma = Param::from_tensor(self.per_channel(self.gamma.val()));
        plain.beta = Param::from_tensor(self.shift(&like));
        plain.running_mean = RunningState::new(self.running_mean.value());
        plain.running_var = RunningState::new(self.per_channel(self.running_var.value()));
        Ok(Some(PlainLayer::BatchNorm(plain.valid())))
    }

    /// The inference-mode affine map per channel, folded into the conv before it if any.
    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        let channels = self.channels();
        let like = Tensor::<4>::zeros([1, channels, 1, 1], &self.gamma.val().device());
        let gamma = host(self.per_channel(self.gamma.val()));
        let var = host(self.per_channel(self.running_var.value()));
        let mean = host(self.running_mean.value());
        let beta = host(self.shift(&like));
        let (scale, shift) = (0..channels)
            .map(|c| {
                let scale = gamma[c] as f64 / (var[c] as f64 + self.epsilon).sqrt();
                let shift = beta[c] as f64 - mean[c] as f64 * scale;
                (scale as f32, shift as f32)
            })
            .unzip();
        frozen.affine(scale, shift);
        Ok(())
    }

    fn batch_norm(&self) -> Option<&dyn BatchStatistics> {
        Some(self)
    }
}

/// Moments: the invariant mean per channel and the mean squared norm per component per field
/// (the variance is that minus the mean's squared norm per component: the mean is the
/// projection of the full mean on the trivial irreps, so the cross term is its squared norm).
impl BatchStatistics for IidBatchNorm {
    fn batch_moments(&self, x: Tensor<4>) -> (Tensor<4>, Vec<Tensor<1>>) {
        let (y, mean, var) = self.forward_batch_stats(x);
        let second = var + self.mean_square_per_component(mean.clone());
        (y, vec![mean, second])
    }

    fn set_from_moments(&self, moments: Vec<Tensor<1>>) {
        let [mean, second] = <[Tensor<1>; 2]>::try_from(moments).expect("two moments");
        let var = (second - self.mean_square_per_component(mean.clone())).clamp_min(0.0);
        self.set_running_stats(mean, var);
    }

    fn running_len(&self) -> usize {
        self.channels() + self.fields()
    }
}
