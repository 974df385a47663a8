//! Equivariant batch norm: one mean, variance, scale and shift per field, shared over the
//! field's group axis (and all pixels), so normalising commutes with permuting that axis.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig};
use burn::tensor::{Device, Tensor};

use super::check_channels;
use crate::field::FieldType;

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
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.field_type.channels(), &x);
        let [b, c, h, w] = x.dims();
        let fields = self.field_type.fields;
        let folded = x.reshape([b, fields, (c / fields) * h, w]);
        self.norm.forward(folded).reshape([b, c, h, w])
    }
}
