//! The image classification data sets equivar trains on, where their files live, and loading
//! them (from the fetched cache, or from the embedded MNIST subset when nothing was fetched).

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::digest;
use crate::idx::{self, DataError, LabelledImages};

/// A data set of 28x28 grey images with 10 classes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Dataset {
    Mnist,
    FashionMnist,
    /// Rotated MNIST, generated from MNIST ([`crate::mnist_rot`]).
    MnistRot,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Split {
    Train,
    Test,
}

/// One file of a data set as its package ships it.
#[derive(Clone, Copy, Debug)]
pub struct DataFile {
    /// File name in the cache (and in the package).
    pub name: &'static str,
    pub split: Split,
    pub is_labels: bool,
    pub size: u64,
    pub sha256: &'static str,
}

const MNIST_FILES: [DataFile; 4] = [
    DataFile {
        name: "train-images-idx3-ubyte",
        split: Split::Train,
        is_labels: false,
        size: 47_040_016,
        sha256: "ba891046e6505d7aadcbbe25680a0738ad16aec93bde7f9b65e87a2fc25776db",
    },
    DataFile {
        name: "train-labels-idx1-ubyte",
        split: Split::Train,
        is_labels: true,
        size: 60_008,
        sha256: "65a50cbbf4e906d70832878ad85ccda5333a97f0f4c3dd2ef09a8a9eef7101c5",
    },
    DataFile {
        name: "t10k-images-idx3-ubyte",
        split: Split::Test,
        is_labels: false,
        size: 7_840_016,
        sha256: "0fa7898d509279e482958e8ce81c8e77db3f2f8254e26661ceb7762c4d494ce7",
    },
    DataFile {
        name: "t10k-labels-idx1-ubyte",
        split: Split::Test,
        is_labels: true,
        size: 10_008,
        sha256: "ff7bcfd416de33731a308c3f266cc351222c34898ecbeaf847f06e48f7ec33f2",
    },
];

const FASHION_MNIST_FILES: [DataFile; 4] = [
    DataFile {
        name: "train-images-idx3-ubyte.gz",
        split: Split::Train,
        is_labels: false,
        size: 26_421_856,
        sha256: "b0564c3eedabfbf835052cff8503ea422014ce006caf5b757f851416ee8300c7",
    },
    DataFile {
        name: "train-labels-idx1-ubyte.gz",
        split: Split::Train,
        is_labels: true,
        size: 29_491,
        sha256: "0ae29f65d86684f32d1b9c85147786c547b9c6aebcaf235f0400a0cce308b056",
    },
    DataFile {
        name: "t10k-images-idx3-ubyte.gz",
        split: Split::Test,
        is_labels: false,
        size: 4_422_079,
        sha256: "cc1d090a38ace84dfa1aa66e3ada7c336ef481a96936906477e6dd344da56eaa",
    },
    DataFile {
        name: "t10k-labels-idx1-ubyte.gz",
        split: Split::Test,
        is_labels: true,
        size: 5_125,
        sha256: "8d3605d196f4be44669e46906da9733c8131fef761fdbfec72c424d5222f1a05",
    },
];

/// The files [`crate::mnist_rot::make`] writes, with the SHA-256 of the published generation.
const MNIST_ROT_FILES: [DataFile; 4] = [
    DataFile {
        name: "train-images-idx3-ubyte",
        split: Split::Train,
        is_labels: false,
        size: 9_408_016,
        sha256: "81bdaa22a0e26f8a2288e621656af383d52b9a2624670772bfaebe13e15b4fb1",
    },
    DataFile {
        name: "train-labels-idx1-ubyte",
        split: Split::Train,
        is_labels: true,
        size: 12_008,
        sha256: "996d621f7eb870a6ce047fdbe15bfc8cbd4e260fb8f9964b208d60dbc0892dae",
    },
    DataFile {
        name: "test-images-idx3-ubyte",
        split: Split::Test,
        is_labels: false,
        size: 39_200_016,
        sha256: "cefa200d2ba90e2bef9de8d258cfb51d7795148af564a76cab1195ab17f52b75",
    },
    DataFile {
        name: "test-labels-idx1-ubyte",
        split: Split::Test,
        is_labels: true,
        size: 50_008,
        sha256: "275fd500bbfa16c5ea975e22fa19ae9cf69acac42c49fc185ba82bf6584a5861",
    },
];

impl Dataset {
    pub const ALL: [Dataset; 3] = [Dataset::Mnist, Dataset::FashionMnist, Dataset::MnistRot];

    pub fn name(self) -> &'static str {
        match self {
            Dataset::Mnist => "mnist",
            Dataset::FashionMnist => "fashion-mnist",
            Dataset::MnistRot => "mnist-rot",
        }
    }

    pub fn files(self) -> &'static [DataFile; 4] {
        match self {
            Dataset::Mnist => &MNIST_FILES,
            Dataset::FashionMnist => &FASHION_MNIST_FILES,
            Dataset::MnistRot => &MNIST_ROT_FILES,
        }
    }

    /// Where the fetched files of this data set live inside the cache directory.
    pub fn dir(self, cache: &Path) -> PathBuf {
        cache.join(self.name())
    }

    pub(crate) fn file(self, split: Split, is_labels: bool) -> &'static DataFile {
        self.files()
            .iter()
            .find(|f| f.split == split && f.is_labels == is_labels)
            .expect("every data set has images and labels for both splits")
    }
}

impl fmt::Display for Dataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Dataset {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Dataset::ALL
            .into_iter()
            .find(|d| d.name() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown data set `{s}`; known: mnist, fashion-mnist, mnist-rot")
            })
    }
}

/// The cache directory: `flag`, else `$EQUIVAR_DATA_DIR`, else `$XDG_CACHE_HOME/equivar`, else
/// `$HOME/.cache/equivar`, else `.equivar-data` in the working directory.
pub fn cache_dir(flag: Option<&Path>) -> PathBuf {
    match DataLocation::resolve(flag) {
        DataLocation::Asked { dir, .. } | DataLocation::Default(dir) => dir,
        DataLocation::Embedded => unreachable!("resolve never answers Embedded"),
    }
}

/// Where a command looks for a data set.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataLocation {
    /// A cache directory that was asked for (`--data-dir`, `$EQUIVAR_DATA_DIR`, or the one a run
    /// directory recorded): it must hold the data set; there is no fallback.
    Asked {
        dir: PathBuf,
        /// Who asked, for error messages: `--data-dir`, `$EQUIVAR_DATA_DIR`, ...
        by: String,
    },
    /// The default cache: the data set if it was fetched there, else (MNIST only) the embedded
    /// subset.
    Default(PathBuf),
    /// The embedded MNIST subset, whatever a cache holds.
    Embedded,
}

impl DataLocation {
    /// `flag` (the `data_dir` setting, the CLI's `--data-dir`), else `$EQUIVAR_DATA_DIR` (asked by the environment), else
    /// the default cache (`$XDG_CACHE_HOME/equivar`, `$HOME/.cache/equivar`, `.equivar-data`).
    pub fn resolve(flag: Option<&Path>) -> Self {
        if let Some(dir) = flag {
            return DataLocation::Asked {
                dir: dir.to_path_buf(),
                by: "`data_dir`".into(),
            };
        }
        let env = |key| std::env::var_os(key).filter(|v| !v.is_empty());
        if let Some(dir) = env("EQUIVAR_DATA_DIR") {
            return DataLocation::Asked {
                dir: dir.into(),
                by: "$EQUIVAR_DATA_DIR".into(),
            };
        }
        if let Some(dir) = env("XDG_CACHE_HOME") {
            return DataLocation::Default(PathBuf::from(dir).join("equivar"));
        }
        if let Some(home) = env("HOME") {
            return DataLocation::Default(PathBuf::from(home).join(".cache").join("equivar"));
        }
        DataLocation::Default(PathBuf::from(".equivar-data"))
    }

    /// Where the data a run recorded lives: the embedded subset, or the cache directory it
    /// was loaded from (the parent of the data set's own directory).
    pub fn of(identity: &DataIdentity) -> Self {
        match &identity.dir {
            None => DataLocation::Embedded,
            Some(dir) => DataLocation::Asked {
                dir: dir.parent().map_or_else(|| dir.clone(), Path::to_path_buf),
                by: "the run's config.json (set `data_dir` if the data moved)".into(),
            },
        }
    }
}

/// Where loaded images came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    /// The full data set, fetched into this directory.
    Fetched(PathBuf),
    /// The MNIST subset compiled into equivar (first 8,000 training and 2,000 test images).
    Embedded,
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::Fetched(dir) => write!(f, "{} (SHA-256 verified)", dir.display()),
            Source::Embedded => write!(
                f,
                "the embedded MNIST subset ({} train / {} test images; run `equivar data fetch \
                 mnist` for the full set)",
                crate::embedded::TRAIN_COUNT,
                crate::embedded::TEST_COUNT
            ),
        }
    }
}

/// Which data a run used: enough to refuse other data later. The digest covers every file of
/// the data set (the fetched files' table digests, each checked when the file is loaded; or
/// the embedded subset's bytes).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataIdentity {
    /// `mnist` or `fashion-mnist`.
    pub dataset: String,
    /// The data set's directory in the cache; `None` for the embedded subset.
    pub dir: Option<PathBuf>,
    /// SHA-256 over the data set's `name:sha256` lines.
    pub sha256: String,
}

impl DataIdentity {
    /// Whether `other` is the same data (name and digest; the directory may have moved).
    pub fn same_data(&self, other: &DataIdentity) -> bool {
        self.dataset == other.dataset && self.sha256 == other.sha256
    }
}

impl fmt::Display for DataIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let short = &self.sha256[..self.sha256.len().min(12)];
        match &self.dir {
            Some(dir) => write!(f, "{} in {} (digest {short})", self.dataset, dir.display()),
            None => write!(f, "{} embedded subset (digest {short})", self.dataset),
        }
    }
}

impl Source {
    /// The identity of `dataset` as loaded from this source.
    pub fn identity(&self, dataset: Dataset) -> DataIdentity {
        let lines: Vec<(String, String)> = match self {
            Source::Fetched(_) => dataset
                .files()
                .iter()
                .map(|f| (f.name.to_string(), f.sha256.to_string()))
                .collect(),
            Source::Embedded => crate::embedded::files()
                .iter()
                .map(|(name, bytes)| (name.to_string(), digest::sha256_bytes(bytes)))
                .collect(),
        };
        let text: String = lines
            .iter()
            .map(|(name, sha)| format!("{name}:{sha}\n"))
            .collect();
        DataIdentity {
            dataset: dataset.name().to_string(),
            dir: match self {
                Source::Fetched(dir) => Some(dir.clone()),
                Source::Embedded => None,
            },
            sha256: digest::sha256_bytes(text.as_bytes()),
        }
    }
}

/// Whether every file of `dataset` is in the cache with its expected size.
pub fn is_fetched(dataset: Dataset, cache: &Path) -> bool {
    let dir = dataset.dir(cache);
    dataset.files().iter().all(|f| {
        std::fs::metadata(dir.join(f.name)).is_ok_and(|m| m.is_file() && m.len() == f.size)
    })
}

/// Loads a split from `location`. A directory that was asked for must hold the data set; only
/// the default cache falls back (for MNIST) to the embedded subset. Every file of the data set
/// must have its expected size, and the two files of the split their expected SHA-256, so a
/// damaged or half-fetched file is an error naming it, before any of it is used.
pub fn load(
    dataset: Dataset,
    split: Split,
    location: &DataLocation,
) -> Result<(LabelledImages, Source), DataError> {
    let (cache, asked_by) = match location {
        DataLocation::Embedded => return load_embedded(dataset, split),
        DataLocation::Default(cache) => (cache, None),
        DataLocation::Asked { dir, by } => (dir, Some(by.as_str())),
    };
    let dir = dataset.dir(cache);
    let any_present = dataset.files().iter().any(|f| dir.join(f.name).exists());
    if !any_present {
        return match (asked_by, dataset) {
            (None, Dataset::Mnist) => load_embedded(dataset, split),
            (None, _) => Err(DataError::NotFetched {
                dataset: dataset.name(),
                dir,
            }),
            (Some(by), _) => Err(DataError::NotInAskedDir {
                dataset: dataset.name(),
                dir,
                by: by.to_string(),
                cache: cache.clone(),
            }),
        };
    }
    for f in dataset.files() {
        let path = dir.join(f.name);
        let size = std::fs::metadata(&path).map(|m| m.len()).unwrap_or(0);
        if size != f.size {
            return Err(DataError::WrongSize {
                path,
                expected: f.size,
                found: size,
                dataset: dataset.name(),
                cache: cache.clone(),
            });
        }
    }
    let images = read_verified(dataset, dataset.file(split, false), cache)?;
    let labels = read_verified(dataset, dataset.file(split, true), cache)?;
    let data = LabelledImages::from_arrays(images.0, &images.1, labels.0, &labels.1)?;
    Ok((data, Source::Fetched(dir)))
}

/// Reads one file of `dataset` from the cache, refusing it unless its SHA-256 is the table's.
fn read_verified(
    dataset: Dataset,
    file: &DataFile,
    cache: &Path,
) -> Result<(idx::IdxArray, PathBuf), DataError> {
    let path = dataset.dir(cache).join(file.name);
    let raw = std::fs::read(&path).map_err(|source| DataError::Io {
        path: path.clone(),
        source,
    })?;
    let found = digest::sha256_bytes(&raw);
    if found != file.sha256 {
        return Err(DataError::Corrupt {
            cache: cache.to_path_buf(),
            path,
            expected: file.sha256,
            found,
            dataset: dataset.name(),
        });
    }
    Ok((idx::decode(&raw, &path)?, path))
}

fn load_embedded(dataset: Dataset, split: Split) -> Result<(LabelledImages, Source), DataError> {
    match dataset {
        Dataset::Mnist => Ok((crate::embedded::mnist(split)?, Source::Embedded)),
        _ => Err(DataError::NoEmbeddedSubset {
            dataset: dataset.name(),
        }),
    }
}
