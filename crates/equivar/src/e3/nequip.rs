//! A small NequIP-style network (Batzner et al. 2022) for graph-level scalars: atom types
//! embedded as scalars, interaction blocks of NequIP's convolution (radial network on a smooth
//! radial basis, channel-wise product with the edge harmonics, sum over neighbours, linear mix)
//! followed by a gate and a linear self-connection, then a per-atom scalar head summed over
//! each graph (NequIP predicts energies as sums of atomic energies).

use burn::module::Module;
use burn::tensor::{Device, Int, Tensor, TensorData, activation};

use super::graph::scatter_sum;
use super::segnn::GraphBatch;
use super::{Activation, Convolution, Gate, Linear};
use crate::o3::{Irrep, Irreps, MulIrrep, O3Error};

/// NequIP's sizes.
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NequipConfig {
    /// Node input, scalars only (one-hot atom types: `5x0e`).
    pub input: Irreps,
    /// Features between blocks; its `0e` part goes through SiLU, every other block is gated.
    pub hidden: Irreps,
    /// Degree of the edge harmonics.
    pub lmax: usize,
    /// Cutoff radius of the radial basis (the graph's radius).
    pub r_max: f64,
    pub basis: usize,
    /// Hidden units of the radial networks.
    pub radial_hidden: usize,
    pub layers: usize,
    /// Typical neighbour count: messages are summed and divided by its square root.
    pub neighbours: f64,
    /// Scalars per graph.
    pub outputs: usize,
}

#[derive(Module, Debug)]
pub struct NequipLayer {
    pub convolution: Convolution,
    pub self_connection: Linear,
    #[module(skip)]
    pub gate: Gate,
}

#[derive(Module, Debug)]
pub struct Nequip {
    pub embedding: Linear,
    pub layers: Vec<NequipLayer>,
    pub head1: Linear,
    pub head2: Linear,
}

impl Nequip {
    pub fn new(config: &NequipConfig, device: &Device) -> Result<Self, O3Error> {
        let invalid = |reason: String| O3Error::InvalidInstruction { index: 0, reason };
        let width = config.hidden.count(Irrep::harmonic(0));
        if width == 0 || config.layers == 0 || config.outputs == 0 {
            return Err(invalid(format!(
                "NequIP needs 0e channels in its hidden irreps ({}), a layer and an output",
                config.hidden
            )));
        }
        if config.input.blocks().iter().any(|b| b.ir.l > 0) {
            return Err(invalid(format!(
                "NequIP's node input must be scalars, not {}",
                config.input
            )));
        }
        let scalars = Irreps::new(vec![MulIrrep {
            mul: width,
            ir: Irrep::harmonic(0),
        }]);
        let embedding = Linear::new(config.input.clone(), scalars.clone(), false, device)?;
        let gated = Irreps::new(
            config
                .hidden
                .blocks()
                .iter()
                .filter(|b| b.ir.l > 0)
                .copied()
                .collect(),
        );
        let other_scalars: Vec<MulIrrep> = config
            .hidden
            .blocks()
            .iter()
            .filter(|b| b.ir.l == 0 && b.ir != Irrep::harmonic(0))
            .copied()
            .collect();
        if !other_scalars.is_empty() {
            return Err(invalid(format!(
                "NequIP's hidden scalars must be 0e; {} has odd ones",
                config.hidden
            )));
        }
        let gates = if gated.num_irreps() > 0 {
            format!("{}x0e", gated.num_irreps()).parse()?
        } else {
            Irreps::default()
        };
        let mut layers = Vec::new();
        let mut irreps_in = scalars.clone();
        for _ in 0..config.layers {
            let gate = Gate::new(
                scalars.clone(),
                Activation::Silu,
                gates.clone(),
                Activation::Sigmoid,
                gated.clone(),
            )?;
            let convolution = Convolution::new(
                irreps_in.clone(),
                gate.irreps_in().clone(),
                config.lmax,
                config.r_max,
                config.basis,
                config.radial_hidden,
                config.neighbours,
                device,
            )?;
            let self_connection =
                Linear::new(irreps_in.clone(), gate.irreps_out().clone(), false, device)?;
            irreps_in = gate.irreps_out().clone();
            layers.push(NequipLayer {
                convolution,
                self_connection,
                gate,
            });
        }
        let half = Irreps::new(vec![MulIrrep {
            mul: width.div_ceil(2),
            ir: Irrep::harmonic(0),
        }]);
        let head1 = Linear::new(irreps_in, half.clone(), true, device)?;
        let head2 = Linear::new(
            half,
            format!("{}x0e", config.outputs).parse()?,
            true,
            device,
        )?;
        Ok(Nequip {
            embedding,
            layers,
            head1,
            head2,
        })
    }

    /// `[graphs, outputs]`: the sum over each graph's atoms of the per-atom scalars.
    pub fn forward(&self, batch: &GraphBatch) -> Tensor<2> {
        let device = batch.positions.device();
        let [n, _] = batch.positions.dims();
        let mut h = self.embedding.forward(batch.features.clone());
        for layer in &self.layers {
            let messages =
                layer
                    .convolution
                    .forward(h.clone(), batch.positions.clone(), &batch.edges);
            h = layer.gate.forward(messages) + layer.self_connection.forward(h);
        }
        let atomic = self.head2.forward(activation::silu(self.head1.forward(h)));
        let index: Vec<i64> = batch.graph.iter().map(|&g| g as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
        scatter_sum(atomic, index, batch.graphs)
    }
}
