//! `equivar bench --segnn-step FILE`: one SEGNN training step (forward, L1 loss, backward,
//! Adam update) on a QM9 batch, the case `bench/segnn_step.py` times for the same network
//! built from e3nn's parts. The batch file is `bench/qm9-batch-32.json` (the first 32
//! molecules of the standard training split; written by the `qm9_batch_fixture` example).

use std::path::Path;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Tensor, TensorData};
use equivar::e3::graph::radius_graph;
use equivar::e3::segnn::{GraphBatch, Pooling, Segnn, SegnnConfig};
use serde::{Deserialize, Serialize};

use crate::bench::median_seconds;

/// A molecule of the batch file.
#[derive(Clone, Debug, Deserialize)]
pub struct Molecule {
    pub z: Vec<u8>,
    pub pos: Vec<[f32; 3]>,
    pub alpha: f64,
}

#[derive(Clone, Debug, Deserialize)]
struct BatchFile {
    molecules: Vec<Molecule>,
}

/// The step's figures, named like segnn_step.py's so the two join.
#[derive(Clone, Debug, Serialize)]
pub struct SegnnStepFigures {
    pub bench: String,
    pub case: String,
    pub hidden: String,
    pub lmax_attr: usize,
    pub layers: usize,
    pub molecules: usize,
    pub atoms: usize,
    pub edges: usize,
    pub params: usize,
    pub step_ms: f64,
    pub repeats: usize,
}

/// The timed networks: the quick profile's and SEGNN's QM9 shape (7 layers, harmonics up to
/// l = 3, the paper's 128 weight-balanced channels: 36x0e+36x1o+36x2e).
pub const CASES: [(&str, &str, usize, usize); 2] = [
    ("quick_l1", "24x0e+8x1o", 1, 4),
    ("paper_l2", "36x0e+36x1o+36x2e", 3, 7),
];

/// Atomic numbers in one-hot order (as the QM9 training).
const ELEMENTS: [u8; 5] = [1, 6, 7, 8, 9];

pub fn read_batch(path: &Path) -> Result<Vec<Molecule>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the batch file {}", path.display()))?;
    let file: BatchFile = serde_json::from_str(&text).with_context(|| {
        format!(
            "{} is not a batch file (bench/qm9-batch-32.json is one)",
            path.display()
        )
    })?;
    if file.molecules.is_empty() {
        bail!("{} holds no molecules", path.display());
    }
    for (k, m) in file.molecules.iter().enumerate() {
        if m.z.len() != m.pos.len() || m.z.is_empty() {
            bail!(
                "molecule {k} of {} has {} atomic numbers and {} positions",
                path.display(),
                m.z.len(),
                m.pos.len()
            );
        }
        if let Some(z) = m.z.iter().find(|z| !ELEMENTS.contains(z)) {
            bail!(
                "molecule {k} of {} has atomic number {z}, not one of H C N O F",
                path.display()
            );
        }
    }
    Ok(file.molecules)
}

fn graph_batch(molecules: &[Molecule], device: &Device) -> Result<(GraphBatch, Tensor<2>)> {
    let (mut positions, mut graph, mut features) = (Vec::new(), Vec::new(), Vec::new());
    for (g, m) in molecules.iter().enumerate() {
        for (z, p) in m.z.iter().zip(&m.pos) {
            positions.push(*p);
            graph.push(g);
            features.extend(ELEMENTS.iter().map(|e| if e == z { 1.0f32 } else { 0.0 }));
        }
    }
    let n = positions.len();
    let edges = radius_graph(&positions, &graph, 2.0)?;
    let flat: Vec<f32> = positions.iter().flatten().copied().collect();
    let targets: Vec<f32> = molecules.iter().map(|m| m.alpha as f32 / 75.0).collect();
    Ok((
        GraphBatch {
            positions: Tensor::from_data(TensorData::new(flat, [n, 3]), device),
            features: Tensor::from_data(TensorData::new(features, [n, 5]), device),
            graph,
            graphs: molecules.len(),
            edges,
        },
        Tensor::from_data(TensorData::new(targets, [molecules.len(), 1]), device),
    ))
}

/// Times a training step of every case on `molecules` (Flex, autodiff).
pub fn segnn_step(molecules: &[Molecule], repeats: usize) -> Result<Vec<SegnnStepFigures>> {
    let device = Device::flex().autodiff();
    device.seed(0);
    let (batch, y) = graph_batch(molecules, &device)?;
    let mut out = Vec::new();
    for (case, hidden, lmax_attr, layers) in CASES {
        let config = SegnnConfig {
            input: "5x0e".parse()?,
            hidden: hidden.parse()?,
            lmax_attr,
            layers,
            outputs: 1,
            instance_norm: true,
            pooling: Pooling::Mean,
            raw_edge_vectors: false,
        };
        let mut net: Option<Segnn> = Some(Segnn::new(&config, &device)?);
        let params = net.as_ref().map_or(0, |n| n.num_params());
        let mut optim = AdamConfig::new().init();
        let seconds = median_seconds(2, repeats, || {
            let model = net.take().expect("the model is put back after every step");
            let loss = (model.forward(&batch) - y.clone()).abs().mean();
            let grads = GradientsParams::from_grads(loss.backward(), &model);
            net = Some(optim.step(1e-4, model, grads));
        });
        out.push(SegnnStepFigures {
            bench: "equivar_segnn".into(),
            case: case.into(),
            hidden: hidden.into(),
            lmax_attr,
            layers,
            molecules: molecules.len(),
            atoms: batch.graph.len(),
            edges: batch.edges.target.len(),
            params,
            step_ms: seconds * 1e3,
            repeats,
        });
    }
    Ok(out)
}
