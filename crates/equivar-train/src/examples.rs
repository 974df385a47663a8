//! What a classifier trains and is tested on, batch by batch: labelled digits moved by
//! rotations, on the plane (rotated about the image centre) or on the sphere (projected
//! stereographically onto the northern hemisphere as in [`crate::spherical_mnist`], then
//! rotated with the sphere). One trait, so that one training loop, one batch-norm
//! recalibration and one evaluation serve planar and sphere models alike.
//!
//! Regimes on the sphere: `upright` no rotation; `uniform` a uniformly random rotation of the
//! sphere (Haar measure on SO(3): the "R" setting of Cohen et al. 2018); `gaussian:SIGMA` an
//! angle ~ N(45, SIGMA^2) degrees about the x axis. Evaluation angles on the sphere turn about
//! the x axis, tilting the digit from the north pole over the equator and back.

use burn::tensor::{Device, Int, Tensor, TensorData};
use equivar::space::{SphereGrid, rotation_from_quaternion};
use equivar::spec::Domain;
use equivar_data::LabelledImages;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::images::PreparedImages;
use crate::regime::Regime;
use crate::spherical_mnist::project;

/// Labelled examples for a classifier.
pub trait Examples: Send + Sync {
    fn len(&self) -> usize;

    fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The examples `indices` (in range), example k turned by `degrees[k]` (same length), as
    /// `[batch, 1, height, width]` with their labels.
    fn at_angles(
        &self,
        indices: &[usize],
        degrees: &[f64],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>);

    /// The examples `indices`, each moved by its own draw of `regime` from `rng` (in order, so
    /// that a resumed run draws what the uninterrupted one did).
    fn draw(
        &self,
        indices: &[usize],
        regime: Regime,
        rng: &mut StdRng,
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>);
}

/// The first `limit` examples of `data` for a model on `domain` at `input_size`.
pub fn examples(
    domain: Domain,
    data: &LabelledImages,
    input_size: usize,
    limit: Option<usize>,
) -> anyhow::Result<Box<dyn Examples>> {
    Ok(match domain {
        Domain::Plane => Box::new(PreparedImages::new(data, input_size, limit)?),
        Domain::Sphere => Box::new(SphereDigits::new(data, input_size, limit)?),
    })
}

impl Examples for PreparedImages {
    fn len(&self) -> usize {
        PreparedImages::len(self)
    }

    fn at_angles(
        &self,
        indices: &[usize],
        degrees: &[f64],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        self.batch(indices, degrees, device)
    }

    fn draw(
        &self,
        indices: &[usize],
        regime: Regime,
        rng: &mut StdRng,
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let degrees: Vec<f64> = indices.iter().map(|_| regime.sample_degrees(rng)).collect();
        self.batch(indices, &degrees, device)
    }
}

/// Digits (pixels in [0, 1]) to be projected onto an equiangular `nlat x 2 nlat` grid, one
/// batch at a time.
pub struct SphereDigits {
    grid: SphereGrid,
    side: usize,
    pixels: Vec<f32>,
    labels: Vec<u8>,
}

impl SphereDigits {
    pub fn new(data: &LabelledImages, nlat: usize, limit: Option<usize>) -> anyhow::Result<Self> {
        anyhow::ensure!(
            data.rows == data.cols && data.rows > 0,
            "images of {}x{} pixels cannot be projected onto the sphere: square images only",
            data.rows,
            data.cols
        );
        let grid = SphereGrid::equiangular(nlat, 2 * nlat)?;
        let count = limit.map_or(data.len(), |l| l.min(data.len()));
        let side = data.rows;
        let pixels = data.pixels[..count * side * side]
            .iter()
            .map(|&p| p as f32 / 255.0)
            .collect();
        Ok(SphereDigits {
            grid,
            side,
            pixels,
            labels: data.labels[..count].to_vec(),
        })
    }

    fn batch(
        &self,
        indices: &[usize],
        rotations: &[Option<[[f64; 3]; 3]>],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let len = self.side * self.side;
        let mut values = Vec::with_capacity(indices.len() * self.grid.points());
        for (&i, rotation) in indices.iter().zip(rotations) {
            let image = &self.pixels[i * len..(i + 1) * len];
            values.extend(project(image, self.side, &self.grid, rotation.as_ref()));
        }
        let shape = [indices.len(), 1, self.grid.nlat, self.grid.nlon];
        let x = Tensor::from_data(TensorData::new(values, shape), device);
        let labels: Vec<i64> = indices.iter().map(|&i| self.labels[i] as i64).collect();
        let y = Tensor::from_data(TensorData::new(labels, [indices.len()]), device);
        (x, y)
    }
}

/// The rotation by `degrees` about the x axis (`None` for 0).
fn about_x(degrees: f64) -> Option<[[f64; 3]; 3]> {
    if degrees == 0.0 {
        return None;
    }
    let (s, c) = degrees.to_radians().sin_cos();
    Some([[1.0, 0.0, 0.0], [0.0, c, -s], [0.0, s, c]])
}

impl Examples for SphereDigits {
    fn len(&self) -> usize {
        self.labels.len()
    }

    fn at_angles(
        &self,
        indices: &[usize],
        degrees: &[f64],
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        assert_eq!(indices.len(), degrees.len());
        let rotations: Vec<_> = degrees.iter().map(|&d| about_x(d)).collect();
        self.batch(indices, &rotations, device)
    }

    fn draw(
        &self,
        indices: &[usize],
        regime: Regime,
        rng: &mut StdRng,
        device: &Device,
    ) -> (Tensor<4>, Tensor<1, Int>) {
        let rotations: Vec<_> = indices
            .iter()
            .map(|_| match regime {
                Regime::Upright => None,
                // A normalised Gaussian quaternion is uniform on SO(3).
                Regime::Uniform => Some(rotation_from_quaternion(std::array::from_fn(|_| {
                    StandardNormal.sample(rng)
                }))),
                Regime::Gaussian { .. } => about_x(regime.sample_degrees(rng)),
            })
            .collect();
        self.batch(indices, &rotations, device)
    }
}
