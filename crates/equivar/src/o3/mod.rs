//! O(3): irreps, real spherical harmonics, Wigner D matrices and 3j symbols in e3nn's
//! conventions (so numbers compare one to one), pure f64 mathematics without tensors.
//!
//! - [`irreps`]: `Irrep` `(l, p)` and `Irreps` lists in e3nn's text form and layout.
//! - [`harmonics`]: real spherical harmonics of any degree by recurrences, with gradients.
//! - [`rotation`]: rotation matrices, Y-X-Y Euler angles, quaternions, random rotations.
//! - [`wigner`]: Wigner D matrices of rotations and of improper elements.
//! - [`wigner_3j`]: the invariant coupling tensors.
//! - [`tensor_product`]: Clebsch-Gordan tensor products with e3nn's instructions and
//!   normalisation, run by the float32 kernels of `equivar-kernels`.
//! - [`equivariance`]: measured equivariance of any function between irreps.
//!
//! O(3) stands beside the planar groups of [`crate::group`] rather than inside them: its
//! irreps are labelled `(l, p)` and act on features laid out e3nn's way, while the planar
//! representations act on fields over the pixel grid.

pub mod equivariance;
pub mod harmonics;
pub mod irreps;
pub mod rotation;
pub mod tensor_product;
pub mod wigner;
pub mod wigner_3j;

pub use equivar_kernels::tensor_product::Mode;
pub use equivariance::{EquivarianceReport, Input, assert_equivariant, equivariance_error};
pub use harmonics::{Normalization, SphericalHarmonics};
pub use irreps::{Irrep, Irreps, MAX_L, MulIrrep, Parity, Sorted};
pub use rotation::Mat3;
pub use tensor_product::{
    Instruction, IrrepNormalization, PathNormalization, TensorProduct, weight_balanced_irreps,
};
pub use wigner::{wigner_d, wigner_d_from_angles, wigner_d_up_to};
pub use wigner_3j::wigner_3j;

/// What can go wrong in the O(3) mathematics.
#[derive(Debug, thiserror::Error, Clone, PartialEq)]
pub enum O3Error {
    #[error("`{text}` is not an irreps list: {reason} (e3nn's form: `32x0e+16x1o+8x2e`)")]
    IrrepsSyntax { text: String, reason: String },

    #[error("degree {l} is too high for {what}: equivar supports degrees up to {MAX_L}")]
    DegreeTooHigh { l: usize, what: &'static str },

    #[error(
        "not a rotation matrix (det {det}, expected 1): for a reflection or an improper element use Irreps::d_from_matrix, which applies the parities"
    )]
    NotARotation { det: f64 },

    #[error("degrees {l1} x {l2} do not couple to {l3}: the product contains degrees {}..={}", l1.abs_diff(*l2), l1 + l2)]
    NoCoupling { l1: usize, l2: usize, l3: usize },

    #[error("invalid radial basis: {reason}")]
    InvalidRadialBasis { reason: String },

    #[error("invalid graph: {reason}")]
    InvalidGraph { reason: String },

    #[error("invalid gate: {reason}")]
    InvalidGate { reason: String },

    #[error("tensor product instruction {index}: {reason}")]
    InvalidInstruction { index: usize, reason: String },

    #[error(
        "the function returned {len} numbers, not a multiple of the output irreps `{irreps}` (dimension {dim})"
    )]
    OutputLength {
        len: usize,
        irreps: String,
        dim: usize,
    },

    #[error(
        "not equivariant: max |f(D x) - D f(x)| = {rotation:e} under rotations and {improper:e} under improper elements, against max |f(x)| = {output_max:e} and a relative tolerance of {tolerance:e}"
    )]
    NotEquivariant {
        rotation: f64,
        improper: f64,
        output_max: f64,
        tolerance: f64,
    },
}
