//! Export to plain burn layers: expanded conv filters in `burn::nn::Conv2d`, batch norm
//! statistics repeated per channel in `burn::nn::BatchNorm` (inference mode), plain pools and
//! the head. The exported model computes the same function as the original in inference mode
//! and needs nothing of equivar's equivariant machinery.

use burn::module::{Module, Param, RunningState};
use burn::nn::conv::{Conv2d, Conv2dConfig};
use burn::nn::pool::{AdaptiveAvgPool2d, AdaptiveAvgPool2dConfig, AvgPool2d, AvgPool2dConfig};
use burn::nn::pool::{MaxPool2d, MaxPool2dConfig};
use burn::nn::{BatchNorm, BatchNormConfig, Linear, PaddingConfig2d};
use burn::tensor::Tensor;

use crate::nn::{Layer, Net, Pointwise};
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
        })
    }
}

fn padding(w: Window) -> PaddingConfig2d {
    PaddingConfig2d::Explicit(w.padding, w.padding, w.padding, w.padding)
}

fn plain_conv(filter: Tensor<4>, bias: Option<Tensor<1>>, w: Window) -> Conv2d {
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
fn repeat_each(t: Tensor<1>, times: usize) -> Tensor<1> {
    let [n] = t.dims();
    t.unsqueeze_dim::<2>(1)
        .repeat_dim(1, times)
        .reshape([n * times])
}

impl Net {
    /// Plain burn layers with identical inference outputs (batch norm uses running
    /// statistics, dropout is the identity). The result lives on the same device, without
    /// autodiff.
    pub fn export(&self) -> PlainNet {
        let net = self.valid();
        let layers = net
            .layers
            .iter()
            .filter_map(|layer| {
                Some(match layer {
                    Layer::LiftingConv(l) => PlainLayer::Conv(plain_conv(
                        l.expanded_filter(),
                        l.expanded_bias(),
                        l.geometry.window,
                    )),
                    Layer::GroupConv(l) => PlainLayer::Conv(plain_conv(
                        l.expanded_filter(),
                        l.expanded_bias(),
                        l.geometry.window,
                    )),
                    Layer::SpatialPool(l) => {
                        let w = l.window;
                        match l.reduce {
                            Reduce::Max => PlainLayer::MaxPool(
                                MaxPool2dConfig::new([w.kernel, w.kernel])
                                    .with_strides([w.stride, w.stride])
                                    .with_padding(padding(w))
                                    .with_dilation([w.dilation, w.dilation])
                                    .init(),
                            ),
                            Reduce::Mean => PlainLayer::AvgPool(
                                AvgPool2dConfig::new([w.kernel, w.kernel])
                                    .with_strides([w.stride, w.stride])
                                    .with_padding(padding(w))
                                    .init(),
                            ),
                        }
                    }
                    Layer::GlobalAvgPool(_) => {
                        PlainLayer::GlobalAvgPool(AdaptiveAvgPool2dConfig::new([1, 1]).init())
                    }
                    Layer::GroupPool(l) => PlainLayer::GroupReduce(ChannelGroupReduce {
                        order: l.field_type.group.order(),
                        reduce: l.reduce,
                    }),
                    Layer::BatchNorm(l) => {
                        let times = l.field_type.field_size();
                        let bn = &l.norm;
                        let device = bn.gamma.val().device();
                        let mut plain = BatchNormConfig::new(l.field_type.channels())
                            .with_epsilon(bn.epsilon)
                            .with_momentum(bn.momentum)
                            .init(&device);
                        plain.gamma = Param::from_tensor(repeat_each(bn.gamma.val(), times));
                        plain.beta = Param::from_tensor(repeat_each(bn.beta.val(), times));
                        plain.running_mean =
                            RunningState::new(repeat_each(bn.running_mean.value(), times));
                        plain.running_var =
                            RunningState::new(repeat_each(bn.running_var.value(), times));
                        PlainLayer::BatchNorm(plain.valid())
                    }
                    Layer::Activation(l) => PlainLayer::Activation(Pointwise {
                        function: l.function,
                    }),
                    Layer::Dropout(_) => return None,
                    Layer::Linear(l) => PlainLayer::Linear(PooledLinear {
                        linear: l.linear.clone(),
                    }),
                })
            })
            .collect();
        PlainNet { layers }
    }
}
