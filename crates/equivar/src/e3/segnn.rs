//! SEGNN (Brandstetter et al., ICLR 2022): steerable E(3)-equivariant graph networks whose
//! messages and updates are tensor products conditioned on steerable attributes (the
//! harmonics of the edge vectors, and at each node the mean of its edges' harmonics),
//! followed by gated nonlinearities.
//!
//! As in the authors' QM9 model: node input = one-hot atom type (`5x0e`); edge attributes =
//! harmonics up to `lmax_attr` of `x_j - x_i` ('component', normalised); node attributes = the
//! mean of the incident edge attributes; messages from `[h_i | h_j | |x_i - x_j|^2]`; updates
//! with a residual connection; instance normalisation over each molecule; mean pooling; a
//! scalar head.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::graph::{Edges, scatter_mean, scatter_sum};
use super::{Activation, Gate, InstanceNorm, SphericalHarmonics, TensorProduct};
use crate::o3::{self, Irrep, Irreps, MulIrrep, Normalization, O3Error};

/// A fully connected tensor product with the node or edge attributes, plus a bias on its
/// `0e` outputs (SEGNN's `O3TensorProduct`).
#[derive(Module, Debug)]
pub struct AttributeProduct {
    pub product: TensorProduct,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    scalars: Vec<(usize, usize)>,
}

impl AttributeProduct {
    pub fn new(
        irreps_in: Irreps,
        attributes: Irreps,
        irreps_out: Irreps,
        device: &Device,
    ) -> Result<Self, O3Error> {
        let product =
            o3::TensorProduct::fully_connected(irreps_in, attributes, irreps_out.clone())?;
        let scalars: Vec<(usize, usize)> = irreps_out
            .blocks()
            .iter()
            .zip(irreps_out.offsets())
            .filter(|(b, _)| b.ir == Irrep::harmonic(0))
            .map(|(b, offset)| (offset, b.mul))
            .collect();
        let count: usize = scalars.iter().map(|s| s.1).sum();
        Ok(AttributeProduct {
            product: TensorProduct::new(product, device),
            bias: (count > 0).then(|| Param::from_tensor(Tensor::zeros([count], device))),
            scalars,
        })
    }

    pub fn irreps_out(&self) -> &Irreps {
        self.product.irreps_out()
    }

    pub fn forward(&self, x: Tensor<2>, attributes: Tensor<2>) -> Tensor<2> {
        let y = self.product.forward(x, attributes);
        let Some(bias) = &self.bias else { return y };
        let [n, dim] = y.dims();
        // Add the bias on the 0e columns only: scatter it into a row of zeros.
        let mut row = vec![0usize; 0];
        for &(offset, mul) in &self.scalars {
            row.extend(offset..offset + mul);
        }
        let index = Tensor::<1, Int>::from_data(
            TensorData::new(
                row.iter().map(|&i| i as i64).collect::<Vec<_>>(),
                [row.len()],
            ),
            &y.device(),
        );
        let full = Tensor::<1>::zeros([dim], &y.device()).select_assign(
            0,
            index,
            bias.val(),
            burn::tensor::IndexingUpdateOp::Add,
        );
        y + full.reshape([1, dim]).expand([n, dim])
    }
}

/// An attribute product followed by a gate: SiLU on the scalars, sigmoid gates on the rest
/// (SEGNN's `O3TensorProductSwishGate`).
#[derive(Module, Debug)]
pub struct GatedProduct {
    pub product: AttributeProduct,
    #[module(skip)]
    pub gate: Gate,
}

impl GatedProduct {
    /// `irreps_out`: what the gate gives (its scalars are `0e` blocks, one gate per other irrep).
    pub fn new(
        irreps_in: Irreps,
        attributes: Irreps,
        irreps_out: &Irreps,
        device: &Device,
    ) -> Result<Self, O3Error> {
        let scalars = Irreps::new(
            irreps_out
                .blocks()
                .iter()
                .filter(|b| b.ir.l == 0)
                .copied()
                .collect(),
        );
        let gated = Irreps::new(
            irreps_out
                .blocks()
                .iter()
                .filter(|b| b.ir.l > 0)
                .copied()
                .collect(),
        );
        let gates = if gated.num_irreps() > 0 {
            format!("{}x0e", gated.num_irreps()).parse()?
        } else {
            Irreps::default()
        };
        let gate = Gate::new(scalars, Activation::Silu, gates, Activation::Sigmoid, gated)?;
        let product =
            AttributeProduct::new(irreps_in, attributes, gate.irreps_in().clone(), device)?;
        Ok(GatedProduct { product, gate })
    }

    pub fn irreps_out(&self) -> &Irreps {
        self.gate.irreps_out()
    }

    pub fn forward(&self, x: Tensor<2>, attributes: Tensor<2>) -> Tensor<2> {
        self.gate.forward(self.product.forward(x, attributes))
    }
}

/// One message-passing layer: messages `phi_m([h_i | h_j | d^2], a_ij)` (two products),
/// summed per node, update `h_i + phi_u([h_i | m_i], a_i)` (two products), instance norm.
#[derive(Module, Debug)]
pub struct SegnnLayer {
    pub message1: GatedProduct,
    pub message2: GatedProduct,
    pub update1: GatedProduct,
    pub update2: AttributeProduct,
    pub norm: Option<InstanceNorm>,
}

/// A batch of molecular graphs, as SEGNN reads it.
#[derive(Clone, Debug)]
pub struct GraphBatch {
    /// `[N, 3]` positions.
    pub positions: Tensor<2>,
    /// `[N, features]` node inputs (one-hot atom types for QM9).
    pub features: Tensor<2>,
    /// The graph of every node, and the number of graphs.
    pub graph: Vec<usize>,
    pub graphs: usize,
    pub edges: Edges,
}

/// SEGNN's sizes (a model file's fields; the last three may be left out).
#[derive(Clone, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SegnnConfig {
    pub input: Irreps,
    pub hidden: Irreps,
    pub lmax_attr: usize,
    pub layers: usize,
    /// Outputs (scalars) per graph.
    pub outputs: usize,
    /// Instance norm after every layer (SEGNN's QM9 setting; the default), or none.
    #[serde(default = "yes")]
    pub instance_norm: bool,
    /// How node features become one per graph (default: the mean).
    #[serde(default)]
    pub pooling: Pooling,
    /// Also give every message the edge vector's three components as plain scalars: this
    /// breaks rotation equivariance on purpose, for non-equivariant baselines (translations
    /// still leave the output unchanged).
    #[serde(default)]
    pub raw_edge_vectors: bool,
}

fn yes() -> bool {
    true
}

/// Graph pooling: SEGNN's QM9 setting is the mean; the sum suits extensive targets (sizes,
/// polarisabilities) when the layers do not see the whole molecule.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    #[default]
    Mean,
    Sum,
}

#[derive(Module, Debug)]
pub struct Segnn {
    pub embedding: AttributeProduct,
    pub layers: Vec<SegnnLayer>,
    pub pre_pool1: GatedProduct,
    pub pre_pool2: AttributeProduct,
    pub post_pool1: GatedProduct,
    pub post_pool2: AttributeProduct,
    #[module(skip)]
    pub harmonics: SphericalHarmonics,
    #[module(skip)]
    pub pooling: Pooling,
    #[module(skip)]
    pub raw_edge_vectors: bool,
}

impl Segnn {
    pub fn new(config: &SegnnConfig, device: &Device) -> Result<Self, O3Error> {
        if config.hidden.is_empty() || config.outputs == 0 {
            return Err(O3Error::InvalidInstruction {
                index: 0,
                reason: "SEGNN needs hidden irreps and at least one output".into(),
            });
        }
        let harmonics = SphericalHarmonics::new(config.lmax_attr, Normalization::Component, true)?;
        let attr = harmonics.irreps_out().clone();
        let hidden = &config.hidden;
        let embedding =
            AttributeProduct::new(config.input.clone(), attr.clone(), hidden.clone(), device)?;
        let concat = |a: &Irreps, b: &Irreps| {
            Irreps::new(a.blocks().iter().chain(b.blocks()).copied().collect())
        };
        // The squared length, and for a non-equivariant baseline the vector's components.
        let distance: Irreps = if config.raw_edge_vectors {
            "4x0e"
        } else {
            "1x0e"
        }
        .parse()?;
        let mut layers = Vec::new();
        for _ in 0..config.layers {
            let message_in = concat(&concat(hidden, hidden), &distance);
            let message1 = GatedProduct::new(message_in, attr.clone(), hidden, device)?;
            let message2 =
                GatedProduct::new(message1.irreps_out().clone(), attr.clone(), hidden, device)?;
            let update1 = GatedProduct::new(
                concat(hidden, message2.irreps_out()),
                attr.clone(),
                hidden,
                device,
            )?;
            let update2 = AttributeProduct::new(
                update1.irreps_out().clone(),
                attr.clone(),
                hidden.clone(),
                device,
            )?;
            let norm = config
                .instance_norm
                .then(|| InstanceNorm::new(hidden.clone(), device));
            layers.push(SegnnLayer {
                message1,
                message2,
                update1,
                update2,
                norm,
            });
        }
        let scalars = Irreps::new(vec![MulIrrep {
            mul: hidden
                .blocks()
                .iter()
                .filter(|b| b.ir.l == 0)
                .map(|b| b.mul)
                .sum::<usize>()
                .max(1),
            ir: Irrep::harmonic(0),
        }]);
        let pre_pool1 = GatedProduct::new(hidden.clone(), attr.clone(), hidden, device)?;
        let pre_pool2 = AttributeProduct::new(
            pre_pool1.irreps_out().clone(),
            attr.clone(),
            scalars.clone(),
            device,
        )?;
        let one: Irreps = "1x0e".parse()?;
        let post_pool1 = GatedProduct::new(scalars.clone(), one.clone(), &scalars, device)?;
        let post_pool2 = AttributeProduct::new(
            scalars,
            one,
            format!("{}x0e", config.outputs).parse()?,
            device,
        )?;
        Ok(Segnn {
            embedding,
            layers,
            pre_pool1,
            pre_pool2,
            post_pool1,
            post_pool2,
            harmonics,
            pooling: config.pooling,
            raw_edge_vectors: config.raw_edge_vectors,
        })
    }

    /// `[graphs, outputs]`.
    pub fn forward(&self, batch: &GraphBatch) -> Tensor<2> {
        let device = batch.positions.device();
        let [n, _] = batch.positions.dims();
        let (source, target) = batch.edges.tensors(&device);
        // Edge i <- j: the vector x_j - x_i, its harmonics and squared length.
        let vectors = batch.positions.clone().select(0, source.clone())
            - batch.positions.clone().select(0, target.clone());
        let edge_attr = self.harmonics.forward(vectors.clone());
        let mut distance = vectors.clone().square().sum_dim(1);
        if self.raw_edge_vectors {
            distance = Tensor::cat(vec![distance, vectors.clone()], 1);
        }
        let node_attr = scatter_mean(edge_attr.clone(), &batch.edges.target, n);
        // Nodes without edges still get the degree-0 attribute (1), so their products live.
        let lonely: Vec<f32> = {
            let mut has = vec![0.0f32; n];
            for &t in &batch.edges.target {
                has[t] = 1.0;
            }
            has.iter().map(|&h| 1.0 - h).collect()
        };
        let dim = edge_attr.dims()[1];
        let mut first = vec![0.0f32; dim];
        first[0] = 1.0;
        let node_attr = node_attr
            + Tensor::<1>::from_data(TensorData::new(lonely, [n]), &device).reshape([n, 1])
                * Tensor::<1>::from_data(TensorData::new(first, [dim]), &device).reshape([1, dim]);
        let mut h = self
            .embedding
            .forward(batch.features.clone(), node_attr.clone());
        for layer in &self.layers {
            let inputs = Tensor::cat(
                vec![
                    h.clone().select(0, target.clone()),
                    h.clone().select(0, source.clone()),
                    distance.clone(),
                ],
                1,
            );
            let m = layer.message1.forward(inputs, edge_attr.clone());
            let m = layer.message2.forward(m, edge_attr.clone());
            let aggregated = scatter_sum(m, target.clone(), n);
            let u = layer.update1.forward(
                Tensor::cat(vec![h.clone(), aggregated], 1),
                node_attr.clone(),
            );
            let u = layer.update2.forward(u, node_attr.clone());
            h = h + u;
            if let Some(norm) = &layer.norm {
                h = norm.forward(h, &batch.graph, batch.graphs);
            }
        }
        let h = self.pre_pool1.forward(h, node_attr.clone());
        let h = self.pre_pool2.forward(h, node_attr);
        let pooled = match self.pooling {
            Pooling::Mean => scatter_mean(h, &batch.graph, batch.graphs),
            Pooling::Sum => {
                let index: Vec<i64> = batch.graph.iter().map(|&g| g as i64).collect();
                let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
                scatter_sum(h, index, batch.graphs)
            }
        };
        let ones = Tensor::<2>::ones([batch.graphs, 1], &device);
        let y = self.post_pool1.forward(pooled, ones.clone());
        self.post_pool2.forward(y, ones)
    }
}
