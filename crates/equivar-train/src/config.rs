//! What a training run is: saved as `config.json` in its run directory.

use std::path::PathBuf;

use equivar::spec::NetSpec;
use equivar_data::{DataIdentity, Dataset};
use serde::{Deserialize, Serialize};

use crate::regime::Regime;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// A reference model name (`equivar models`).
    pub model: String,
    /// `mnist` or `fashion-mnist`.
    pub dataset: String,
    pub input_size: usize,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    /// Step LR: multiply the learning rate by `lr_gamma` every `lr_step` epochs.
    pub lr_step: usize,
    pub lr_gamma: f64,
    pub seed: u64,
    pub regime: Regime,
    /// Train on the first K training images only.
    pub train_limit: Option<usize>,
    /// Build the model even if the plan says it is not exactly equivariant at `input_size`.
    pub allow_approximate: bool,
    /// Where the data cache is (None: the default, see `equivar_data::cache_dir`).
    #[serde(default)]
    pub data_dir: Option<PathBuf>,
    /// After every epoch, recompute the batch-norm running statistics over this many training
    /// images with the weights fixed (precise batch norm; 0: keep burn's momentum averages).
    /// Runs written before this option existed read as 0.
    #[serde(default)]
    pub batch_norm_recalibration: usize,
    /// The data the run trained on (name, digest, directory), recorded when it started;
    /// `eval` and `--resume` refuse other data unless told. Runs written before this existed
    /// have none.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub data: Option<DataIdentity>,
    /// The full model description the run trains (recorded when it starts), so `eval` and
    /// `--resume` never look `model` up again (it may be a file that changed since). Runs
    /// written before this existed have none and look the name up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spec: Option<NetSpec>,
    /// Changes made with `train --resume --override`, each as "after epoch N: --flag a -> b".
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub amendments: Vec<String>,
}

/// Images the batch-norm statistics are recomputed over after each epoch, by default: enough
/// that their sampling error is far below the lag of the running averages, at ~2% of an
/// epoch's cost on MNIST's 60,000 images.
pub const DEFAULT_BATCH_NORM_RECALIBRATION: usize = 4096;

/// Upper bounds that catch typos (an extra digit) before hours of work.
pub const MAX_EPOCHS: usize = 100_000;
pub const MAX_BATCH: usize = 65_536;

impl TrainConfig {
    /// The paper's settings (Using and Abusing Equivariance, DESIGN.md 2.1) for `model` at `n`.
    pub fn paper(model: &str, input_size: usize) -> Self {
        TrainConfig {
            model: model.to_string(),
            dataset: Dataset::Mnist.name().to_string(),
            input_size,
            epochs: 50,
            batch_size: 256,
            lr: 0.01,
            weight_decay: 1e-5,
            lr_step: 10,
            lr_gamma: 0.5,
            seed: 0,
            regime: Regime::Upright,
            train_limit: None,
            allow_approximate: true,
            data_dir: None,
            batch_norm_recalibration: DEFAULT_BATCH_NORM_RECALIBRATION,
            data: None,
            spec: None,
            amendments: Vec::new(),
        }
    }

    /// The model description: the recorded one, else `model` looked up (a reference model's
    /// name or a description file).
    pub fn net_spec(&self) -> anyhow::Result<NetSpec> {
        match &self.spec {
            Some(spec) => Ok(spec.clone()),
            None => Ok(equivar::models::spec(&self.model)?),
        }
    }

    /// The learning rate during `epoch` (0-based).
    pub fn lr_at(&self, epoch: usize) -> f64 {
        self.lr * self.lr_gamma.powi((epoch / self.lr_step.max(1)) as i32)
    }

    /// Every setting in its range, each error naming the setting (as `field`, which the CLI
    /// shows as its flag), the range and the value.
    pub fn validate(&self) -> anyhow::Result<()> {
        anyhow::ensure!(
            (1..=MAX_EPOCHS).contains(&self.epochs),
            "`epochs` must be in 1..={MAX_EPOCHS}, got {}",
            self.epochs
        );
        anyhow::ensure!(
            (1..=MAX_BATCH).contains(&self.batch_size),
            "`batch_size` must be in 1..={MAX_BATCH}, got {}",
            self.batch_size
        );
        anyhow::ensure!(
            self.lr.is_finite() && self.lr > 0.0,
            "`lr` must be a positive finite number, got {}",
            self.lr
        );
        anyhow::ensure!(
            self.weight_decay.is_finite() && (0.0..=1.0).contains(&self.weight_decay),
            "`weight_decay` must be a number in [0, 1], got {}",
            self.weight_decay
        );
        anyhow::ensure!(
            self.lr_step >= 1,
            "`lr_step` must be at least 1 epoch, got {}",
            self.lr_step
        );
        anyhow::ensure!(
            self.lr_gamma.is_finite() && self.lr_gamma > 0.0 && self.lr_gamma <= 1.0,
            "`lr_gamma` must be a number in (0, 1] (the factor the learning rate is multiplied \
             by every `lr_step` epochs), got {}",
            self.lr_gamma
        );
        anyhow::ensure!(
            self.train_limit != Some(0),
            "`train_limit` must be at least 1 image, got 0"
        );
        anyhow::ensure!(
            self.input_size >= 1,
            "`input_size` must be at least 1 pixel, got 0"
        );
        if let Regime::Gaussian { sigma_degrees } = self.regime {
            anyhow::ensure!(
                sigma_degrees.is_finite() && sigma_degrees >= 0.0,
                "`regime` gaussian:SIGMA needs SIGMA >= 0 (degrees), got {sigma_degrees}"
            );
        }
        self.dataset
            .parse::<Dataset>()
            .map_err(anyhow::Error::msg)?;
        Ok(())
    }
}
