//! Where signals live and how a group acts on them. For now: the square pixel grid, on which
//! C4, D4 and their subgroups act exactly (rot90 and mirrors, no interpolation).

mod grid;
mod window;

pub use grid::GridAction;
pub use window::Window;
