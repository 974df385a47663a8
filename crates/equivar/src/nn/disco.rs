//! DISCO convolutions on the sphere (Ocampo, Price and McEwen 2023; DESIGN.md 2.4):
//!
//! ```text
//! out[b, o, w] = bias[o] + sum_c sum_k W[o, c, k] sum_(w') psi_k(w, w') x[b, c, w']
//! ```
//!
//! psi ([`DiscoPsi`]) is fixed and sparse; the learned part is the `[out, in, K]` weight
//! over the K basis functions. The sparse contraction runs per channel plane
//! ([`ops::disco_gather`]), the channel mixing is one batched matmul, so cost and memory grow
//! linearly with the pixels. Rotations about the polar axis by whole steps of the output
//! grid commute with the layer exactly; other rotations approximately, better with
//! resolution (and exactly in the continuum limit for isotropic bases).

use std::sync::Arc;

use burn::module::{Module, Param};
use burn::nn::Initializer;
use burn::tensor::{Device, Tensor};

use crate::error::{EquivarError, Result};
use crate::kernels::{DiscoPsi, FilterBasis, Quadrature};
use crate::ops::{self, Kernels};
use crate::space::SphereGrid;

/// What both DISCO layers are built from.
#[derive(Clone, Debug)]
pub struct DiscoConfig {
    pub in_channels: usize,
    pub out_channels: usize,
    pub in_grid: SphereGrid,
    pub out_grid: SphereGrid,
    pub basis: FilterBasis,
    /// Radius of the filter's cap in radians; `None`: the coarser grid's latitude spacing.
    pub cutoff: Option<f64>,
    pub bias: bool,
}

impl DiscoConfig {
    pub fn new(
        in_channels: usize,
        out_channels: usize,
        in_grid: SphereGrid,
        out_grid: SphereGrid,
        basis: FilterBasis,
    ) -> Self {
        DiscoConfig {
            in_channels,
            out_channels,
            in_grid,
            out_grid,
            basis,
            cutoff: None,
            bias: true,
        }
    }

    pub fn with_cutoff(mut self, cutoff: f64) -> Self {
        self.cutoff = Some(cutoff);
        self
    }

    pub fn with_bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// The cutoff in use: the given one, or the coarser grid's latitude spacing.
    pub fn cutoff(&self) -> f64 {
        self.cutoff.unwrap_or_else(|| {
            self.in_grid
                .latitude_spacing()
                .max(self.out_grid.latitude_spacing())
        })
    }

    fn check_channels(&self) -> Result<()> {
        if self.in_channels == 0 || self.out_channels == 0 {
            return Err(EquivarError::InvalidLayer {
                layer: "DISCO convolution".into(),
                reason: format!(
                    "needs at least one input and one output channel, got {} -> {}",
                    self.in_channels, self.out_channels
                ),
            });
        }
        Ok(())
    }

    /// Uniform He initialisation over `in_channels * K` inputs, zero bias.
    fn init_params(&self, device: &Device) -> (Param<Tensor<3>>, Option<Param<Tensor<1>>>) {
        let k = self.basis.size();
        let init = Initializer::KaimingUniform {
            gain: 2f64.sqrt(),
            fan_out_only: false,
        };
        let weight = init.init_with(
            [self.out_channels, self.in_channels, k],
            Some(self.in_channels * k),
            None,
            device,
        );
        let bias = self
            .bias
            .then(|| Initializer::Zeros.init([self.out_channels], device));
        (weight, bias)
    }

    /// A convolution from `in_grid` to `out_grid` (same or coarser; in nlon a multiple of out
    /// nlon).
    pub fn init_conv(&self, device: &Device) -> Result<DiscoConvS2> {
        self.check_channels()?;
        let psi = DiscoPsi::new(
            &self.out_grid,
            &self.in_grid,
            self.basis,
            self.cutoff(),
            Quadrature::Columns,
        )?;
        let (weight, bias) = self.init_params(device);
        Ok(DiscoConvS2 {
            weight,
            bias,
            psi: Arc::new(psi),
            kernels: Kernels::default(),
        })
    }

    /// A transposed convolution from `in_grid` to `out_grid` (same or finer; out nlon a
    /// multiple of in nlon): the adjoint sparse pattern of the convolution the other way.
    pub fn init_transpose(&self, device: &Device) -> Result<DiscoConvTransposeS2> {
        self.check_channels()?;
        let psi = DiscoPsi::new(
            &self.in_grid,
            &self.out_grid,
            self.basis,
            self.cutoff(),
            Quadrature::Rows,
        )?;
        let (weight, bias) = self.init_params(device);
        Ok(DiscoConvTransposeS2 {
            weight,
            bias,
            psi: Arc::new(psi),
            kernels: Kernels::default(),
        })
    }
}

fn check_input(layer: &str, grid: &SphereGrid, channels: usize, x: &Tensor<4>) -> Result<()> {
    let d = x.dims();
    if d[1] != channels || d[2] != grid.nlat || d[3] != grid.nlon || d[0] == 0 {
        return Err(EquivarError::InputShape {
            context: format!(
                "{layer} on the {} {}x{} grid",
                grid.kind, grid.nlat, grid.nlon
            ),
            expected: format!("[batch >= 1, {channels}, {}, {}]", grid.nlat, grid.nlon),
            found: d.to_vec(),
            fix: "signals on the sphere are [batch, channels, nlat, nlon], north pole first".into(),
        });
    }
    Ok(())
}

/// DISCO convolution `[B, in, nlat_in, nlon_in] -> [B, out, nlat_out, nlon_out]`.
#[derive(Module, Debug)]
pub struct DiscoConvS2 {
    /// `[out, in, K]`.
    pub weight: Param<Tensor<3>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub psi: Arc<DiscoPsi>,
    /// Which implementation runs the contraction.
    #[module(skip)]
    pub kernels: Kernels,
}

impl DiscoConvS2 {
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let [_, in_c, _] = self.weight.dims();
        check_input("DiscoConvS2", &self.psi.columns, in_c, &x)?;
        let bias = self.bias.as_ref().map(|b| b.val());
        Ok(ops::disco_conv(
            x,
            self.weight.val(),
            bias,
            &self.psi,
            self.kernels,
        ))
    }

    /// [`Self::try_forward`], panicking with its message on a bad input shape.
    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}

/// Transposed DISCO convolution `[B, in, nlat_in, nlon_in] -> [B, out, nlat_out, nlon_out]`
/// onto a same or finer grid (upsampling).
#[derive(Module, Debug)]
pub struct DiscoConvTransposeS2 {
    /// `[out, in, K]`.
    pub weight: Param<Tensor<3>>,
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub psi: Arc<DiscoPsi>,
    /// Which implementation runs the contraction.
    #[module(skip)]
    pub kernels: Kernels,
}

impl DiscoConvTransposeS2 {
    pub fn try_forward(&self, x: Tensor<4>) -> Result<Tensor<4>> {
        let [_, in_c, _] = self.weight.dims();
        check_input("DiscoConvTransposeS2", &self.psi.rows, in_c, &x)?;
        let bias = self.bias.as_ref().map(|b| b.val());
        Ok(ops::disco_conv_transpose(
            x,
            self.weight.val(),
            bias,
            &self.psi,
            self.kernels,
        ))
    }

    pub fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        self.try_forward(x).unwrap_or_else(|e| panic!("{e}"))
    }
}
