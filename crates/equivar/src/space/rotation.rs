//! How any element of O(2) moves the pixels of a square image about its centre: exactly (a
//! permutation of pixels, [`GridAction`]) for multiples of 90 degrees with or without the
//! mirror, by bilinear interpolation otherwise.
//!
//! Coordinates as in [`GridAction`]: `x` along the columns, `y` up, the origin at the centre
//! `((n-1)/2, (n-1)/2)`. Acting with `g` maps an image `f` to `f(g^-1 p)`. Interpolation reads
//! zero outside the image, so only the disc inscribed in the image is moved faithfully: the
//! corners of a rotated image are partly zero-filled, and any measurement of equivariance under
//! such rotations should look inside that disc (see [`disc_mask`]). Bilinear interpolation is a
//! low-pass filter: the rotated image is slightly smoothed, an error that shrinks with the
//! signal's bandwidth, not a bug of the layer under test.

use std::f64::consts::FRAC_PI_2;

use burn::tensor::{Int, Tensor, TensorData};

use super::GridAction;
use crate::group::O2Element;

/// Angles within this of a multiple of 90 degrees act exactly (by permuting pixels).
const EXACT_TOLERANCE: f64 = 1e-9;

/// The action of one element of O(2) on square images.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum PixelAction {
    /// A permutation of pixels.
    Exact(GridAction),
    /// Bilinear interpolation of `f(g^-1 p)`.
    Interpolated(O2Element),
}

impl PixelAction {
    pub fn of(g: O2Element) -> Self {
        let quarters = g.angle / FRAC_PI_2;
        let nearest = quarters.round();
        if (quarters - nearest).abs() * FRAC_PI_2 < EXACT_TOLERANCE {
            PixelAction::Exact(GridAction {
                quarter_turns: nearest as usize % 4,
                mirror: g.reflected,
            })
        } else {
            PixelAction::Interpolated(g)
        }
    }

    pub fn is_exact(&self) -> bool {
        matches!(self, PixelAction::Exact(_))
    }

    /// Moves the pixels of `x: [batch, channels, n, n]`.
    pub fn apply(&self, x: Tensor<4>) -> Tensor<4> {
        match *self {
            PixelAction::Exact(grid) => grid.apply(x),
            PixelAction::Interpolated(g) => rotate_bilinear(x, g),
        }
    }
}

/// For each output pixel of an `n x n` image, the four input pixels and bilinear weights that
/// make `f(g^-1 p)`; taps outside the image get weight 0 (and index 0).
fn bilinear_taps(n: usize, g: O2Element) -> (Vec<i64>, Vec<f32>) {
    let c = (n as f64 - 1.0) / 2.0;
    let (sin, cos) = g.angle.sin_cos();
    let mut index = Vec::with_capacity(4 * n * n);
    let mut weight = Vec::with_capacity(4 * n * n);
    for i in 0..n {
        for j in 0..n {
            let (x, y) = (j as f64 - c, c - i as f64);
            // g^-1 = m^f r(-angle): rotate back, then mirror y.
            let (qx, mut qy) = (x * cos + y * sin, -x * sin + y * cos);
            if g.reflected {
                qy = -qy;
            }
            let (row, col) = (c - qy, c + qx);
            let (r0, c0) = (row.floor(), col.floor());
            let (fr, fc) = (row - r0, col - c0);
            for (dr, dc, w) in [
                (0.0, 0.0, (1.0 - fr) * (1.0 - fc)),
                (0.0, 1.0, (1.0 - fr) * fc),
                (1.0, 0.0, fr * (1.0 - fc)),
                (1.0, 1.0, fr * fc),
            ] {
                let (r, cc) = (r0 + dr, c0 + dc);
                let inside = r >= 0.0 && cc >= 0.0 && r < n as f64 && cc < n as f64;
                if inside {
                    index.push(r as i64 * n as i64 + cc as i64);
                    weight.push(w as f32);
                } else {
                    index.push(0);
                    weight.push(0.0);
                }
            }
        }
    }
    (index, weight)
}

fn rotate_bilinear(x: Tensor<4>, g: O2Element) -> Tensor<4> {
    let [b, c, h, w] = x.dims();
    let device = x.device();
    let (index, weight) = bilinear_taps(h, g);
    let index = Tensor::<1, Int>::from_data(TensorData::new(index, [4 * h * w]), &device);
    let weight = Tensor::<3>::from_data(TensorData::new(weight, [1, h * w, 4]), &device);
    let taps = x.reshape([b * c, h * w]).select(1, index);
    (taps.reshape([b * c, h * w, 4]) * weight)
        .sum_dim(2)
        .reshape([b, c, h, w])
}

/// `[1, 1, n, n]`: 1 at pixels whose centre lies within `radius_fraction` of the inscribed
/// disc's radius `(n-1)/2` (e.g. 0.9 leaves a margin for the interpolation's reach), 0 outside.
pub fn disc_mask(n: usize, radius_fraction: f64, device: &burn::tensor::Device) -> Tensor<4> {
    let c = (n as f64 - 1.0) / 2.0;
    let radius = radius_fraction * c;
    let values: Vec<f32> = (0..n * n)
        .map(|k| {
            let (i, j) = ((k / n) as f64 - c, (k % n) as f64 - c);
            f32::from(i * i + j * j <= radius * radius)
        })
        .collect();
    Tensor::from_data(TensorData::new(values, [1, 1, n, n]), device)
}
