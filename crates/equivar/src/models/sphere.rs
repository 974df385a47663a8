//! A small spherical CNN of DISCO convolutions for classification on the sphere (spherical
//! MNIST): isotropic filters, batch norm, ReLU, three downsampling convolutions, a quadrature-weighted
//! global average (invariant to rotations of the sphere in the continuum limit, exactly to
//! polar rotations by whole steps of the last grid) and a linear head.

use burn::module::Module;
use burn::nn::{BatchNorm, BatchNormConfig, Linear, LinearConfig};
use burn::tensor::activation::relu;
use burn::tensor::{Device, Tensor, TensorData};

use crate::error::Result;
use crate::kernels::FilterBasis;
use crate::nn::{DiscoConfig, DiscoConvS2};
use crate::space::SphereGrid;
use crate::spec::NetSpec;

/// The classifier as a model description (an ordinary [`NetSpec`] on the sphere, planned,
/// checked and trained like the planar models): the architecture of [`SphericalCnnConfig`],
/// with the same parameters.
pub fn spec(name: &str, channels: [usize; 4], classes: usize) -> NetSpec {
    // Isotropic: centre and two rings (see SphericalCnnConfig::init).
    let basis = FilterBasis::PiecewiseLinear {
        radial: 5,
        azimuthal: 1,
    };
    let cutoff = SphericalCnnConfig::new(8, classes).cutoff_spacings;
    let mut spec = NetSpec::sphere(name, 1);
    for (i, &c) in channels.iter().enumerate() {
        let downsample = if i == 0 { 1 } else { 2 };
        spec = spec
            .disco_conv(c, downsample, basis, cutoff)
            .batch_norm()
            .relu();
    }
    spec.global_avg_pool().linear(classes)
}

/// The classifier's shape: `nlat x 2 nlat` input grid, halved three times.
#[derive(Clone, Debug)]
pub struct SphericalCnnConfig {
    /// Latitude rings of the input grid (a multiple of 8).
    pub nlat: usize,
    /// Channels after each of the four convolutions.
    pub channels: [usize; 4],
    pub classes: usize,
    /// Filter cap radius in latitude spacings of each layer's coarser grid. Three: the
    /// smallest basis function (radius one spacing) then holds several grid points wherever it
    /// sits, so the discretised filter is nearly the same at the poles and the equator; with
    /// two, a classifier trained on upright digits (all at the north pole, where the grid is
    /// dense in longitude) lost half its accuracy on rotated ones.
    pub cutoff_spacings: f64,
}

impl SphericalCnnConfig {
    pub fn new(nlat: usize, classes: usize) -> Self {
        SphericalCnnConfig {
            nlat,
            channels: [16, 32, 32, 64],
            classes,
            cutoff_spacings: 3.0,
        }
    }

    /// The grids: input, then three halvings in both directions.
    pub fn grids(&self) -> Result<Vec<SphereGrid>> {
        (0..4)
            .map(|level| {
                let nlat = self.nlat >> level;
                SphereGrid::equiangular(nlat, 2 * nlat)
            })
            .collect()
    }

    pub fn init(&self, device: &Device) -> Result<SphericalCnn> {
        let grids = self.grids()?;
        // Isotropic: centre and two rings, so rotations other than polar ones are symmetries
        // too, in the limit.
        let basis = FilterBasis::piecewise_linear(5, 1)?;
        let mut convs = Vec::new();
        let mut norms = Vec::new();
        let mut in_channels = 1;
        for (i, &out_channels) in self.channels.iter().enumerate() {
            let (grid_in, grid_out) = if i == 0 {
                (&grids[0], &grids[0])
            } else {
                (&grids[i - 1], &grids[i])
            };
            let cutoff = self.cutoff_spacings * grid_out.latitude_spacing();
            convs.push(
                DiscoConfig::new(
                    in_channels,
                    out_channels,
                    grid_in.clone(),
                    grid_out.clone(),
                    basis,
                )
                .with_cutoff(cutoff)
                .init_conv(device)?,
            );
            norms.push(BatchNormConfig::new(out_channels).init(device));
            in_channels = out_channels;
        }
        let last = &grids[3];
        let pool_weights: Vec<f32> = last
            .weights()
            .iter()
            .map(|w| (w / (4.0 * std::f64::consts::PI)) as f32)
            .collect();
        Ok(SphericalCnn {
            convs,
            norms,
            head: LinearConfig::new(in_channels, self.classes).init(device),
            pool_weights,
        })
    }
}

#[derive(Module, Debug)]
pub struct SphericalCnn {
    pub convs: Vec<DiscoConvS2>,
    /// Batch norm per channel over all pixels: per-channel statistics commute with rotations.
    pub norms: Vec<BatchNorm>,
    pub head: Linear,
    /// Quadrature weights of the last grid's rings over 4 pi (they sum to 1 / nlon).
    #[module(skip)]
    pub pool_weights: Vec<f32>,
}

impl SphericalCnn {
    /// Precise batch norm (see `Net::recalibrate_batch_norm`): with the weights fixed, the
    /// running statistics become the average of the batch statistics over `batches`, by a
    /// cumulative average (momentum 1 / i at batch i). Call on the training (autodiff) model;
    /// the momentum is restored afterwards.
    pub fn recalibrate_batch_norm(mut self, batches: impl IntoIterator<Item = Tensor<4>>) -> Self {
        let momentum: Vec<f64> = self.norms.iter().map(|n| n.momentum).collect();
        for (i, batch) in batches.into_iter().enumerate() {
            for norm in &mut self.norms {
                norm.momentum = 1.0 / (i + 1) as f64;
            }
            let _ = self.forward(batch);
        }
        for (norm, m) in self.norms.iter_mut().zip(momentum) {
            norm.momentum = m;
        }
        self
    }

    /// Class scores `[B, classes]` of signals `[B, 1, nlat, 2 nlat]`.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<2> {
        let mut x = x;
        for (conv, norm) in self.convs.iter().zip(&self.norms) {
            x = relu(norm.forward(conv.forward(x)));
        }
        let [b, c, nlat, _] = x.dims();
        let w = Tensor::<4>::from_data(
            TensorData::new(self.pool_weights.clone(), [1, 1, nlat, 1]),
            &x.device(),
        );
        // The integral of each channel over the sphere, over 4 pi: an invariant average.
        let pooled = (x * w).sum_dim(3).sum_dim(2).reshape([b, c]);
        self.head.forward(pooled)
    }
}
