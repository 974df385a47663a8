//! Regression on QM9 (one model per target, SEGNN's recipe): molecules batched as graphs
//! (radius graph, one-hot atom types), targets standardised by the training set's mean and
//! mean absolute deviation, L1 loss, Adam; MAEs reported in the papers' units.

use std::path::Path;
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor, TensorData};
use equivar::e3::graph::radius_graph;
use equivar::e3::molecule::{MoleculeModel, MoleculeModelConfig};
use equivar::e3::segnn::GraphBatch;
use equivar::o3::Irreps;
use equivar_data::qm9::{Qm9, Target};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::run_dir::RunDir;

/// Atomic numbers in one-hot order.
const ELEMENTS: [u8; 5] = [1, 6, 7, 8, 9];

/// What a QM9 run trains.
#[derive(Clone, Debug)]
pub struct Qm9Config {
    pub target: Target,
    /// The network (`5x0e` input: one-hot H C N O F; one output).
    pub model: MoleculeModelConfig,
    /// Radius of the molecular graphs (SEGNN: 2 angstrom).
    pub radius: f32,
    pub batch: usize,
    pub epochs: usize,
    pub lr: f64,
    /// Seeds the weights' initialisation (the device's generator), so a run is repeatable.
    pub seed: u64,
}

/// Mean and mean absolute deviation of a target over the training molecules.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Standardisation {
    pub mean: f64,
    pub mad: f64,
}

impl Standardisation {
    pub fn of(data: &Qm9, rows: &[usize], target: Target) -> Self {
        let values: Vec<f64> = rows.iter().map(|&m| data.target(m, target)).collect();
        let mean = values.iter().sum::<f64>() / values.len().max(1) as f64;
        let mad = values.iter().map(|v| (v - mean).abs()).sum::<f64>() / values.len().max(1) as f64;
        Standardisation {
            mean,
            mad: if mad > 0.0 { mad } else { 1.0 },
        }
    }
}

/// The molecules `rows` as one batch of graphs, and their targets standardised.
pub fn batch(
    data: &Qm9,
    rows: &[usize],
    config: &Qm9Config,
    norm: Standardisation,
    device: &Device,
) -> Result<(GraphBatch, Tensor<2>)> {
    let (mut positions, mut graph, mut features) = (Vec::new(), Vec::new(), Vec::new());
    for (g, &m) in rows.iter().enumerate() {
        for a in data.atoms(m) {
            positions.push(data.positions[a]);
            graph.push(g);
            let z = data.atomic_numbers[a];
            let Some(k) = ELEMENTS.iter().position(|&e| e == z) else {
                bail!(
                    "molecule {} has atomic number {z}, which QM9's one-hot encoding lacks",
                    data.index[m]
                );
            };
            features.extend((0..5).map(|i| if i == k { 1.0f32 } else { 0.0 }));
        }
    }
    let n = positions.len();
    let edges = radius_graph(&positions, &graph, config.radius)?;
    let flat: Vec<f32> = positions.iter().flatten().copied().collect();
    let targets: Vec<f32> = rows
        .iter()
        .map(|&m| ((data.target(m, config.target) - norm.mean) / norm.mad) as f32)
        .collect();
    Ok((
        GraphBatch {
            positions: Tensor::from_data(TensorData::new(flat, [n, 3]), device),
            features: Tensor::from_data(TensorData::new(features, [n, 5]), device),
            graph,
            graphs: rows.len(),
            edges,
        },
        Tensor::from_data(TensorData::new(targets, [rows.len(), 1]), device),
    ))
}

/// The model a config describes, checked against QM9's input and output.
pub fn model(config: &Qm9Config, device: &Device) -> Result<MoleculeModel> {
    let input: Irreps = "5x0e".parse()?;
    if config.model.input() != &input || config.model.outputs() != 1 {
        bail!(
            "a QM9 model takes {input} (one-hot H C N O F) and gives 1 output; this one takes {} \
             and gives {}: set \"input\": \"5x0e\" and \"outputs\": 1",
            config.model.input(),
            config.model.outputs()
        );
    }
    Ok(config.model.init(device)?)
}

/// Mean absolute error over `rows`, in the paper's unit.
pub fn evaluate(
    net: &MoleculeModel,
    data: &Qm9,
    rows: &[usize],
    config: &Qm9Config,
    norm: Standardisation,
    device: &Device,
) -> Result<f64> {
    let mut sum = 0.0;
    for chunk in rows.chunks(config.batch) {
        let (b, y) = batch(data, chunk, config, norm, device)?;
        let error: Vec<f32> = (net.forward(&b) - y)
            .abs()
            .into_data()
            .try_to_vec::<f32>()
            .map_err(|e| anyhow::anyhow!("{e:?}"))?;
        sum += error.iter().map(|&e| e as f64).sum::<f64>();
    }
    Ok(sum / rows.len().max(1) as f64 * norm.mad * config.target.paper_factor())
}

/// One epoch's figures.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EpochReport {
    pub epoch: usize,
    pub lr: f64,
    pub train_loss: f64,
    pub valid_mae: f64,
    pub seconds: f64,
}

/// What a run directory records of its config, to refuse resuming with other settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
struct RunSettings {
    target: String,
    model: MoleculeModelConfig,
    radius: f32,
    batch: usize,
    epochs: usize,
    lr: f64,
    seed: u64,
    train_molecules: usize,
    valid_molecules: usize,
}

/// The reports and settings beside a run's checkpoint.
#[derive(Clone, Debug, Serialize, Deserialize)]
struct RunLog {
    settings: RunSettings,
    norm: (f64, f64),
    epochs: Vec<EpochReport>,
}

impl Qm9Config {
    /// The learning rate of `epoch` (from 0): SEGNN's MultiStepLR, the rate divided by 10 at
    /// 80% and again at 90% of the epochs.
    pub fn lr_at(&self, epoch: usize) -> f64 {
        let milestones = [self.epochs * 8 / 10, self.epochs * 9 / 10];
        let passed = milestones.iter().filter(|&&m| m > 0 && epoch >= m).count();
        self.lr * 0.1f64.powi(passed as i32)
    }
}

/// Trains on `train` (shuffled per epoch from `config.seed`), reports the validation MAE after
/// every epoch, returns the trained model and the epochs.
pub fn train(
    data: &Qm9,
    train: &[usize],
    valid: &[usize],
    config: &Qm9Config,
    device: &Device,
) -> Result<(MoleculeModel, Standardisation, Vec<EpochReport>)> {
    train_run(data, train, valid, config, device, None, false)
}

/// [`train`] with a checkpoint in `dir` after every epoch: a run that finds a checkpoint of
/// the same settings there continues from it (an interrupted run loses at most one epoch), and
/// one of other settings is refused. `progress` prints a line per epoch to stderr.
pub fn train_in(
    dir: &Path,
    data: &Qm9,
    train: &[usize],
    valid: &[usize],
    config: &Qm9Config,
    device: &Device,
    progress: bool,
) -> Result<(MoleculeModel, Standardisation, Vec<EpochReport>)> {
    train_run(data, train, valid, config, device, Some(dir), progress)
}

fn train_run(
    data: &Qm9,
    train: &[usize],
    valid: &[usize],
    config: &Qm9Config,
    device: &Device,
    dir: Option<&Path>,
    progress: bool,
) -> Result<(MoleculeModel, Standardisation, Vec<EpochReport>)> {
    if train.is_empty() || config.batch == 0 || config.epochs == 0 {
        bail!("QM9 training needs molecules, a batch of at least 1 and at least one epoch");
    }
    if !(config.lr > 0.0 && config.lr.is_finite()) {
        bail!(
            "the learning rate must be a positive number, not {}",
            config.lr
        );
    }
    let norm = Standardisation::of(data, train, config.target);
    let ad = device.clone().autodiff();
    let mut net = {
        // burn's generator is one per device in a process: seeding and drawing the initial
        // weights under one lock keeps a seeded run repeatable while other runs (parallel
        // tests, say) initialise at the same time.
        let _guard = INITIALISATION.lock().unwrap_or_else(|e| e.into_inner());
        ad.seed(config.seed);
        model(config, &ad)?
    };
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let settings = RunSettings {
        target: config.target.name().to_string(),
        model: config.model.clone(),
        radius: config.radius,
        batch: config.batch,
        epochs: config.epochs,
        lr: config.lr,
        seed: config.seed,
        train_molecules: train.len(),
        valid_molecules: valid.len(),
    };
    let run = match dir {
        Some(dir) => Some((RunDir::new(dir), RunDir::new(dir).lock_and_clean()?.0)),
        None => None,
    };
    let mut reports = Vec::new();
    if let Some((run, _)) = &run
        && let Some(state) = run.checkpoint()?
    {
        let log: RunLog = serde_json::from_str(
            &std::fs::read_to_string(run.file(LOG))
                .with_context(|| format!("{} has a checkpoint but no {LOG}", dir_name(run)))?,
        )
        .with_context(|| format!("{} in {} is not valid", LOG, dir_name(run)))?;
        if log.settings != settings {
            bail!(
                "{} holds a QM9 run with other settings ({:?}); remove it or choose another \
                 `--out`",
                dir_name(run),
                log.settings
            );
        }
        let record = ModuleRecord::load(run.file(&state.model_file))
            .with_context(|| format!("cannot read the checkpoint in {}", dir_name(run)))?;
        net = net.try_load_record(record).map_err(|e| {
            anyhow::anyhow!("the checkpoint in {} does not fit: {e}", dir_name(run))
        })?;
        optim = optim
            .load(run.file(&state.optimizer_file))
            .with_context(|| format!("cannot load the optimizer state in {}", dir_name(run)))?;
        reports = log.epochs;
        reports.truncate(state.epochs_done);
    }
    for epoch in reports.len()..config.epochs {
        let started = Instant::now();
        let mut order = train.to_vec();
        order.shuffle(&mut StdRng::seed_from_u64(
            config.seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15),
        ));
        let lr = config.lr_at(epoch);
        let mut loss_sum = 0.0;
        for chunk in order.chunks(config.batch) {
            let (b, y) = batch(data, chunk, config, norm, &ad)?;
            let loss = (net.forward(&b) - y).abs().mean();
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                bail!(
                    "the loss became {value} at epoch {}; lower the learning rate (now {lr})",
                    epoch + 1,
                );
            }
            loss_sum += value as f64 * chunk.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
        }
        let valid_mae = evaluate(&net.valid(), data, valid, config, norm, device)?;
        let report = EpochReport {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / order.len() as f64,
            valid_mae,
            seconds: started.elapsed().as_secs_f64(),
        };
        if progress {
            eprintln!(
                "  epoch {:>3}/{}: loss {:.4}, valid MAE {:.4} {}, {:.0} s",
                report.epoch,
                config.epochs,
                report.train_loss,
                report.valid_mae,
                config.target.paper_unit(),
                report.seconds
            );
        }
        reports.push(report);
        if let Some((run, _)) = &run {
            // The log first: a checkpoint never points past the epochs the log holds.
            atomic::write_json(
                &run.file(LOG),
                &RunLog {
                    settings: settings.clone(),
                    norm: (norm.mean, norm.mad),
                    epochs: reports.clone(),
                },
            )?;
            let model_bytes = net.valid().into_record().into_bytes()?;
            run.save_checkpoint(
                kind(&config.model),
                0,
                epoch + 1,
                &model_bytes,
                &optim.into_bytes()?,
            )?;
        }
    }
    Ok((net.valid(), norm, reports))
}

const LOG: &str = "qm9-run.json";

static INITIALISATION: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn kind(model: &MoleculeModelConfig) -> &'static str {
    match model {
        MoleculeModelConfig::Segnn(_) => "segnn",
        MoleculeModelConfig::Nequip(_) => "nequip",
    }
}

fn dir_name(run: &RunDir) -> String {
    run.path().display().to_string()
}
