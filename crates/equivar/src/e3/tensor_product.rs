//! Tensor products as a burn module.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::o3::{self, Irreps};
use crate::ops::{self, Kernels, TpWeights};

/// A Clebsch-Gordan tensor product ([`o3::TensorProduct`]) with its weights: internal
/// (learned, shared by all rows, N(0, 1) as e3nn initialises them; all scaling lives in the
/// path coefficients) or given per row to [`forward_with_weights`](Self::forward_with_weights).
#[derive(Module, Debug)]
pub struct TensorProduct {
    /// `[weight_numel]`, present for internal weights.
    pub weight: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub product: o3::TensorProduct,
    #[module(skip)]
    pub kernels: Kernels,
}

impl TensorProduct {
    /// With internal weights.
    pub fn new(product: o3::TensorProduct, device: &Device) -> Self {
        let weight = Tensor::<1>::random(
            [product.weight_numel()],
            Distribution::Normal(0.0, 1.0),
            device,
        );
        TensorProduct {
            weight: Some(Param::from_tensor(weight)),
            product,
            kernels: Kernels::default(),
        }
    }

    /// Weights come from outside, one vector per row (e.g. a radial network per edge).
    pub fn external(product: o3::TensorProduct) -> Self {
        TensorProduct {
            weight: None,
            product,
            kernels: Kernels::default(),
        }
    }

    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    pub fn irreps_out(&self) -> &Irreps {
        self.product.irreps_out()
    }

    /// `x1 [n, dim1] x x2 [n, dim2] -> [n, dim_out]` with the internal weights.
    pub fn forward(&self, x1: Tensor<2>, x2: Tensor<2>) -> Tensor<2> {
        let weight = self
            .weight
            .as_ref()
            .expect("this product takes its weights per row: call forward_with_weights")
            .val();
        ops::tensor_product(
            x1,
            x2,
            TpWeights::Shared(weight),
            self.product.plan(),
            self.kernels,
        )
    }

    /// The product with weights `[n, weight_numel]`, one vector per row.
    pub fn forward_with_weights(
        &self,
        x1: Tensor<2>,
        x2: Tensor<2>,
        weights: Tensor<2>,
    ) -> Tensor<2> {
        ops::tensor_product(
            x1,
            x2,
            TpWeights::PerRow(weights),
            self.product.plan(),
            self.kernels,
        )
    }
}
