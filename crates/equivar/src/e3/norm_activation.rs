//! e3nn's `NormActivation`: every copy of every irrep scaled by an activation of its norm,
//! `x f(|x| + b) / |x|` (`normalize`) or `x f(|x| + b)`. Directions are kept and norms are
//! invariant, so the layer is equivariant whatever `f` is, and parities are unchanged.

use burn::module::{Module, Param};
use burn::tensor::{Device, Tensor, activation};

use super::Activation;
use crate::o3::Irreps;

#[derive(Module, Debug)]
pub struct NormActivation {
    /// One bias per copy (`num_irreps`), added to the norm before the activation.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub irreps: Irreps,
    #[module(skip)]
    pub activation: Activation,
    #[module(skip)]
    pub normalize: bool,
    /// Norms below this count as this (a zero copy stays zero, no division by zero).
    #[module(skip)]
    pub epsilon: f64,
}

impl NormActivation {
    pub fn new(
        irreps: Irreps,
        activation: Activation,
        normalize: bool,
        bias: bool,
        device: &Device,
    ) -> Self {
        NormActivation {
            bias: bias.then(|| Param::from_tensor(Tensor::zeros([irreps.num_irreps()], device))),
            irreps,
            activation,
            normalize,
            epsilon: 1e-8,
        }
    }

    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps.dim(),
            "NormActivation: input is [n, {}] ({})",
            self.irreps.dim(),
            self.irreps
        );
        let mut copy = 0;
        let mut parts = Vec::new();
        for (block, offset) in self.irreps.blocks().iter().zip(self.irreps.offsets()) {
            let (mul, d) = (block.mul, block.ir.dim());
            let field = x.clone().narrow(1, offset, mul * d).reshape([n, mul, d]);
            let norms = field
                .clone()
                .square()
                .sum_dim(2)
                .sqrt()
                .clamp_min(self.epsilon as f32);
            let mut argument = norms.clone();
            if let Some(bias) = &self.bias {
                argument = argument + bias.val().narrow(0, copy, mul).reshape([1, mul, 1]);
            }
            let mut scale = match self.activation {
                Activation::Silu => activation::silu(argument),
                Activation::Sigmoid => activation::sigmoid(argument),
                Activation::Tanh => argument.tanh(),
                Activation::Abs => argument.abs(),
            };
            if self.normalize {
                scale = scale / norms;
            }
            parts.push((field * scale).reshape([n, mul * d]));
            copy += mul;
        }
        if parts.is_empty() {
            return Tensor::zeros([n, 0], &x.device());
        }
        Tensor::cat(parts, 1)
    }
}
