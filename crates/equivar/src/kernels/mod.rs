//! Filter bases and their precomputation. For G-CNNs: the index maps (GrouPy-style) that turn
//! a learned filter bank into the bank of its transformed copies, one gather per forward. For
//! spherical CNNs: DISCO filter bases on a geodesic cap and the sparse tensor psi. For steerable
//! CNNs: the solutions of the kernel constraint between irreps ([`steerable`]).

mod disco_basis;
mod disco_psi;
mod expansion;
pub mod steerable;

pub use disco_basis::FilterBasis;
pub use disco_psi::{DiscoPsi, Quadrature};
pub use expansion::FilterExpansion;
