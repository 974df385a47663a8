//! Equivariant instance normalisation over the nodes of each graph (e3nn's
//! `BatchNorm(instance=True)`, SEGNN's normalisation): statistics per graph, so a molecule's
//! features do not depend on the batch it came with.

use burn::module::{Module, Param};
use burn::tensor::{Device, Int, Tensor, TensorData};

use super::graph::scatter_mean;
use crate::o3::{Irrep, Irreps};

/// Per block of `mul` copies of an irrep:
/// - `0e` scalars: minus their graph's mean, over the square root of their graph's mean
///   square (plus `epsilon`), times a weight, plus a bias;
/// - every other irrep: over the square root of the graph's mean of the copy's mean square
///   over its `2l + 1` components (rotations keep that norm; subtracting a mean would not be
///   equivariant), times a weight.
#[derive(Module, Debug)]
pub struct InstanceNorm {
    /// One weight per copy of every block, in order: `[num_irreps]`.
    pub weight: Param<Tensor<1>>,
    /// One bias per `0e` copy, in order.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub irreps: Irreps,
    #[module(skip)]
    pub epsilon: f64,
}

impl InstanceNorm {
    pub fn new(irreps: Irreps, device: &Device) -> Self {
        let scalars: usize = irreps
            .blocks()
            .iter()
            .filter(|b| b.ir == Irrep::harmonic(0))
            .map(|b| b.mul)
            .sum();
        InstanceNorm {
            weight: Param::from_tensor(Tensor::ones([irreps.num_irreps()], device)),
            bias: (scalars > 0).then(|| Param::from_tensor(Tensor::zeros([scalars], device))),
            irreps,
            epsilon: 1e-5,
        }
    }

    /// `x [n, dim]`, `graph[i]` the graph of node `i` (in `0..graphs`).
    pub fn forward(&self, x: Tensor<2>, graph: &[usize], graphs: usize) -> Tensor<2> {
        let [n, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps.dim(),
            "InstanceNorm: input is [n, {}] ({})",
            self.irreps.dim(),
            self.irreps
        );
        assert_eq!(graph.len(), n, "InstanceNorm: one graph number per node");
        let device = x.device();
        let index: Vec<i64> = graph.iter().map(|&g| g as i64).collect();
        let index = Tensor::<1, Int>::from_data(TensorData::new(index, [n]), &device);
        // The graph's statistic at every node.
        let per_node =
            |values: Tensor<2>| scatter_mean(values, graph, graphs).select(0, index.clone());
        let weight = self.weight.val();
        let (mut copy, mut scalar) = (0, 0);
        let mut parts = Vec::new();
        for (block, offset) in self.irreps.blocks().iter().zip(self.irreps.offsets()) {
            let (mul, d) = (block.mul, block.ir.dim());
            let mut field = x.clone().narrow(1, offset, mul * d).reshape([n, mul, d]);
            let is_scalar = block.ir == Irrep::harmonic(0);
            if is_scalar {
                let flat = field.clone().reshape([n, mul]);
                field = (flat.clone() - per_node(flat)).reshape([n, mul, 1]);
            }
            let norm = per_node(field.clone().square().mean_dim(2).reshape([n, mul]));
            let scale = (norm + self.epsilon as f32).sqrt().recip()
                * weight.clone().narrow(0, copy, mul).reshape([1, mul]);
            let mut y = field * scale.reshape([n, mul, 1]);
            if is_scalar && let Some(bias) = &self.bias {
                y = y + bias.val().narrow(0, scalar, mul).reshape([1, mul, 1]);
                scalar += mul;
            }
            copy += mul;
            parts.push(y.reshape([n, mul * d]));
        }
        if parts.is_empty() {
            return Tensor::zeros([n, 0], &device);
        }
        Tensor::cat(parts, 1)
    }
}
