//! The layout of a run directory and its checkpoints.
//!
//! ```text
//! DIR/config.json        what was trained (TrainConfig)
//! DIR/metrics.json       one entry per finished epoch
//! DIR/checkpoint.json    the last complete checkpoint: epochs done, model and optimizer files
//! DIR/model-eNNN.bpk     model parameters after epoch NNN (burn's burnpack record)
//! DIR/optimizer-eNNN.bpk Adam state after epoch NNN
//! ```
//! Every file is written atomically, and `checkpoint.json` only after the files it names, so a
//! run killed at any moment resumes from the last complete epoch.

use std::fs;
use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use serde::{Deserialize, Serialize};

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

    /// The last complete checkpoint, if any.
    pub fn checkpoint(&self) -> Result<Option<CheckpointState>> {
        if !self.checkpoint_path().exists() {
            return Ok(None);
        }
        let state: CheckpointState = read_json(&self.checkpoint_path())?;
        for file in [&state.model_file, &state.optimizer_file] {
            if !self.0.join(file).is_file() {
                bail!(
                    "{} names {file}, which is missing; the run directory was modified by hand",
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
