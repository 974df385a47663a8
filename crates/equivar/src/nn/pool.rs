//! Pooling over space (channel by channel, so it commutes with the group exactly when its
//! sampling grid is symmetric) and over the group axis (giving invariant fields).

use burn::module::Module;
use burn::tensor::Tensor;
use burn::tensor::module::avg_pool2d;
use burn::tensor::ops::AvgPoolOptions;

use super::check_channels;
use crate::field::FieldType;
use crate::ops::{self, Kernels};
use crate::space::Window;
use crate::spec::Reduce;

/// Spatial max or average pooling, channel by channel, with any kernel, stride, padding (at
/// most half the kernel) and dilation (max only). Average pooling counts zero padding in the
/// average (PyTorch's default).
#[derive(Module, Debug)]
pub struct SpatialPool {
    #[module(skip)]
    pub name: String,
    #[module(skip)]
    pub reduce: Reduce,
    #[module(skip)]
    pub window: Window,
    /// Channels of the input.
    #[module(skip)]
    pub channels: usize,
    /// Which implementation runs max pooling.
    #[module(skip)]
    pub kernels: Kernels,
}

impl SpatialPool {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.channels, &x);
        let w = self.window;
        let (k, s, p) = ([w.kernel; 2], [w.stride; 2], [w.padding; 2]);
        match self.reduce {
            Reduce::Max => {
                ops::max_pool2d(x, w.kernel, w.stride, w.padding, w.dilation, self.kernels)
            }
            Reduce::Mean => avg_pool2d(x, AvgPoolOptions::new(k).with_stride(s).with_padding(p)),
        }
    }
}

/// Mean over the domain: `[b, c, h, w] -> [b, c, 1, 1]`. On the plane the mean of all pixels
/// (invariant to any permutation of pixels); on the sphere the quadrature-weighted integral
/// over 4 pi (`ring_weights`: per latitude ring, summing to 1 / nlon), which approximates the
/// rotation-invariant mean of the continuous signal.
#[derive(Module, Debug)]
pub struct GlobalAvgPool {
    #[module(skip)]
    pub name: String,
    /// Channels of the input.
    #[module(skip)]
    pub channels: usize,
    #[module(skip)]
    pub ring_weights: Option<Vec<f32>>,
}

impl GlobalAvgPool {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.channels, &x);
        match &self.ring_weights {
            None => x.mean_dim(3).mean_dim(2),
            Some(weights) => {
                let nlat = weights.len();
                let w = Tensor::<4>::from_data(
                    burn::tensor::TensorData::new(weights.clone(), [1, 1, nlat, 1]),
                    &x.device(),
                );
                (x * w).sum_dim(3).sum_dim(2)
            }
        }
    }
}

/// Max or mean over the group axis of each regular field: `F` regular fields in, `F` trivial
/// (invariant) fields out, since the group only permutes the axis being reduced.
#[derive(Module, Debug)]
pub struct GroupPool {
    #[module(skip)]
    pub name: String,
    #[module(skip)]
    pub reduce: Reduce,
    #[module(skip)]
    pub field_type: FieldType,
}

impl GroupPool {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.field_type.channels(), &x);
        group_reduce(x, self.field_type.group.order(), self.reduce)
    }
}

/// Reduces `[b, fields * order, h, w]` over the `order` axis. Shared with the exported model.
pub(crate) fn group_reduce(x: Tensor<4>, order: usize, reduce: Reduce) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let fields = c / order;
    let grouped = x.reshape([b, fields, order, h, w]);
    let reduced = match reduce {
        Reduce::Max => grouped.max_dim(2),
        Reduce::Mean => grouped.mean_dim(2),
    };
    reduced.reshape([b, fields, h, w])
}
