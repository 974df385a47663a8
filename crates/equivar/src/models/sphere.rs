//! A small spherical CNN of DISCO convolutions for classification on the sphere (spherical
//! MNIST), as a model description: isotropic filters, batch norm, ReLU, three downsampling
//! convolutions, a quadrature-weighted global average (invariant to rotations of the sphere in
//! the continuum limit, exactly to polar rotations by whole steps of the last grid) and a
//! linear head.

use crate::kernels::FilterBasis;
use crate::spec::NetSpec;

/// Filter cap radius in latitude spacings of each layer's output grid. Three: the smallest
/// basis function (radius one spacing) then holds several grid points wherever it sits, so the
/// discretised filter is nearly the same at the poles and the equator; with two, a classifier
/// trained on upright digits (all at the north pole, where the grid is dense in longitude)
/// lost half its accuracy on rotated ones.
pub const CUTOFF_SPACINGS: f64 = 3.0;

/// The classifier, an ordinary [`NetSpec`] on the sphere (planned, checked and trained like
/// the planar models): four DISCO convolutions to `channels`, the first on the input grid and
/// each later one halving it, each followed by batch norm and ReLU, then the quadrature mean
/// and a linear head to `classes`. The input's `nlat` must be a multiple of 8 leaving at least
/// 5 rings after the halvings (a cap of 3 spacings stays below pi): 40, 48, 56, 64, ...
pub fn spec(name: &str, channels: [usize; 4], classes: usize) -> NetSpec {
    // Isotropic: centre and two rings, so rotations other than polar ones are symmetries
    // too, in the limit.
    let basis = FilterBasis::PiecewiseLinear {
        radial: 5,
        azimuthal: 1,
    };
    let mut spec = NetSpec::sphere(name, 1);
    for (i, &c) in channels.iter().enumerate() {
        let downsample = if i == 0 { 1 } else { 2 };
        spec = spec
            .disco_conv(c, downsample, basis, CUTOFF_SPACINGS)
            .batch_norm()
            .relu();
    }
    spec.global_avg_pool().linear(classes)
}
