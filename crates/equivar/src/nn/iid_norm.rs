//! Batch norm for fields of any representation (escnn's `IIDBatchNorm2d`): each field is
//! centred by the invariant part of its mean (the projection of the mean onto the field's
//! trivial irreps; the other irreps have mean zero under the group), divided by the root of
//! its mean squared norm per component, scaled by one learned factor per field, and shifted
//! by a learned bias on its trivial irreps. Projections onto the trivial subspace and norms
//! commute with an orthogonal representation, so the layer is equivariant; on a regular field
//! it computes what the inner batch norm ([`super::EquivariantBatchNorm`]) computes.

use burn::module::{Flag, Module, Param, RunningState};
use burn::tensor::{Device, Tensor, TensorData};

use super::check_channels;
use crate::field::FeatureType;
use crate::group::Irrep;

/// One term's shape and its trivial subspace.
#[derive(Clone, Debug, PartialEq)]
pub struct IidTerm {
    pub count: usize,
    pub dim: usize,
    /// The trivial irreps' columns of the change of basis, `[dim, trivial]` (row-major).
    pub trivial_basis: Vec<f32>,
    pub trivial: usize,
}

impl IidTerm {
    fn terms(t: &FeatureType) -> Vec<IidTerm> {
        t.terms
            .iter()
            .map(|&(count, kind)| {
                let rho = kind
                    .representation(t.group)
                    .expect("a planned feature type");
                let mut at = 0;
                let mut columns = Vec::new();
                for irrep in rho.irreps() {
                    if *irrep == Irrep::new(0, 0) {
                        columns.push(at);
                    }
                    at += irrep.dim(t.group);
                }
                let q = rho.change_of_basis();
                let dim = rho.dim();
                let trivial_basis = (0..dim)
                    .flat_map(|r| columns.iter().map(move |&c| (r, c)))
                    .map(|(r, c)| q[(r, c)] as f32)
                    .collect();
                IidTerm {
                    count,
                    dim,
                    trivial_basis,
                    trivial: columns.len(),
                }
            })
            .collect()
    }
}

/// Batch norm on fields of any representation (see the module docs). Training mode (batch
/// statistics, running averages updated) on autodiff devices while in training state.
#[derive(Module, Debug)]
pub struct IidBatchNorm {
    /// One scale per field.
    pub gamma: Param<Tensor<1>>,
    /// One shift per trivial irrep of each field (none if no field has one).
    pub beta: Option<Param<Tensor<1>>>,
    /// The invariant part of the mean, per channel.
    pub running_mean: RunningState<Tensor<1>>,
    /// The mean squared norm per component around that mean, per field (biased).
    pub running_var: RunningState<Tensor<1>>,
    pub training: Param<Flag>,
    #[module(skip)]
    pub terms: Vec<IidTerm>,
    #[module(skip)]
    pub epsilon: f64,
    #[module(skip)]
    pub momentum: f64,
    #[module(skip)]
    pub name: String,
}

/// A host matrix as a tensor like `like`'s.
fn matrix(values: &[f32], rows: usize, cols: usize, like: &Tensor<4>) -> Tensor<2> {
    Tensor::from_data(
        TensorData::new(values.to_vec(), [rows, cols]),
        (&like.device(), like.dtype()),
    )
}

impl IidBatchNorm {
    pub fn new(name: &str, t: &FeatureType, epsilon: f64, momentum: f64, device: &Device) -> Self {
        let terms = IidTerm::terms(t);
        let fields: usize = terms.iter().map(|t| t.count).sum();
        let channels: usize = terms.iter().map(|t| t.count * t.dim).sum();
        let shifts: usize = terms.iter().map(|t| t.count * t.trivial).sum();
        IidBatchNorm {
            gamma: Param::from_tensor(Tensor::ones([fields], device)),
            beta: (shifts > 0).then(|| Param::from_tensor(Tensor::zeros([shifts], device))),
            running_mean: RunningState::new(Tensor::zeros([channels], device)),
            running_var: RunningState::new(Tensor::ones([fields], device)),
            training: Param::from_bool(true),
            terms,
            epsilon,
            momentum,
            name: name.to_string(),
        }
    }

    pub fn fields(&self) -> usize {
        self.terms.iter().map(|t| t.count).sum()
    }

    pub fn channels(&self) -> usize {
        self.terms.iter().map(|t| t.count * t.dim).sum()
    }

    /// The learned shift per channel (zero off the trivial irreps).
    pub fn shift(&self, like: &Tensor<4>) -> Tensor<1> {
        let device = like.device();
        let mut at = 0;
        let parts = self
            .terms
            .iter()
            .map(|t| match (&self.beta, t.trivial) {
                (Some(beta), k) if k > 0 => {
                    let b = beta.val().narrow(0, at, t.count * k).reshape([t.count, k]);
                    at += t.count * k;
                    let basis = matrix(&t.trivial_basis, t.dim, k, like);
                    b.matmul(basis.transpose()).reshape([t.count * t.dim])
                }
                _ => Tensor::zeros([t.count * t.dim], &device),
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// `(x - mean) * gamma / sqrt(var + eps) + shift`, with `mean` per channel and `var` per
    /// field.
    fn normalise(&self, x: Tensor<4>, mean: Tensor<1>, var: Tensor<1>) -> Tensor<4> {
        let c = x.dims()[1];
        let shift = self.shift(&x);
        let scale = self.gamma.val() / var.add_scalar(self.epsilon).sqrt();
        let per_channel = self.per_channel(scale);
        (x - mean.reshape([1, c, 1, 1])) * per_channel.reshape([1, c, 1, 1])
            + shift.reshape([1, c, 1, 1])
    }

    /// A value per field repeated over the field's channels.
    pub fn per_channel(&self, per_field: Tensor<1>) -> Tensor<1> {
        let mut at = 0;
        let parts = self
            .terms
            .iter()
            .map(|t| {
                let v = per_field.clone().narrow(0, at, t.count);
                at += t.count;
                v.reshape([t.count, 1])
                    .repeat_dim(1, t.dim)
                    .reshape([t.count * t.dim])
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// The batch's statistics: the invariant part of the mean per channel, and the mean
    /// squared norm per component around it per field (biased).
    pub fn batch_stats(&self, x: &Tensor<4>) -> (Tensor<1>, Tensor<1>) {
        let [b, _, h, w] = x.dims();
        let n = (b * h * w) as f64;
        let (mut at, mut means, mut vars) = (0, Vec::new(), Vec::new());
        for t in &self.terms {
            let (c, d) = (t.count, t.dim);
            let xt = x.clone().narrow(1, at, c * d).reshape([b, c, d, h * w]);
            at += c * d;
            let mean = if t.trivial > 0 {
                let full = xt
                    .clone()
                    .sum_dim(3)
                    .sum_dim(0)
                    .reshape([c, d])
                    .div_scalar(n);
                let q = matrix(&t.trivial_basis, d, t.trivial, x);
                full.matmul(q.clone()).matmul(q.transpose())
            } else {
                Tensor::zeros([c, d], &x.device())
            };
            let centered = xt - mean.clone().reshape([1, c, d, 1]);
            let var = centered
                .powi_scalar(2)
                .sum_dim(3)
                .sum_dim(2)
                .sum_dim(0)
                .reshape([c])
                .div_scalar(n * d as f64);
            means.push(mean.reshape([c * d]));
            vars.push(var);
        }
        (Tensor::cat(means, 0), Tensor::cat(vars, 0))
    }

    /// Normalises `x` by its own batch statistics (as in training, the running statistics
    /// untouched) and returns them: `(y, mean per channel, variance per field)`.
    pub fn forward_batch_stats(&self, x: Tensor<4>) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
        check_channels(&self.name, self.channels(), &x);
        let (mean, var) = self.batch_stats(&x);
        (self.normalise(x, mean.clone(), var.clone()), mean, var)
    }

    /// The squared norm per component of each field's part of `mean` (per channel), per field.
    pub fn mean_square_per_component(&self, mean: Tensor<1>) -> Tensor<1> {
        let mut at = 0;
        let parts = self
            .terms
            .iter()
            .map(|t| {
                let m = mean.clone().narrow(0, at, t.count * t.dim);
                at += t.count * t.dim;
                m.reshape([t.count, t.dim])
                    .powi_scalar(2)
                    .sum_dim(1)
                    .reshape([t.count])
                    .div_scalar(t.dim as f64)
            })
            .collect();
        Tensor::cat(parts, 0)
    }

    /// Replaces the running statistics with `mean` (per channel) and `var` (per field).
    pub fn set_running_stats(&self, mean: Tensor<1>, var: Tensor<1>) {
        let device = self.running_mean.value_sync().device();
        self.running_mean.update(mean.detach().to_device(&device));
        self.running_var.update(var.detach().to_device(&device));
        let _ = (
            self.running_mean.value_sync(),
            self.running_var.value_sync(),
        );
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        check_channels(&self.name, self.channels(), &x);
        let training = x.device().is_autodiff() && self.training.is_enabled();
        if !training {
            let device = x.device();
            let mean = self.running_mean.value().to_device(&device);
            let var = self.running_var.value().to_device(&device);
            return self.normalise(x, mean, var);
        }
        let (mean, var) = self.batch_stats(&x);
        let m = self.momentum;
        let blend = |running: Tensor<1>, batch: Tensor<1>| {
            running
                .to_device(&batch.device())
                .mul_scalar(1.0 - m)
                .add(batch.detach().mul_scalar(m))
                .detach()
        };
        self.running_mean
            .update(blend(self.running_mean.value_sync(), mean.clone()));
        self.running_var
            .update(blend(self.running_var.value_sync(), var.clone()));
        self.normalise(x, mean, var)
    }
}
