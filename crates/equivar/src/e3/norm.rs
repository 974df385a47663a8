//! Equivariant instance normalisation over the nodes of each graph (e3nn's
//! `BatchNorm(instance=True)`, SEGNN's normalisation): statistics per graph, so a molecule's
//! features do not depend on the batch it came with.

use burn::module::{Module, Param, RunningState};
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
        let scalars = irreps.count(Irrep::harmonic(0));
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
        let mut affine = Affine::new(&self.weight, &self.bias);
        for (mut field, is_scalar, mul) in fields(&x, &self.irreps) {
            if is_scalar {
                let flat = field.clone().reshape([n, mul]);
                field = (flat.clone() - per_node(flat)).reshape([n, mul, 1]);
            }
            let norm = per_node(field.clone().square().mean_dim(2).reshape([n, mul]));
            let inv_rms = (norm + self.epsilon as f32)
                .sqrt()
                .recip()
                .reshape([n, mul, 1]);
            affine.push(field, inv_rms, is_scalar);
        }
        affine.finish(n, &device)
    }
}

/// A normalisation's last step, shared by all three: each block's normalised field times its
/// copies' weights, plus the biases of `0e` copies, walking the copies in order.
struct Affine {
    weight: Tensor<1>,
    bias: Option<Tensor<1>>,
    /// The next copy (of any irrep) and the next `0e` copy.
    copy: usize,
    scalar: usize,
    parts: Vec<Tensor<2>>,
}

impl Affine {
    fn new(weight: &Param<Tensor<1>>, bias: &Option<Param<Tensor<1>>>) -> Self {
        Affine {
            weight: weight.val(),
            bias: bias.as_ref().map(|b| b.val()),
            copy: 0,
            scalar: 0,
            parts: Vec::new(),
        }
    }

    /// `field [n, mul, d]` (centred if `0e`) times `inv_rms` (broadcast to it).
    fn push(&mut self, field: Tensor<3>, inv_rms: Tensor<3>, is_scalar: bool) {
        let [n, mul, d] = field.dims();
        let weight = self
            .weight
            .clone()
            .narrow(0, self.copy, mul)
            .reshape([1, mul, 1]);
        let mut y = field * inv_rms * weight;
        if is_scalar {
            if let Some(bias) = &self.bias {
                y = y + bias
                    .clone()
                    .narrow(0, self.scalar, mul)
                    .reshape([1, mul, 1]);
            }
            self.scalar += mul;
        }
        self.copy += mul;
        self.parts.push(y.reshape([n, mul * d]));
    }

    fn finish(self, n: usize, device: &Device) -> Tensor<2> {
        if self.parts.is_empty() {
            return Tensor::zeros([n, 0], device);
        }
        Tensor::cat(self.parts, 1)
    }
}

/// Per-block fields of `x [n, irreps.dim()]`: `(field [n, mul, d], is 0e, mul)` in order.
fn fields(x: &Tensor<2>, irreps: &Irreps) -> Vec<(Tensor<3>, bool, usize)> {
    let [n, _] = x.dims();
    irreps
        .blocks()
        .iter()
        .zip(irreps.offsets())
        .map(|(block, offset)| {
            let (mul, d) = (block.mul, block.ir.dim());
            (
                x.clone().narrow(1, offset, mul * d).reshape([n, mul, d]),
                block.ir == Irrep::harmonic(0),
                mul,
            )
        })
        .collect()
}

/// Equivariant batch normalisation (e3nn's `BatchNorm`, 'component' normalisation): statistics
/// over all nodes of the batch while training (on an autodiff device), kept as running
/// averages (`momentum`) and used in evaluation. `0e` copies lose their mean; every copy is
/// divided by the root of its mean square (over components and nodes); a weight per copy, a
/// bias per `0e` copy.
#[derive(Module, Debug)]
pub struct BatchNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Option<Param<Tensor<1>>>,
    /// Per `0e` copy.
    pub running_mean: RunningState<Tensor<1>>,
    /// Per copy of every block: the mean square.
    pub running_var: RunningState<Tensor<1>>,
    #[module(skip)]
    pub irreps: Irreps,
    #[module(skip)]
    pub momentum: f64,
    #[module(skip)]
    pub epsilon: f64,
}

impl BatchNorm {
    pub fn new(irreps: Irreps, device: &Device) -> Self {
        let scalars = irreps.count(Irrep::harmonic(0));
        BatchNorm {
            weight: Param::from_tensor(Tensor::ones([irreps.num_irreps()], device)),
            bias: (scalars > 0).then(|| Param::from_tensor(Tensor::zeros([scalars], device))),
            running_mean: RunningState::new(Tensor::zeros([scalars], device)),
            running_var: RunningState::new(Tensor::ones([irreps.num_irreps()], device)),
            irreps,
            momentum: 0.1,
            epsilon: 1e-5,
        }
    }

    /// `x [n, dim]` (nodes of any number of graphs).
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps.dim(),
            "BatchNorm: input is [n, {}] ({})",
            self.irreps.dim(),
            self.irreps
        );
        let device = x.device();
        let training = device.is_autodiff();
        let (running_mean, running_var) = if training {
            (
                self.running_mean.value_sync(),
                self.running_var.value_sync(),
            )
        } else {
            (self.running_mean.value(), self.running_var.value())
        };
        let (mut new_means, mut new_vars) = (Vec::new(), Vec::new());
        let mut affine = Affine::new(&self.weight, &self.bias);
        for (mut field, is_scalar, mul) in fields(&x, &self.irreps) {
            let (copy, scalar) = (affine.copy, affine.scalar);
            if is_scalar {
                let mean = if training {
                    let mean = field.clone().mean_dim(0).reshape([mul]);
                    new_means.push(mean.clone().detach());
                    mean
                } else {
                    running_mean
                        .clone()
                        .narrow(0, scalar, mul)
                        .to_device(&device)
                };
                field = field - mean.reshape([1, mul, 1]);
            }
            let var = if training {
                let var = field
                    .clone()
                    .square()
                    .mean_dim(2)
                    .mean_dim(0)
                    .reshape([mul]);
                new_vars.push(var.clone().detach());
                var
            } else {
                running_var.clone().narrow(0, copy, mul).to_device(&device)
            };
            let inv_rms = (var + self.epsilon as f32)
                .sqrt()
                .recip()
                .reshape([1, mul, 1]);
            affine.push(field, inv_rms, is_scalar);
        }
        if training {
            let m = self.momentum as f32;
            if !new_means.is_empty() {
                let mean = Tensor::cat(new_means, 0);
                self.running_mean
                    .update((running_mean.to_device(&device) * (1.0 - m) + mean * m).detach());
            }
            if !new_vars.is_empty() {
                let var = Tensor::cat(new_vars, 0);
                self.running_var
                    .update((running_var.to_device(&device) * (1.0 - m) + var * m).detach());
            }
        }
        affine.finish(n, &device)
    }
}

/// Equivariant layer normalisation over each node's channels (as Equiformer's): per block,
/// `0e` copies lose their mean over the block's copies; every copy is divided by the root of
/// the block's mean square (over copies and components); a weight per copy, a bias per `0e`
/// copy. No statistics cross nodes, so a node's output does not depend on its batch.
#[derive(Module, Debug)]
pub struct LayerNorm {
    pub weight: Param<Tensor<1>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub irreps: Irreps,
    #[module(skip)]
    pub epsilon: f64,
}

impl LayerNorm {
    pub fn new(irreps: Irreps, device: &Device) -> Self {
        let scalars = irreps.count(Irrep::harmonic(0));
        LayerNorm {
            weight: Param::from_tensor(Tensor::ones([irreps.num_irreps()], device)),
            bias: (scalars > 0).then(|| Param::from_tensor(Tensor::zeros([scalars], device))),
            irreps,
            epsilon: 1e-5,
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps.dim(),
            "LayerNorm: input is [n, {}] ({})",
            self.irreps.dim(),
            self.irreps
        );
        let mut affine = Affine::new(&self.weight, &self.bias);
        for (mut field, is_scalar, _) in fields(&x, &self.irreps) {
            if is_scalar {
                field = field.clone() - field.mean_dim(1);
            }
            // The block's mean square over copies and components: [n, 1, 1].
            let var = field.clone().square().mean_dim(2).mean_dim(1);
            affine.push(field, (var + self.epsilon as f32).sqrt().recip(), is_scalar);
        }
        affine.finish(n, &x.device())
    }
}
