//! Spatial resampling for fields of any representation: norm max pooling, antialiased
//! (Gaussian-blurred) average pooling and bilinear upsampling. Each treats a field's
//! components alike, so it commutes with the group's action on channels; on the pixels it is
//! symmetric under the square's symmetries, so it is exact wherever its sampling grid is.

use burn::module::Module;
use burn::tensor::module::{conv2d, interpolate, max_pool2d_with_indices};
use burn::tensor::ops::{ConvOptions, InterpolateMode, InterpolateOptions, MaxPoolOptions};
use burn::tensor::{Int, Tensor, TensorData};

use super::FieldLayout;
use super::check_channels;
use crate::space::Window;

/// For each field and window, the field's vector of largest norm (escnn's `NormMaxPool`).
/// Ties go to the first position in the window (a set of measure zero for real data).
#[derive(Module, Debug)]
pub struct NormMaxPool {
    #[module(skip)]
    pub layout: FieldLayout,
    #[module(skip)]
    pub window: Window,
    #[module(skip)]
    pub name: String,
}

impl NormMaxPool {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.layout.channels(), &x);
        let [b, _, h, w] = x.dims();
        let win = self.window;
        let options = MaxPoolOptions::new([win.kernel; 2])
            .with_stride([win.stride; 2])
            .with_padding([win.padding; 2])
            .with_dilation([win.dilation; 2]);
        // The squared norms pick the same positions as the norms.
        let norms = self.layout.squared_norms(x.clone()).detach();
        let (_, indices) = max_pool2d_with_indices(norms, options);
        let [_, _, oh, ow] = indices.dims();
        let (mut at, mut field) = (0, 0);
        let parts = self
            .layout
            .terms
            .iter()
            .map(|&(count, dim)| {
                let term = x
                    .clone()
                    .narrow(1, at, count * dim)
                    .reshape([b, count, dim, h * w]);
                let idx: Tensor<4, Int> = indices
                    .clone()
                    .narrow(1, field, count)
                    .reshape([b, count, 1, oh * ow])
                    .repeat_dim(2, dim);
                at += count * dim;
                field += count;
                term.gather(3, idx).reshape([b, count * dim, oh, ow])
            })
            .collect();
        Tensor::cat(parts, 1)
    }
}

/// The normalised Gaussian filter of `sigma` on `kernel x kernel` pixels, row-major.
pub fn gaussian_filter(sigma: f64, kernel: usize) -> Vec<f32> {
    let c = (kernel as f64 - 1.0) / 2.0;
    let g: Vec<f64> = (0..kernel * kernel)
        .map(|i| {
            let (y, x) = ((i / kernel) as f64 - c, (i % kernel) as f64 - c);
            (-(x * x + y * y) / (2.0 * sigma * sigma)).exp()
        })
        .collect();
    let sum: f64 = g.iter().sum();
    g.into_iter().map(|v| (v / sum) as f32).collect()
}

/// Average pooling antialiased by a Gaussian blur (escnn's `PointwiseAvgPoolAntialiased2d`):
/// every channel convolved with the same isotropic Gaussian, at a stride.
#[derive(Module, Debug)]
pub struct BlurPool {
    #[module(skip)]
    pub filter: Vec<f32>,
    #[module(skip)]
    pub window: Window,
    #[module(skip)]
    pub channels: usize,
    #[module(skip)]
    pub name: String,
}

impl BlurPool {
    /// The depthwise filter `[channels, 1, k, k]` on `x`'s device.
    pub fn depthwise_filter(&self, like: &Tensor<4>) -> Tensor<4> {
        let k = self.window.kernel;
        let one = Tensor::<4>::from_data(
            TensorData::new(self.filter.clone(), [1, 1, k, k]),
            (&like.device(), like.dtype()),
        );
        one.repeat_dim(0, self.channels)
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.channels, &x);
        let w = self.window;
        let filter = self.depthwise_filter(&x);
        conv2d(
            x,
            filter,
            None,
            ConvOptions::new([w.stride; 2], [w.padding; 2], [1, 1], self.channels),
        )
    }
}

/// Bilinear upsampling by an integer factor (escnn's `R2Upsampling`), with half-pixel
/// coordinates (`align_corners: false`) or corner-aligned ones: both are symmetric under the
/// square's symmetries.
#[derive(Module, Debug)]
pub struct Upsample {
    #[module(skip)]
    pub scale: usize,
    #[module(skip)]
    pub align_corners: bool,
    #[module(skip)]
    pub channels: usize,
    #[module(skip)]
    pub name: String,
}

impl Upsample {
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.channels, &x);
        let [_, _, h, w] = x.dims();
        interpolate(
            x,
            InterpolateOptions::new(InterpolateMode::Bilinear)
                .with_align_corners(self.align_corners)
                .with_output_size([h * self.scale, w * self.scale]),
        )
    }
}
