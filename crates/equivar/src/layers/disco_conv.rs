//! DISCO convolution on the sphere (Ocampo, Price and McEwen 2023; [`crate::nn::DiscoConvS2`]):
//! scalar channels to scalar channels on equiangular `nlat x 2 nlat` grids, keeping the grid or
//! dividing it. Exactly equivariant to rotations about the polar axis by whole longitude
//! steps of its output grid; to other rotations approximately, better with resolution.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_repr, invalid, no_lowering,
};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::field::{FieldType, Repr};
use crate::frozen::FrozenBuilder;
use crate::kernels::FilterBasis;
use crate::nn::{DiscoConfig, DiscoConvS2};
use crate::ops::Kernels;
use crate::plan::LayerPlan;
use crate::space::SphereGrid;
use crate::spec::Domain;

/// `out_channels` scalar channels, the grid divided by `downsample` in both directions.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DiscoConv {
    pub out_channels: usize,
    /// 1 keeps the grid; `d` maps `nlat x 2 nlat` to `nlat/d x 2 nlat/d` (`d` must divide
    /// `nlat`).
    pub downsample: usize,
    /// The filter basis, e.g. `{"type": "piecewise_linear", "radial": 5, "azimuthal": 1}`
    /// (isotropic: centre and two rings).
    pub basis: FilterBasis,
    /// The filter cap's radius in latitude spacings of the output grid.
    pub cutoff_spacings: f64,
    pub bias: bool,
}

impl DiscoConv {
    /// The output grid of an input grid of `nlat` rings.
    fn out_grid(&self, nlat: usize) -> Result<SphereGrid> {
        let out = nlat / self.downsample.max(1);
        SphereGrid::equiangular(out, 2 * out)
    }
}

impl LayerRule for DiscoConv {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        if input.domain != Domain::Sphere {
            return Err(invalid(
                input.layer,
                "a DISCO convolution works on the sphere; give the model `\"domain\": \"sphere\"`",
            ));
        }
        let in_type = expect_repr(input, Repr::Trivial, "sphere models carry scalar channels")?;
        if self.out_channels == 0 {
            return Err(invalid(input.layer, "out_channels must be at least 1"));
        }
        self.basis
            .validate()
            .map_err(|e| invalid(input.layer, format!("basis: {e}")))?;
        let nlat = input.in_size;
        if self.downsample == 0 || !nlat.is_multiple_of(self.downsample) {
            return Err(invalid(
                input.layer,
                format!(
                    "downsample {} does not divide the {nlat} latitude rings of its input; use \
                     a divisor of {nlat} (1 keeps the grid), or an input size that is a \
                     multiple of the model's total downsampling",
                    self.downsample
                ),
            ));
        }
        let out = self
            .out_grid(nlat)
            .map_err(|e| invalid(input.layer, e.to_string()))?;
        let cutoff = self.cutoff_spacings * out.latitude_spacing();
        if !(cutoff.is_finite() && cutoff > 0.0 && cutoff < std::f64::consts::PI) {
            return Err(invalid(
                input.layer,
                format!(
                    "cutoff_spacings {} makes a cap radius of {cutoff:.3} rad; it must be \
                     positive and below pi: use fewer spacings, or a larger input size (a \
                     finer output grid)",
                    self.cutoff_spacings
                ),
            ));
        }
        Ok(PlanStep {
            out_type: FieldType::trivial(in_type.group, self.out_channels).into(),
            out_size: nlat / self.downsample,
            remainder: None,
            exact: true,
        })
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        let [nlat, nlon] = plan.domain.shape(plan.in_size);
        let in_grid = SphereGrid::equiangular(nlat, nlon)?;
        let out_grid = self.out_grid(plan.in_size)?;
        let cutoff = self.cutoff_spacings * out_grid.latitude_spacing();
        let conv = DiscoConfig::new(
            plan.in_type.channels(),
            self.out_channels,
            in_grid,
            out_grid,
            self.basis,
        )
        .with_cutoff(cutoff)
        .with_bias(self.bias)
        .init_conv(device)?;
        Ok(Layer::Disco(conv))
    }
}

impl LayerModule for DiscoConvS2 {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        DiscoConvS2::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Err(no_lowering(
            "disco_conv",
            "plain burn layers",
            "burn has no sparse sphere convolution; run the model itself",
        ))
    }

    fn lower(&self, _frozen: &mut FrozenBuilder) -> Result<()> {
        Err(no_lowering(
            "disco_conv",
            "the frozen model",
            "the frozen model runs planar steps; run the model itself for inference",
        ))
    }

    fn set_kernels(&mut self, kernels: Kernels) {
        self.kernels = kernels;
    }
}
