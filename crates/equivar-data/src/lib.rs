//! Data sets for equivar. For now: the IDX format of MNIST and Fashion-MNIST, read with full
//! validation so that a truncated or corrupt file is a clear error naming the file.

pub mod idx;

pub use idx::{DataError, IdxArray, LabelledImages};
