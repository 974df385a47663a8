//! Pointwise nonlinearities, field dropout and the linear head on invariant features.

use burn::module::Flag;
use burn::module::{Module, Param};
use burn::nn::{Linear, LinearConfig};
use burn::tensor::activation;
use burn::tensor::{Device, Distribution, Tensor};

use super::FieldLayout;
use super::check_channels;
use crate::ops::{self, Kernels};
use crate::spec::Activation;

/// A pointwise nonlinearity. Equivariant on trivial and regular fields: the group only moves
/// pixels and permutes channels, which commutes with any function applied entry by entry.
#[derive(Module, Debug)]
pub struct Pointwise {
    #[module(skip)]
    pub function: Activation,
    /// Which implementation runs a ReLU (equivar's runs on all threads).
    #[module(skip)]
    pub kernels: Kernels,
}

impl Pointwise {
    pub fn new(function: Activation) -> Self {
        Pointwise {
            function,
            kernels: Kernels::default(),
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        match self.function {
            Activation::Relu => ops::relu(x, self.kernels),
            function => apply_activation(function, x),
        }
    }
}

/// Applies `function` entry by entry. Shared with the exported model.
pub(crate) fn apply_activation(function: Activation, x: Tensor<4>) -> Tensor<4> {
    match function {
        Activation::Relu => activation::relu(x),
        Activation::LeakyRelu { negative_slope } => activation::leaky_relu(x, negative_slope),
        Activation::Elu { alpha } => activation::elu(x, alpha),
        Activation::Tanh => activation::tanh(x),
        Activation::Sigmoid => activation::sigmoid(x),
    }
}

/// Drops whole fields (every component and pixel of a field, per sample) with probability
/// `p`, scaling the kept ones by `1 / (1 - p)`. One mask value per field keeps the layer
/// exactly equivariant for every draw, whatever the fields' representations. Active only in
/// training (autodiff device, training state); the identity otherwise.
#[derive(Module, Debug)]
pub struct FieldDropout {
    pub training: Param<Flag>,
    #[module(skip)]
    pub p: f64,
    #[module(skip)]
    pub name: String,
    #[module(skip)]
    pub layout: FieldLayout,
}

impl FieldDropout {
    pub fn new(name: &str, layout: FieldLayout, p: f64) -> Self {
        FieldDropout {
            training: Param::from_bool(true),
            p,
            name: name.to_string(),
            layout,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.layout.channels(), &x);
        let active = x.device().is_autodiff() && self.training.is_enabled() && self.p > 0.0;
        if !active {
            return x;
        }
        let b = x.dims()[0];
        let keep = Tensor::<4>::random(
            [b, self.layout.fields(), 1, 1],
            Distribution::Bernoulli(1.0 - self.p),
            &x.device(),
        )
        .div_scalar(1.0 - self.p);
        self.layout.scale(x, keep)
    }
}

/// A linear map on invariant features `[batch, features, 1, 1] -> [batch, out, 1, 1]`.
#[derive(Module, Debug)]
pub struct InvariantLinear {
    pub linear: Linear,
    #[module(skip)]
    pub name: String,
    /// Invariant input features.
    #[module(skip)]
    pub in_features: usize,
}

impl InvariantLinear {
    pub fn new(
        name: &str,
        in_features: usize,
        out_features: usize,
        bias: bool,
        device: &Device,
    ) -> Self {
        InvariantLinear {
            linear: LinearConfig::new(in_features, out_features)
                .with_bias(bias)
                .init(device),
            name: name.to_string(),
            in_features,
        }
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.in_features, &x);
        linear_on_pooled(&self.linear, x)
    }
}

/// `[b, c, 1, 1] -> linear -> [b, out, 1, 1]`. Shared with the exported model.
pub(crate) fn linear_on_pooled(linear: &Linear, x: Tensor<4>) -> Tensor<4> {
    let [b, c, _, _] = x.dims();
    let y = linear.forward(x.reshape([b, c]));
    let out = y.dims()[1];
    y.reshape([b, out, 1, 1])
}
