//! Filter bases and their precomputation. For G-CNNs: the index maps (GrouPy-style) that turn
//! a learned filter bank into the bank of its transformed copies, one gather per forward.

mod expansion;

pub use expansion::FilterExpansion;
