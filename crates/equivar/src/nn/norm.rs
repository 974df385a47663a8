//! Equivariant batch norm: one mean, variance, scale and shift per field, shared over the
//! field's group axis (and all pixels), so normalising commutes with permuting that axis.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use super::check_channels;
use crate::field::FieldType;
use crate::ops::{self, Kernels};

/// Batch norm over fields. Training mode (batch statistics, running averages updated) on
/// autodiff devices while the module is in training state; inference mode (running
/// statistics) otherwise, e.g. after `Module::valid`.
#[derive(Module, Debug)]
pub struct EquivariantBatchNorm {
    /// burn's batch norm over `fields` features; we fold the group axis into the pixels.
    pub norm: BatchNorm,
    #[module(skip)]
    pub name: String,
    #[module(skip)]
    pub field_type: FieldType,
    /// Which implementation runs the training-mode normalisation.
    #[module(skip)]
    pub kernels: Kernels,
}

impl EquivariantBatchNorm {
    pub fn new(
        name: &str,
        field_type: FieldType,
        epsilon: f64,
        momentum: f64,
        device: &Device,
    ) -> Self {
        EquivariantBatchNorm {
            norm: BatchNormConfig::new(field_type.fields)
                .with_epsilon(epsilon)
                .with_momentum(momentum)
                .init(device),
            name: name.to_string(),
            field_type,
            kernels: Kernels::default(),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        if !self.is_training(&x) {
            check_channels(&self.name, self.field_type.channels(), &x);
            let dims = x.dims();
            return self.norm.forward(self.folded(x)).reshape(dims);
        }
        self.forward_train(x, false)
    }

    /// Whether `x` is normalised by its batch's statistics: on an autodiff device while the
    /// module is in training state.
    pub fn is_training(&self, x: &Tensor<4>) -> bool {
        x.device().is_autodiff() && self.norm.training.is_enabled()
    }

    /// `[b, fields * field_size, h, w]` as `[b, fields, field_size * h, w]`: burn's batch norm
    /// then normalises each field over its components and pixels.
    fn folded(&self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, h, w] = x.dims();
        let fields = self.field_type.fields;
        x.reshape([b, fields, (c / fields) * h, w])
    }

    /// burn's `BatchNorm::forward_train` with the statistics and the normalisation from
    /// [`ops::batch_norm_train`] (equivar's kernels on the CPU): the running statistics are
    /// updated exactly as burn updates them. With `relu`, the output's ReLU, in the same
    /// passes where the kernels serve `x`: one read and one write of the feature map fewer
    /// forward, two reads and a write fewer backward, than batch norm then ReLU.
    pub fn forward_train(&self, x: Tensor<4>, relu: bool) -> Tensor<4> {
        check_channels(&self.name, self.field_type.channels(), &x);
        let dims = x.dims();
        let x = self.folded(x);
        let norm = &self.norm;
        let device = x.device();
        let (y, mean, variance) = ops::batch_norm_train(
            x,
            (norm.gamma.val(), norm.beta.val()),
            norm.epsilon,
            relu,
            self.kernels,
        );
        let m = norm.momentum;
        let blend = |running: Tensor<1>, batch: Tensor<1>| {
            running
                .to_device(&device)
                .mul_scalar(1.0 - m)
                .add(batch.detach().mul_scalar(m))
                .detach()
        };
        norm.running_mean
            .update(blend(norm.running_mean.value_sync(), mean));
        norm.running_var
            .update(blend(norm.running_var.value_sync(), variance));
        y.reshape(dims)
    }

    /// Normalises `x` with its own batch statistics (as in training, without touching the
    /// running statistics) and returns them: `(y, mean, variance)` per field, the variance
    /// biased (over the batch, the group axis and the pixels).
    pub fn forward_batch_stats(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
        check_channels(&self.name, self.field_type.channels(), &x);
        let dims = x.dims();
        let norm = &self.norm;
        let (y, mean, variance) = ops::batch_norm_train(
            self.folded(x),
            (norm.gamma.val(), norm.beta.val()),
            norm.epsilon,
            false,
            self.kernels,
        );
        (y.reshape(dims), mean, variance)
    }

    /// Replaces the running statistics (used in inference mode) with `mean` and `variance`.
    pub fn set_running_stats(&self, mean: Tensor<1>, variance: Tensor<1>) {
        let norm = &self.norm;
        let device = norm.running_mean.value_sync().device();
        norm.running_mean.update(mean.detach().to_device(&device));
        norm.running_var
            .update(variance.detach().to_device(&device));
        // Single-threaded update then sync: the new values replace the old ones outright.
        let _ = (
            norm.running_mean.value_sync(),
            norm.running_var.value_sync(),
        );
    }
}
