//! Regression on QM9 (one model per target, SEGNN's recipe): molecules batched as graphs
//! (radius graph, one-hot atom types), targets standardised by the training set's mean and
//! mean absolute deviation, L1 loss, Adam; MAEs reported in the papers' units.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use equivar::e3::graph::radius_graph;
use equivar::e3::segnn::{GraphBatch, Segnn, SegnnConfig};
use equivar::o3::Irreps;
use equivar_data::qm9::{Qm9, Target};

/// Atomic numbers in one-hot order.
const ELEMENTS: [u8; 5] = [1, 6, 7, 8, 9];

/// What a QM9 run trains.
#[derive(Clone, Debug)]
pub struct Qm9Config {
    pub target: Target,
    pub hidden: Irreps,
    pub lmax_attr: usize,
    pub layers: usize,
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

/// The model a config describes.
pub fn model(config: &Qm9Config, device: &Device) -> Result<Segnn> {
    let segnn = SegnnConfig {
        input: "5x0e".parse()?,
        hidden: config.hidden.clone(),
        lmax_attr: config.lmax_attr,
        layers: config.layers,
        outputs: 1,
    };
    Ok(Segnn::new(&segnn, device)?)
}

/// Mean absolute error over `rows`, in the paper's unit.
pub fn evaluate(
    net: &Segnn,
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
#[derive(Clone, Debug)]
pub struct EpochReport {
    pub epoch: usize,
    pub train_loss: f64,
    pub valid_mae: f64,
    pub seconds: f64,
}

/// Trains on `train` (in the order given, shuffled per epoch by a fixed rule), reports the
/// validation MAE after every epoch, returns the trained model and the epochs.
pub fn train(
    data: &Qm9,
    train: &[usize],
    valid: &[usize],
    config: &Qm9Config,
    device: &Device,
) -> Result<(Segnn, Standardisation, Vec<EpochReport>)> {
    if train.is_empty() || config.batch == 0 || config.epochs == 0 {
        bail!("QM9 training needs molecules, a batch of at least 1 and at least one epoch");
    }
    let norm = Standardisation::of(data, train, config.target);
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let mut net = model(config, &ad)?;
    let mut optim = AdamConfig::new().init();
    let mut order = train.to_vec();
    let mut reports = Vec::new();
    for epoch in 0..config.epochs {
        let started = Instant::now();
        // A deterministic shuffle: a stride coprime with the length.
        let stride = (order.len() / 2 + 1..)
            .find(|s| gcd(*s, order.len()) == 1)
            .unwrap_or(1);
        order = (0..order.len())
            .map(|k| order[(k * stride + epoch) % order.len()])
            .collect();
        let mut loss_sum = 0.0;
        for chunk in order.chunks(config.batch) {
            let (b, y) = batch(data, chunk, config, norm, &ad)?;
            let loss = (net.forward(&b) - y).abs().mean();
            let value: f32 = loss.clone().into_scalar();
            if !value.is_finite() {
                bail!(
                    "the loss became {value} at epoch {}; lower the learning rate (now {})",
                    epoch + 1,
                    config.lr
                );
            }
            loss_sum += value as f64 * chunk.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(config.lr, net, grads);
        }
        let valid_mae = evaluate(&net.valid(), data, valid, config, norm, device)?;
        reports.push(EpochReport {
            epoch: epoch + 1,
            train_loss: loss_sum / order.len() as f64,
            valid_mae,
            seconds: started.elapsed().as_secs_f64(),
        });
    }
    Ok((net.valid(), norm, reports))
}

fn gcd(a: usize, b: usize) -> usize {
    if b == 0 { a } else { gcd(b, a % b) }
}
