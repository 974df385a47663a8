//! Equivariant subsampling and upsampling by canonical poses (Xu, Kim, Rainforth, Teh 2021;
//! DESIGN.md 2.9). Each image picks the symmetry `h` of the pixel grid (a quarter turn or
//! mirror of its group) at which its pose score peaks, is moved by `h^-1` into that canonical
//! pose, resampled on the plain grid that starts at the top-left pixel, and moved back by `h`.
//! The score is built so that the moved image `g x` peaks at `g h`; hence
//! `f(g x) = g h S(h^-1 g^-1 g x) = g f(x)`: exact at every input size, whatever the plain
//! grid `S` misses at the far border.
//!
//! The score of `h` is `sum_p (h . w)(p) |x(p)|^2`, the squared norm of each pixel's features
//! (unchanged by the group's orthogonal action on channels) weighed by a fixed map `w` that
//! no grid symmetry leaves alone. Images whose norms are themselves symmetric tie; ties go to
//! the first element (a set of measure zero for real data, as for any argmax pooling).

use burn::module::Module;
use burn::tensor::{Int, Tensor, TensorData};

use super::check_channels;
use crate::field::FeatureType;
use crate::group::O2Element;
use crate::space::PixelAction;

/// The plain resampling done in the canonical pose.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Resampling {
    /// Every `stride`-th row and column from the first: `ceil(n / stride)` pixels a side.
    Subsample { stride: usize },
    /// Each pixel to `stride` times its row and column, zeros between: `n * stride` a side.
    Upsample { stride: usize },
}

impl Resampling {
    pub fn stride(self) -> usize {
        match self {
            Resampling::Subsample { stride } | Resampling::Upsample { stride } => stride,
        }
    }

    /// Output side for an input side `n`.
    pub fn out_size(self, n: usize) -> usize {
        match self {
            Resampling::Subsample { stride } => n.div_ceil(stride),
            Resampling::Upsample { stride } => n * stride,
        }
    }

    fn apply(self, x: Tensor<4>) -> Tensor<4> {
        let [b, c, n, _] = x.dims();
        let device = x.device();
        match self {
            Resampling::Subsample { stride } => {
                let m = n.div_ceil(stride);
                let rows: Vec<i64> = (0..m).map(|k| (k * stride) as i64).collect();
                let index = Tensor::<1, Int>::from_data(TensorData::new(rows, [m]), &device);
                x.select(2, index.clone()).select(3, index)
            }
            Resampling::Upsample { stride: 1 } => x,
            Resampling::Upsample { stride } => {
                // [b, c, n, 1, n, 1] padded with zeros to [b, c, n, s, n, s].
                let x = x.reshape([b, c, n, 1, n, 1]);
                let x = Tensor::cat(
                    vec![
                        x.clone(),
                        Tensor::zeros([b, c, n, stride - 1, n, 1], &device),
                    ],
                    3,
                );
                let x = Tensor::cat(
                    vec![x, Tensor::zeros([b, c, n, stride, n, stride - 1], &device)],
                    5,
                );
                x.reshape([b, c, n * stride, n * stride])
            }
        }
    }
}

/// A resampling made equivariant to the grid symmetries of its feature type's group.
#[derive(Module, Debug)]
pub struct CanonicalResample {
    #[module(skip)]
    pub feature_type: FeatureType,
    #[module(skip)]
    pub resampling: Resampling,
    #[module(skip)]
    pub name: String,
}

/// The pose map `w` on an `n x n` grid: a tilted ramp with a mixed and a square term, so that
/// no quarter turn or mirror maps it to itself (the four rotations of a ramp alone differ, but
/// a map whose first moments vanish would score them alike).
pub(crate) fn pose_map(n: usize) -> Vec<f32> {
    let c = (n as f64 - 1.0) / 2.0;
    let scale = n.max(1) as f64;
    (0..n * n)
        .map(|k| {
            let y = ((k / n) as f64 - c) / scale;
            let x = ((k % n) as f64 - c) / scale;
            (y + 0.41 * x + 0.29 * x * y + 0.17 * y * y) as f32
        })
        .collect()
}

impl CanonicalResample {
    /// The grid symmetries the pose ranges over (identity first).
    pub fn elements(&self) -> Vec<O2Element> {
        self.feature_type.group.pixel_grid_elements()
    }

    /// Per image, the index (into [`Self::elements`]) of its canonical pose: `[batch]`.
    pub fn poses(&self, x: &Tensor<4>) -> Tensor<1, Int> {
        let [b, _, n, _] = x.dims();
        let device = x.device();
        let elements = self.elements();
        let norms = x.clone().detach().powi_scalar(2).sum_dim(1);
        let w = Tensor::<4>::from_data(TensorData::new(pose_map(n), [1, 1, n, n]), &device);
        // Column h: the pose map moved by h, (h . w)(p) = w(h^-1 p).
        let maps: Vec<Tensor<4>> = elements
            .iter()
            .map(|&h| PixelAction::of(h).apply(w.clone()))
            .collect();
        let maps = Tensor::cat(maps, 1).reshape([elements.len(), n * n]);
        let scores = norms.reshape([b, n * n]).matmul(maps.transpose());
        scores.argmax(1).reshape([b])
    }

    /// Each image moved by `h^-1` for its pose `h`, resampled and moved back, one pose's
    /// images at a time. Only the pixels move: the resampling treats every channel alike, so
    /// the channel actions of `h^-1` and `h` cancel.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.feature_type.channels(), &x);
        let [b, _, _, _] = x.dims();
        if b == 0 {
            return self.resampling.apply(x);
        }
        let device = x.device();
        let poses: Vec<i64> = self
            .poses(&x)
            .into_data()
            .convert::<i64>()
            .try_into_vec::<i64>()
            .expect("poses are integers");
        let index = |images: &[i64]| {
            Tensor::<1, Int>::from_data(TensorData::new(images.to_vec(), [images.len()]), &device)
        };
        let mut parts = Vec::new();
        // order[j]: the image that row j of the concatenated parts belongs to.
        let mut order = Vec::with_capacity(b);
        for (k, &h) in self.elements().iter().enumerate() {
            let images: Vec<i64> = (0..b as i64)
                .filter(|&i| poses[i as usize] == k as i64)
                .collect();
            if images.is_empty() {
                continue;
            }
            let chosen = x.clone().select(0, index(&images));
            let moved = PixelAction::of(h.inverse()).apply(chosen);
            parts.push(PixelAction::of(h).apply(self.resampling.apply(moved)));
            order.extend(images);
        }
        let mut back = vec![0i64; b];
        for (row, &image) in order.iter().enumerate() {
            back[image as usize] = row as i64;
        }
        Tensor::cat(parts, 0).select(0, index(&back))
    }
}
