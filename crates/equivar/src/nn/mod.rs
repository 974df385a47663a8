//! burn Modules built on the group, space and kernels layers. Every module works on any burn
//! backend, with autodiff, on the feature layout documented in [`crate::field`].

mod canonical;
mod conv;
mod disco;
mod field_maps;
mod fourier;
mod iid_norm;
mod net;
mod norm;
mod pointwise;
mod pool;
mod resample;
mod steerable_conv;

pub use crate::layers::Layer;
pub(crate) use canonical::pose_map;
pub use canonical::{CanonicalResample, Resampling};
pub use conv::{GroupConv2d, LiftingConv2d};
pub use disco::{DiscoConfig, DiscoConvS2, DiscoConvTransposeS2};
pub use field_maps::{FieldLayout, GatedNonlinearity, NormFunction, NormNonlinearity, NormPool};
pub use fourier::{FourierPointwise, FourierTerm, default_samples};
pub use iid_norm::{IidBatchNorm, IidTerm};
pub use net::Net;
pub use norm::EquivariantBatchNorm;
pub(crate) use pointwise::linear_on_pooled;
pub use pointwise::{FieldDropout, InvariantLinear, Pointwise};
pub(crate) use pool::group_reduce;
pub use pool::{GlobalAvgPool, GroupPool, SpatialPool};
pub use resample::{BlurPool, NormMaxPool, Upsample, gaussian_filter};
pub use steerable_conv::{R2Conv2d, SteerableGeometry};

use burn::tensor::Tensor;

/// Panics with a message naming the layer, the expected and the found channel count, when a
/// layer is fed a tensor of the wrong type. (Whole models validate before the first layer and
/// return an error instead; see [`Net::try_forward`].)
fn check_channels(layer: &str, expected: usize, x: &Tensor<4>) {
    let dims = x.dims();
    assert!(
        dims[1] == expected,
        "layer `{layer}`: input has {} channels (shape {dims:?}), expected {expected}; \
         feature maps are [batch, fields * field_size, height, width]",
        dims[1]
    );
}
