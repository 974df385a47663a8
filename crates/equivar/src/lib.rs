//! # equivar: equivariance you can see, prove and measure
//!
//! Group-equivariant CNNs on burn. Layers are equivariant by construction; a static
//! [`plan::Plan`] says, before any tensor exists, whether a model is *exactly* equivariant
//! at a given input size (a stride-2 layer whose sampling grid is off centre silently breaks
//! it); [`check`] measures the error per layer; [`Net::export`](nn::Net::export) gives plain
//! burn layers with identical outputs; [`Net::to_frozen`](nn::Net::to_frozen) a frozen
//! inference model ([`frozen`]: filters cached, batch norm folded, activations fused).
//!
//! Layers, lowest first: [`group`] (C_N, D_N) -> [`space`] (pixel grid actions, windows,
//! sphere grids) -> [`kernels`] (filter expansion maps, DISCO bases and psi) -> [`field`]
//! (feature types) -> [`spec`] / [`plan`] (model descriptions and their static plan) -> [`nn`]
//! (burn modules, including DISCO sphere convolutions) -> [`check`], [`export`], [`frozen`],
//! [`models`].
//! [`ops`] routes the heavy ops (conv2d, batch norm, pooling and DISCO, forward and backward)
//! to the slice kernels of the `equivar-kernels` crate on burn's Flex backend, or to burn's
//! own ops, as each layer's [`ops::Kernels`] value says; [`device`] names the devices (CPU,
//! and the GPU backends built in).
//!
//! ```no_run
//! use equivar::{models, plan::Exactness};
//! let device = burn::tensor::Device::flex();
//! let spec = models::spec("abusing-p4").unwrap();
//! assert!(spec.init(27, Exactness::Require, &device).is_err()); // names the pool, suggests 26/28
//! let net = spec.init(28, Exactness::Require, &device).unwrap();
//! ```

pub mod check;
pub mod device;
pub mod e3;
pub mod error;
pub mod export;
pub mod field;
pub mod frozen;
pub mod group;
pub mod kernels;
pub mod layers;
pub mod memory;
pub mod models;
pub mod nn;
pub mod o3;
pub mod ops;
pub mod plan;
pub mod space;
pub mod spec;

pub use error::{EquivarError, Result};
pub use frozen::FrozenNet;
