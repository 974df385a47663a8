//! The layout of a run directory and its checkpoints.
//!
//! ```text
//! DIR/config.json        what was trained (TrainConfig)
//! DIR/metrics.json       one entry per finished epoch
//! DIR/checkpoint.json    the last complete checkpoint: epochs done, model and optimizer files
//! DIR/model-eNNN.bpk     model parameters after epoch NNN (burn's burnpack record)
//! DIR/optimizer-eNNN.bpk Adam state after epoch NNN
//! DIR/.lock              held while a process trains into DIR (names that process)
//! ```
//! Every file is written atomically, and `checkpoint.json` only after the files it names (with
//! their SHA-256), so a run killed at any moment resumes from the last complete epoch, and a
//! damaged checkpoint file is refused before it is loaded. One writer at a time: a second is
//! refused with the first one's process id. A killed write's temporary file (`.NAME.tmp-PID`)
//! is removed by the next writer.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

use equivar_data::digest;
use equivar_data::lock::Lock;

use crate::atomic;
use crate::config::TrainConfig;

/// What one finished epoch showed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochMetrics {
    /// 1-based.
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    /// Percent, on the (rotated) training batches as seen during the epoch.
    pub train_accuracy: f64,
    pub images_per_second: f64,
    pub seconds: f64,
}

/// The last complete checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    pub model: String,
    pub input_size: usize,
    pub epochs_done: usize,
    pub model_file: String,
    pub optimizer_file: String,
    /// SHA-256 of the model file (absent in runs written before digests were recorded).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model_sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub optimizer_sha256: Option<String>,
}

#[derive(Clone, Debug)]
pub struct RunDir(PathBuf);

impl RunDir {
    pub fn new(path: impl Into<PathBuf>) -> Self {
        RunDir(path.into())
    }

    pub fn path(&self) -> &Path {
        &self.0
    }

    pub fn config_path(&self) -> PathBuf {
        self.0.join("config.json")
    }

    fn metrics_path(&self) -> PathBuf {
        self.0.join("metrics.json")
    }

    fn checkpoint_path(&self) -> PathBuf {
        self.0.join("checkpoint.json")
    }

    pub fn holds_run(&self) -> bool {
        self.config_path().exists()
    }

    /// Takes the directory's write lock (creating the directory), or says which process holds
    /// it.
    pub fn lock(&self) -> Result<Lock> {
        fs::create_dir_all(&self.0)
            .with_context(|| format!("cannot create the run directory {}", self.0.display()))?;
        Ok(Lock::acquire(
            &self.0.join(".lock"),
            &format!("the run directory {}", self.0.display()),
        )?)
    }

    /// Removes what killed writes left behind (call with the lock held); returns the removed
    /// files.
    pub fn remove_debris(&self) -> Result<Vec<PathBuf>> {
        let mut removed = Vec::new();
        for entry in fs::read_dir(&self.0)?.flatten() {
            if atomic::is_temporary(&entry.file_name().to_string_lossy()) {
                fs::remove_file(entry.path()).with_context(|| {
                    format!("cannot remove the leftover {}", entry.path().display())
                })?;
                removed.push(entry.path());
            }
        }
        Ok(removed)
    }

    /// [`RunDir::lock`], then [`RunDir::remove_debris`], reporting each removed file on stderr:
    /// for output directories (reproductions) that hold no single run.
    pub fn lock_and_clean(&self) -> Result<(Lock, Vec<PathBuf>)> {
        let lock = self.lock()?;
        let removed = self.remove_debris()?;
        for path in &removed {
            eprintln!("removed {}, left by an interrupted write", path.display());
        }
        Ok((lock, removed))
    }

    /// Files of a run (checkpoints, metrics) in a directory that has no `config.json`: what a
    /// deleted or lost config leaves; a new run must not mix with them.
    pub fn orphaned_files(&self) -> Vec<String> {
        let Ok(entries) = fs::read_dir(&self.0) else {
            return Vec::new();
        };
        let mut names: Vec<String> = entries
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .filter(|n| {
                n == "checkpoint.json"
                    || n == "metrics.json"
                    || (n.starts_with("model-e") || n.starts_with("optimizer-e"))
                        && n.ends_with(".bpk")
            })
            .collect();
        names.sort();
        names
    }

    pub fn read_config(&self) -> Result<TrainConfig> {
        read_json(&self.config_path()).with_context(|| {
            format!(
                "{} is not a training run directory (no readable config.json)",
                self.0.display()
            )
        })
    }

    pub fn write_config(&self, config: &TrainConfig) -> Result<()> {
        atomic::write_json(&self.config_path(), config)
    }

    pub fn read_metrics(&self) -> Result<Vec<EpochMetrics>> {
        if !self.metrics_path().exists() {
            return Ok(Vec::new());
        }
        read_json(&self.metrics_path())
    }

    pub fn write_metrics(&self, metrics: &[EpochMetrics]) -> Result<()> {
        atomic::write_json(&self.metrics_path(), &metrics)
    }

    /// The last complete checkpoint, if any, with its files checked against their SHA-256.
    pub fn checkpoint(&self) -> Result<Option<CheckpointState>> {
        if !self.checkpoint_path().exists() {
            return Ok(None);
        }
        let state: CheckpointState = read_json(&self.checkpoint_path())?;
        for (file, expected) in [
            (&state.model_file, &state.model_sha256),
            (&state.optimizer_file, &state.optimizer_sha256),
        ] {
            let path = self.0.join(file);
            if !path.is_file() {
                bail!(
                    "{} names {file}, which is missing; the run directory was modified by hand",
                    self.checkpoint_path().display()
                );
            }
            let Some(expected) = expected else { continue };
            let found = digest::sha256_file(&path)
                .with_context(|| format!("cannot read {}", path.display()))?;
            if &found != expected {
                bail!(
                    "the checkpoint file {} is damaged: its SHA-256 is {found}, but {} recorded \
                     {expected}; it is not loaded. Restore the run directory from a backup, or \
                     train again into a new `out` (run directory)",
                    path.display(),
                    self.checkpoint_path().display()
                );
            }
        }
        Ok(Some(state))
    }

    pub fn file(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes the model and optimizer bytes of `epochs_done`, then points `checkpoint.json` at
    /// them, then removes older checkpoint files.
    pub fn save_checkpoint(
        &self,
        model: &str,
        input_size: usize,
        epochs_done: usize,
        model_bytes: &[u8],
        optimizer_bytes: &[u8],
    ) -> Result<()> {
        let state = CheckpointState {
            model: model.to_string(),
            input_size,
            epochs_done,
            model_file: format!("model-e{epochs_done:03}.bpk"),
            optimizer_file: format!("optimizer-e{epochs_done:03}.bpk"),
            model_sha256: Some(digest::sha256_bytes(model_bytes)),
            optimizer_sha256: Some(digest::sha256_bytes(optimizer_bytes)),
        };
        atomic::write(&self.file(&state.model_file), model_bytes)?;
        atomic::write(&self.file(&state.optimizer_file), optimizer_bytes)?;
        atomic::write_json(&self.checkpoint_path(), &state)?;
        for entry in fs::read_dir(&self.0)?.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let stale = (name.starts_with("model-e") || name.starts_with("optimizer-e"))
                && name.ends_with(".bpk")
                && name != state.model_file
                && name != state.optimizer_file;
            if stale {
                let _ = fs::remove_file(entry.path());
            }
        }
        Ok(())
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        fs::read_to_string(path).with_context(|| format!("cannot read {}", path.display()))?;
    serde_json::from_str(&text)
        .with_context(|| format!("{} is not valid: corrupt file?", path.display()))
}
