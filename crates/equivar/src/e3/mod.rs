//! E(3)-equivariant layers: burn modules on features laid out as O(3) irreps (e3nn's
//! layout, see [`crate::o3`]), on any backend, with equivar's fused kernels on Flex.
//!
//! - [`SphericalHarmonics`]: edge vectors to their harmonics (edge attributes).
//! - [`TensorProduct`]: Clebsch-Gordan products with internal or per-row weights.
//! - [`Linear`]: equivariant linear maps between irreps lists (one matrix per irrep).
//! - [`Gate`]: gated nonlinearity (scalars through an activation, higher degrees scaled by
//!   gates); [`NormActivation`]: every copy scaled by an activation of its norm.
//! - [`Convolution`]: NequIP's interatomic convolution (radial network, channel-wise product,
//!   sum over neighbours, linear mix).
//! - [`InstanceNorm`], [`BatchNorm`], [`LayerNorm`]: equivariant normalisations over each
//!   graph's nodes, the batch's nodes (running statistics) and each node's channels.
//! - [`segnn`]: SEGNN (steerable E(3) graph networks) for molecules; [`nequip`]: a small
//!   NequIP-style network; [`molecule`]: either, as a model file describes it.
//! - [`radial`]: radial bases of edge lengths (e3nn's `soft_one_hot_linspace`, NequIP's
//!   polynomial cutoff).
//! - [`graph`]: radius graphs by a cell list, sums and means over edges and graphs.

mod convolution;
mod gate;
pub mod graph;
mod harmonics;
mod linear;
pub mod molecule;
pub mod nequip;
mod norm;
mod norm_activation;
pub mod radial;
pub mod segnn;
mod tensor_product;

pub use convolution::{Convolution, RadialMlp};
pub use gate::{Activation, Gate};
pub use harmonics::SphericalHarmonics;
pub use linear::Linear;
pub use norm::{BatchNorm, InstanceNorm, LayerNorm};
pub use norm_activation::NormActivation;
pub use tensor_product::TensorProduct;

use burn::tensor::{Tensor, TensorData};

use crate::o3::{Irreps, Mat3};

/// Applies `D(q)` of `irreps` to every row of `x [n, irreps.dim()]` (float32): how a rotation
/// or improper element acts on features, for equivariance checks.
pub fn transform(x: Tensor<2>, irreps: &Irreps, q: &Mat3) -> Result<Tensor<2>, crate::o3::O3Error> {
    let d = irreps.d_from_matrix(q)?;
    let dim = irreps.dim();
    // Rows times D^T: the matrix D^T row-major is D column-major.
    let dt: Vec<f32> = d.iter().map(|&v| v as f32).collect();
    let dt = Tensor::<2>::from_data(TensorData::new(dt, [dim, dim]), &x.device());
    Ok(x.matmul(dt))
}
