//! Steerable kernels of the planar groups (Weiler & Cesa 2019; DESIGN.md 2.6): the solutions
//! of the kernel constraint `k(g x) = rho_out(g) k(x) rho_in(g)^-1` between irreps
//! ([`harmonics`]), the radial rings they sit on ([`rings`], escnn 1.0's defaults), and the
//! basis between any two representations sampled on a kernel's pixel grid ([`SteerableBasis`]).

mod basis;
pub mod harmonics;
pub mod rings;

pub use basis::{ElementOrigin, SteerableBasis};
pub use harmonics::{Harmonic, harmonics};
pub use rings::{Ring, default_rings, validate_rings};
