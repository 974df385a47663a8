//! Where signals live and how a group acts on them: the square pixel grid, on which C4, D4
//! and their subgroups act exactly (rot90 and mirrors, no interpolation) and any other
//! element of O(2) by interpolation, and grids on the
//! sphere, on which rotations about the polar axis by whole longitude steps act exactly.

mod grid;
mod rotation;
mod sphere;
mod window;

pub use grid::GridAction;
pub use rotation::{PixelAction, disc_mask};
pub(crate) use sphere::gauss_legendre;
pub use sphere::{SphereGrid, SphereGridKind, apply_inverse, rotation_from_quaternion};
pub use window::Window;
