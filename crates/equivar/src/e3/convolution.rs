//! An interatomic convolution (NequIP's, e3nn's `Convolution` example): messages from each
//! neighbour are its features times the harmonics of the edge vector through a channel-wise
//! tensor product whose weights a radial network computes from the edge length; they are
//! summed at the receiving atom and mixed by an equivariant linear map.

use burn::module::{Module, Param};
use burn::tensor::activation;
use burn::tensor::{Device, Distribution, Tensor};

use super::graph::{Edges, scatter_sum};
use super::radial::{RadialBasis, soft_one_hot_linspace};
use super::{Linear, SphericalHarmonics, TensorProduct};
use crate::o3::{self, Irreps, Normalization, O3Error};

/// e3nn's `FullyConnectedNet` without biases: `h <- act(h W / sqrt(fan_in))`, weights N(0, 1),
/// SiLU rescaled to unit second moment; no activation after the last layer.
#[derive(Module, Debug)]
pub struct RadialMlp {
    pub weights: Vec<Param<Tensor<2>>>,
}

impl RadialMlp {
    /// Layer widths, e.g. `[8, 64, 352]`.
    pub fn new(widths: &[usize], device: &Device) -> Self {
        let weights = widths
            .windows(2)
            .map(|w| {
                Param::from_tensor(Tensor::random(
                    [w[0], w[1]],
                    Distribution::Normal(0.0, 1.0),
                    device,
                ))
            })
            .collect();
        RadialMlp { weights }
    }

    pub fn forward(&self, mut h: Tensor<2>) -> Tensor<2> {
        let last = self.weights.len().saturating_sub(1);
        for (k, w) in self.weights.iter().enumerate() {
            let fan_in = w.val().dims()[0] as f32;
            h = h.matmul(w.val()) / fan_in.sqrt();
            if k < last {
                h = activation::silu(h) * super::Activation::Silu.normalization() as f32;
            }
        }
        h
    }
}

/// Node features `irreps_in` to `irreps_out` through messages along the edges of a graph.
#[derive(Module, Debug)]
pub struct Convolution {
    pub radial: RadialMlp,
    pub product: TensorProduct,
    pub linear: Linear,
    #[module(skip)]
    pub harmonics: SphericalHarmonics,
    /// Radial basis functions on `[0, r_max]` (e3nn's smooth_finite, times sqrt(n)).
    #[module(skip)]
    pub basis_size: usize,
    #[module(skip)]
    pub r_max: f64,
    /// Messages are summed and divided by sqrt(this), the typical neighbour count.
    #[module(skip)]
    pub neighbours: f64,
}

impl Convolution {
    /// `lmax`: degree of the edge harmonics; the radial network has one hidden layer of
    /// `hidden` units.
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        irreps_in: Irreps,
        irreps_out: Irreps,
        lmax: usize,
        r_max: f64,
        basis_size: usize,
        hidden: usize,
        neighbours: f64,
        device: &Device,
    ) -> Result<Self, O3Error> {
        if !(r_max.is_finite() && r_max > 0.0 && neighbours.is_finite() && neighbours > 0.0)
            || hidden == 0
        {
            return Err(O3Error::InvalidRadialBasis {
                reason: format!(
                    "a convolution needs r_max > 0, a neighbour count > 0 and hidden units, got {r_max}, {neighbours}, {hidden}"
                ),
            });
        }
        // Validates the basis size.
        soft_one_hot_linspace(
            Tensor::zeros([1], device),
            0.0,
            r_max,
            basis_size,
            RadialBasis::SmoothFinite,
            true,
        )?;
        let harmonics = SphericalHarmonics::new(lmax, Normalization::Component, true)?;
        let product = o3::TensorProduct::channel_wise(
            irreps_in,
            harmonics.irreps_out().clone(),
            &irreps_out,
        )?;
        let numel = product.weight_numel();
        let linear = Linear::new(product.irreps_out().clone(), irreps_out, false, device)?;
        Ok(Convolution {
            radial: RadialMlp::new(&[basis_size, hidden, numel], device),
            product: TensorProduct::external(product),
            linear,
            harmonics,
            basis_size,
            r_max,
            neighbours,
        })
    }

    /// `x [N, irreps_in]`, `positions [N, 3]`, the graph's edges: `[N, irreps_out]`.
    pub fn forward(&self, x: Tensor<2>, positions: Tensor<2>, edges: &Edges) -> Tensor<2> {
        let [n, _] = x.dims();
        let (source, target) = edges.tensors(&x.device());
        let vectors =
            positions.clone().select(0, source.clone()) - positions.select(0, target.clone());
        let [e, _] = vectors.dims();
        let lengths = vectors.clone().square().sum_dim(1).sqrt().reshape([e]);
        let basis = soft_one_hot_linspace(
            lengths,
            0.0,
            self.r_max,
            self.basis_size,
            RadialBasis::SmoothFinite,
            true,
        )
        .expect("the basis was validated at construction")
            * (self.basis_size as f32).sqrt();
        let weights = self.radial.forward(basis);
        let attributes = self.harmonics.forward(vectors);
        let messages = self
            .product
            .forward_with_weights(x.select(0, source), attributes, weights);
        let summed = scatter_sum(messages, target, n) / (self.neighbours.sqrt() as f32);
        self.linear.forward(summed)
    }
}
