//! IDX files (raw or gzip-compressed): `00 00 <type> <rank>`, then `rank` big-endian u32
//! dimensions, then the values. MNIST and Fashion-MNIST use unsigned bytes (type 0x08).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use flate2::read::GzDecoder;
use thiserror::Error;

const UNSIGNED_BYTE: u8 = 0x08;
const GZIP_MAGIC: [u8; 2] = [0x1f, 0x8b];

/// What can be wrong with a data file; each names the file and what to do.
#[derive(Debug, Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not a valid gzip file ({source}); delete it and fetch the data again")]
    Gzip {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{path} is not an IDX file: it starts with {found:02x?}, expected 00 00 08 <rank>; \
         delete it and fetch the data again"
    )]
    BadMagic { path: PathBuf, found: Vec<u8> },
    #[error(
        "{path} is truncated: its header declares {expected} bytes of data but it holds \
         {found}; delete it and fetch the data again"
    )]
    Truncated {
        path: PathBuf,
        expected: usize,
        found: usize,
    },
    #[error("{path} has {extra} bytes after the declared data; delete it and fetch the data again")]
    TrailingBytes { path: PathBuf, extra: usize },
    #[error("{path} holds a rank-{found} array, expected rank {expected} ({what})")]
    WrongRank {
        path: PathBuf,
        expected: usize,
        found: usize,
        what: &'static str,
    },
    #[error("{path} holds the label {label} at index {index}; class labels must be 0..=9")]
    BadLabel {
        path: PathBuf,
        index: usize,
        label: u8,
    },
    #[error(
        "{dataset} is not in {dir}; run `equivar data fetch {dataset}` (or pass --data-dir / set \
         EQUIVAR_DATA_DIR to where it was fetched)"
    )]
    NotFetched { dataset: &'static str, dir: PathBuf },
    #[error(
        "{path} has {found} bytes, expected {expected}: an interrupted or corrupt fetch; run \
         `equivar data fetch {dataset} --data-dir {cache} --force`"
    )]
    WrongSize {
        path: PathBuf,
        expected: u64,
        found: u64,
        dataset: &'static str,
        /// The cache directory, for the fix.
        cache: PathBuf,
    },
    #[error(
        "{path} is damaged: its SHA-256 is {found}, expected {expected} (same size, other \
         content); run `equivar data fetch {dataset} --data-dir {cache} --force`"
    )]
    Corrupt {
        path: PathBuf,
        expected: &'static str,
        found: String,
        dataset: &'static str,
        cache: PathBuf,
    },
    #[error(
        "{dir} does not hold {dataset}, and {by} asked for that directory (no fallback to the \
         embedded subset when a directory is named); fetch it there (`equivar data fetch \
         {dataset} --data-dir {cache}`), or name the cache directory that holds `{dataset}/`"
    )]
    NotInAskedDir {
        dataset: &'static str,
        dir: PathBuf,
        by: String,
        cache: PathBuf,
    },
    #[error(
        "{dataset} has no embedded subset (only MNIST has); run `equivar data fetch {dataset}`"
    )]
    NoEmbeddedSubset { dataset: &'static str },
    #[error(
        "{path} holds images of {rows}x{cols} pixels; equivar's image data sets are square and \
         non-empty (MNIST: 28x28). Delete it and fetch the data again"
    )]
    NotSquare {
        path: PathBuf,
        rows: usize,
        cols: usize,
    },
    #[error("{images} holds {n_images} images but {labels} holds {n_labels} labels")]
    CountMismatch {
        images: PathBuf,
        labels: PathBuf,
        n_images: usize,
        n_labels: usize,
    },
}

/// An n-dimensional array of unsigned bytes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdxArray {
    pub dims: Vec<usize>,
    pub data: Vec<u8>,
}

/// Reads an IDX file, decompressing it first if it is gzip-compressed.
pub fn read(path: &Path) -> Result<IdxArray, DataError> {
    let raw = fs::read(path).map_err(|source| DataError::Io {
        path: path.to_path_buf(),
        source,
    })?;
    decode(&raw, path)
}

/// Decodes the bytes of an IDX file (raw or gzip-compressed); `path` names the source in errors.
pub fn decode(raw: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let bytes = if raw.starts_with(&GZIP_MAGIC) {
        let mut out = Vec::new();
        GzDecoder::new(raw)
            .read_to_end(&mut out)
            .map_err(|source| DataError::Gzip {
                path: path.to_path_buf(),
                source,
            })?;
        std::borrow::Cow::Owned(out)
    } else {
        std::borrow::Cow::Borrowed(raw)
    };
    parse(&bytes, path)
}

/// Parses IDX bytes; `path` names the source in errors.
pub fn parse(bytes: &[u8], path: &Path) -> Result<IdxArray, DataError> {
    let bad_magic = || DataError::BadMagic {
        path: path.to_path_buf(),
        found: bytes.iter().take(4).copied().collect(),
    };
    let [0, 0, UNSIGNED_BYTE, rank] = *bytes.get(..4).ok_or_else(bad_magic)? else {
        return Err(bad_magic());
    };
    let rank = rank as usize;
    if rank == 0 {
        return Err(bad_magic());
    }
    let header_len = 4 + 4 * rank;
    let header = bytes.get(4..header_len).ok_or(DataError::Truncated {
        path: path.to_path_buf(),
        expected: header_len,
        found: bytes.len(),
    })?;
    let dims: Vec<usize> = header
        .chunks_exact(4)
        .map(|c| u32::from_be_bytes([c[0], c[1], c[2], c[3]]) as usize)
        .collect();
    let expected = dims.iter().product::<usize>();
    let found = bytes.len() - header_len;
    if found < expected {
        return Err(DataError::Truncated {
            path: path.to_path_buf(),
            expected,
            found,
        });
    }
    if found > expected {
        return Err(DataError::TrailingBytes {
            path: path.to_path_buf(),
            extra: found - expected,
        });
    }
    Ok(IdxArray {
        dims,
        data: bytes[header_len..].to_vec(),
    })
}

/// Images `[n, rows, cols]` with their labels.
#[derive(Clone, Debug)]
pub struct LabelledImages {
    pub rows: usize,
    pub cols: usize,
    /// `n * rows * cols` pixels, 0..=255, row-major.
    pub pixels: Vec<u8>,
    pub labels: Vec<u8>,
}

impl LabelledImages {
    /// Reads an images file (rank 3) and a labels file (rank 1) of the same length.
    pub fn read(images: &Path, labels: &Path) -> Result<Self, DataError> {
        Self::from_arrays(read(images)?, images, read(labels)?, labels)
    }

    /// Validates a decoded images array (rank 3) and labels array (rank 1) as a pair.
    pub fn from_arrays(
        img: IdxArray,
        images: &Path,
        lab: IdxArray,
        labels: &Path,
    ) -> Result<Self, DataError> {
        let rank = |a: &IdxArray, path: &Path, expected, what| {
            if a.dims.len() == expected {
                Ok(())
            } else {
                Err(DataError::WrongRank {
                    path: path.to_path_buf(),
                    expected,
                    found: a.dims.len(),
                    what,
                })
            }
        };
        rank(&img, images, 3, "images: count x rows x cols")?;
        rank(&lab, labels, 1, "labels: count")?;
        let (rows, cols) = (img.dims[1], img.dims[2]);
        if rows != cols || rows == 0 {
            return Err(DataError::NotSquare {
                path: images.to_path_buf(),
                rows,
                cols,
            });
        }
        if img.dims[0] != lab.dims[0] {
            return Err(DataError::CountMismatch {
                images: images.to_path_buf(),
                labels: labels.to_path_buf(),
                n_images: img.dims[0],
                n_labels: lab.dims[0],
            });
        }
        if let Some((index, &label)) = lab.data.iter().enumerate().find(|(_, l)| **l > 9) {
            return Err(DataError::BadLabel {
                path: labels.to_path_buf(),
                index,
                label,
            });
        }
        Ok(LabelledImages {
            rows: img.dims[1],
            cols: img.dims[2],
            pixels: img.data,
            labels: lab.data,
        })
    }

    pub fn len(&self) -> usize {
        self.labels.len()
    }

    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }
}
