//! Export to plain burn layers: expanded conv filters in `burn::nn::Conv2d`, batch norm
//! statistics repeated per channel in `burn::nn::BatchNorm` (inference mode), plain pools and
//! the head. The exported model computes the same function as the original in inference mode
//! and needs nothing of equivar's equivariant machinery.

use burn::module::{Module, Param};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AvgPool2d, MaxPool2d};
use burn::nn::{BatchNorm, Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use crate::error::Result;
use crate::nn::{Net, Pointwise};
use crate::space::Window;
use crate::spec::Reduce;

/// A max or mean over groups of `order` consecutive channels (the exported group pool).
#[derive(Module, Debug)]
pub struct ChannelGroupReduce {
    #[module(skip)]
    pub order: usize,
    #[module(skip)]
    pub reduce: Reduce,
}

/// A linear map on `[b, c, 1, 1]` features.
#[derive(Module, Debug)]
pub struct PooledLinear {
    pub linear: Linear,
}

/// One plain layer.
#[derive(Module, Debug)]
pub enum PlainLayer {
    Conv(Conv2d),
    BatchNorm(BatchNorm),
    MaxPool(MaxPool2d),
    AvgPool(AvgPool2d),
    GlobalAvgPool(AdaptiveAvgPool2d),
    GroupReduce(ChannelGroupReduce),
    Activation(Pointwise),
    Linear(PooledLinear),
    NormNonlinearity(crate::nn::NormNonlinearity),
    Gated(crate::nn::GatedNonlinearity),
    NormPool(crate::nn::NormPool),
    Fourier(crate::nn::FourierPointwise),
    NormMaxPool(crate::nn::NormMaxPool),
    Upsample(crate::nn::Upsample),
}

/// A model of plain burn layers, for inference.
#[derive(Module, Debug)]
pub struct PlainNet {
    pub layers: Vec<PlainLayer>,
}

impl PlainNet {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.layers.iter().fold(x, |x, layer| match layer {
            PlainLayer::Conv(l) => l.forward(x),
            PlainLayer::BatchNorm(l) => l.forward(x),
            PlainLayer::MaxPool(l) => l.forward(x),
            PlainLayer::AvgPool(l) => l.forward(x),
            PlainLayer::GlobalAvgPool(l) => l.forward(x),
            PlainLayer::GroupReduce(l) => crate::nn::group_reduce(x, l.order, l.reduce),
            PlainLayer::Activation(l) => l.forward(x),
            PlainLayer::Linear(l) => crate::nn::linear_on_pooled(&l.linear, x),
            PlainLayer::NormNonlinearity(l) => l.forward(x),
            PlainLayer::Gated(l) => l.forward(x),
            PlainLayer::NormPool(l) => l.forward(x),
            PlainLayer::Fourier(l) => l.forward(x),
            PlainLayer::NormMaxPool(l) => l.forward(x),
            PlainLayer::Upsample(l) => l.forward(x),
        })
    }
}

fn padding(w: Window) -> PaddingConfig2d {
    PaddingConfig2d::Explicit(w.padding, w.padding, w.padding, w.padding)
}

/// A burn conv with this filter, bias and window.
pub(crate) fn plain_conv(filter: Tensor<4>, bias: Option<Tensor<1>>, w: Window) -> Conv2d {
    let [out, inp, k, _] = filter.dims();
    let device = filter.device();
    let mut conv = Conv2dConfig::new([inp, out], [k, k])
        .with_stride([w.stride, w.stride])
        .with_dilation([w.dilation, w.dilation])
        .with_padding(padding(w))
        .with_bias(bias.is_some())
        .init(&device);
    conv.weight = Param::from_tensor(filter);
    conv.bias = bias.map(Param::from_tensor);
    conv
}

/// `[f] -> [f * times]`, each entry repeated `times` times in a row.
pub(crate) fn repeat_each(t: Tensor<1>, times: usize) -> Tensor<1> {
    let [n] = t.dims();
    t.unsqueeze_dim::<2>(1)
        .repeat_dim(1, times)
        .reshape([n * times])
}

impl Net {
    /// Plain burn layers with identical inference outputs (batch norm uses running
    /// statistics, dropout is the identity). The result lives on the same device, without
    /// autodiff. Each layer exports itself ([`crate::layers::LayerModule::export`]); a layer
    /// without a plain counterpart is an error naming it.
    pub fn export(&self) -> Result<PlainNet> {
        let net = self.valid();
        let mut layers = Vec::with_capacity(net.layers.len());
        for (layer, plan) in net.layers.iter().zip(&self.plan.layers) {
            layers.extend(layer.export().map_err(|e| e.in_layer(&plan.name))?);
        }
        Ok(PlainNet { layers })
    }
}
