//! A sequential equivariant model, built from a [`NetSpec`] at one planned input size.

use burn::module::{Module, ModuleVisitor, Param};
use burn::tensor::{Device, Tensor};

use super::Layer;
use crate::error::{EquivarError, Result};
use crate::ops::Kernels;
use crate::plan::{Exactness, Plan};
use crate::spec::NetSpec;

/// A model made of equivar layers, with its spec and its plan at the input size it was built
/// for. Built only if every layer is exactly equivariant at that size, unless approximate
/// models were explicitly allowed.
#[derive(Module, Debug)]
pub struct Net {
    pub layers: Vec<Layer>,
    #[module(skip)]
    pub spec: NetSpec,
    #[module(skip)]
    pub plan: Plan,
    /// The model's choice of implementation for its heavy ops (layers may differ, see
    /// [`Net::with_layer_kernels`]); the frozen model follows it too.
    #[module(skip)]
    pub kernels: Kernels,
}

impl NetSpec {
    /// Plans the model at `input_size`, checks exactness and initialises it on `device`.
    pub fn init(&self, input_size: usize, exactness: Exactness, device: &Device) -> Result<Net> {
        let plan = Plan::new(self, input_size)?;
        plan.require(exactness)?;
        let layers = self
            .layers
            .iter()
            .zip(&plan.layers)
            .map(|(spec, plan)| spec.kind.build(plan, device))
            .collect::<Result<_>>()?;
        Ok(Net {
            layers,
            spec: self.clone(),
            plan,
            kernels: Kernels::default(),
        })
    }
}

/// Forces burn's lazily initialised parameters, so that construction timings include them.
struct Materialize;

impl ModuleVisitor for Materialize {
    fn visit_float<const D: usize>(&mut self, param: &Param<Tensor<D>>) {
        let _ = param.val();
    }
}

impl Net {
    /// Runs every layer's heavy ops with `kernels` (equivar's CPU kernels by default).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        for layer in &mut self.layers {
            layer.set_kernels(kernels);
        }
        self
    }

    /// Runs the heavy ops of the layer named `name` with `kernels`, the others as before.
    pub fn with_layer_kernels(mut self, name: &str, kernels: Kernels) -> Result<Self> {
        let Some(i) = self.plan.layers.iter().position(|l| l.name == name) else {
            let names: Vec<&str> = self.plan.layers.iter().map(|l| l.name.as_str()).collect();
            return Err(EquivarError::UnknownLayer {
                model: self.plan.model.clone(),
                layer: name.to_string(),
                known: names.join(", "),
            });
        };
        self.layers[i].set_kernels(kernels);
        Ok(self)
    }

    /// Initialises every parameter now instead of at first use.
    pub fn materialize_params(self) -> Self {
        self.visit(&mut Materialize);
        self
    }

    /// Trainable parameters (as PyTorch counts them): burn's `num_params` also counts batch
    /// norm running statistics.
    pub fn trainable_params(&self) -> usize {
        let running_stats: usize = self
            .layers
            .iter()
            .filter_map(Layer::batch_norm)
            .map(|bn| bn.running_len())
            .sum();
        self.num_params() - running_stats
    }

    /// Checks that `x` is `[batch, channels, n, n]` for this model's input type and size.
    pub fn check_input(&self, x: &Tensor<4>) -> Result<()> {
        let dims = x.dims();
        let channels = self.plan.input_type.channels();
        let [h, w] = self.plan.input_shape();
        if dims[1] != channels || dims[2] != h || dims[3] != w || dims[0] == 0 {
            return Err(EquivarError::InputShape {
                context: format!("model `{}`", self.plan.model),
                expected: format!("[batch >= 1, {channels}, {h}, {w}]"),
                found: dims.to_vec(),
                fix: format!(
                    "the model was planned for {h}x{w} inputs of type {}; resize the input or \
                     build the model for its size (the plan's exactness depends on it)",
                    self.plan.input_type
                ),
            });
        }
        Ok(())
    }

    /// Runs the model, after checking the input's shape. Layers that fuse with the next
    /// (see [`Layer::forward_fused`]) run with it as one op.
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        self.check_input(&x)?;
        let mut x = x;
        let mut layers = self.layers.iter().peekable();
        while let Some(layer) = layers.next() {
            let fused = layers.peek().and_then(|next| layer.forward_fused(next, &x));
            x = match fused {
                Some(y) => {
                    layers.next();
                    y
                }
                None => layer.forward(x),
            };
        }
        Ok(x)
    }

    /// Runs the model; panics with [`Net::try_forward`]'s error message on a bad input shape.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }

    /// The output of every layer, in order (each layer on its own: none fused).
    pub fn forward_layers(&self, x: Tensor<4>) -> Result<Vec<Tensor<4>>> {
        self.check_input(&x)?;
        let mut outputs = Vec::with_capacity(self.layers.len());
        let mut x = x;
        for layer in &self.layers {
            x = layer.forward(x);
            outputs.push(x.clone());
        }
        Ok(outputs)
    }

    /// Precise batch norm (Wu and Johnson 2021, "Rethinking Batch in BatchNorm"): recomputes
    /// every batch norm's running statistics as the population mean and variance of its input
    /// over `batches`, with the weights fixed and each earlier batch norm normalising by its
    /// batch statistics, as in training. The momentum-blended running averages of a short run
    /// lag the weights they were collected under, so the inference-mode network can score far
    /// from the trained one; after this it matches it. Dropout is off during the pass.
    ///
    /// Works on a training (autodiff) or inference model; the batches may be on either
    /// device. Returns the number of images seen, an error if there were none.
    pub fn recalibrate_batch_norm(
        &self,
        batches: impl IntoIterator<Item = Tensor<4>>,
    ) -> Result<usize> {
        let plain = self.valid();
        // Per batch norm: the sums of its moments, each weighted by its batch's images.
        let mut sums: Vec<Option<Vec<Tensor<1>>>> = vec![None; plain.layers.len()];
        let mut images = 0usize;
        for batch in batches {
            let batch = batch.without_autodiff();
            plain.check_input(&batch)?;
            let weight = batch.dims()[0] as f64;
            images += batch.dims()[0];
            let mut x = batch;
            for (layer, sum) in plain.layers.iter().zip(sums.iter_mut()) {
                x = match layer.batch_norm() {
                    Some(bn) => {
                        let (y, moments) = bn.batch_moments(x);
                        let weighted = moments.into_iter().map(|m| m.mul_scalar(weight));
                        *sum = Some(match sum.take() {
                            Some(s) => s.into_iter().zip(weighted).map(|(a, b)| a + b).collect(),
                            None => weighted.collect(),
                        });
                        y
                    }
                    None => layer.forward(x),
                };
            }
        }
        if images == 0 {
            return Err(EquivarError::InputShape {
                context: format!("batch-norm recalibration of model `{}`", self.plan.model),
                expected: "at least one batch of images".to_string(),
                found: vec![],
                fix: "pass batches of training images".to_string(),
            });
        }
        for (layer, sum) in self.layers.iter().zip(sums) {
            if let (Some(bn), Some(sum)) = (layer.batch_norm(), sum) {
                bn.set_from_moments(
                    sum.into_iter()
                        .map(|m| m.div_scalar(images as f64))
                        .collect(),
                );
            }
        }
        Ok(images)
    }

    /// Class scores `[batch, classes]` of a classifier whose output is `1 x 1`.
    pub fn logits(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let y = self.try_forward(x)?;
        let [b, c, h, w] = y.dims();
        if h * w != 1 {
            return Err(EquivarError::not_a_classifier(
                format!("logits of model `{}`", self.plan.model),
                y.dims().to_vec(),
            ));
        }
        Ok(y.reshape([b, c]))
    }
}
