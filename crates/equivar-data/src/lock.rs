//! Exclusive lock files: one writer at a time for a fetch into a cache or a training run into
//! a run directory. The lock is the operating system's (`flock`), so it ends with the process
//! however it ends; the file keeps the holder's process id and command to name it to a
//! second writer.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum LockError {
    #[error(
        "{what} is in use: {holder} holds {path}. Wait for it to finish (or stop it), or use \
         another directory"
    )]
    Held {
        what: String,
        holder: String,
        path: PathBuf,
    },
    #[error("cannot lock {path}: {source}")]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
}

/// An exclusive lock, held until dropped.
#[derive(Debug)]
pub struct Lock {
    _file: File,
    path: PathBuf,
}

impl Lock {
    /// Takes the lock at `path` (creating the file), or says who holds it. `what` names the
    /// locked thing in the error (e.g. "the run directory runs/a").
    pub fn acquire(path: &Path, what: &str) -> Result<Lock, LockError> {
        let io = |source| LockError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let mut holder = String::new();
                let _ = file.read_to_string(&mut holder);
                let holder = holder.trim();
                return Err(LockError::Held {
                    what: what.to_string(),
                    holder: if holder.is_empty() {
                        "another process".to_string()
                    } else {
                        holder.to_string()
                    },
                    path: path.to_path_buf(),
                });
            }
            Err(TryLockError::Error(source)) => return Err(io(source)),
        }
        let command: Vec<String> = std::env::args().collect();
        let record = format!("process {} (`{}`)\n", std::process::id(), command.join(" "));
        file.set_len(0).map_err(io)?;
        file.seek(SeekFrom::Start(0)).map_err(io)?;
        file.write_all(record.as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        Ok(Lock {
            _file: file,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_holder_is_refused_and_named_until_the_first_drops() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let first = Lock::acquire(&path, "the test directory").unwrap();
        let err = Lock::acquire(&path, "the test directory").unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains(&format!("process {}", std::process::id())) && msg.contains("in use"),
            "{msg}"
        );
        drop(first);
        Lock::acquire(&path, "the test directory").unwrap();
    }
}
