//! Equivariant subsampling and upsampling (Xu et al. 2021; DESIGN.md 2.9): each image is
//! resampled in its canonical pose and moved back (see [`nn::CanonicalResample`]), so the
//! layer commutes exactly with its group's quarter turns and mirrors at every input size,
//! where a strided pool or conv is exact only where its grid reaches the far border.
//!
//! Boundaries: the images keep their zero padding; the pose ranges over the symmetries of
//! the square grid about its centre (which map it to itself at any size), not over
//! translations, so translations stay as equivariant as in any strided CNN. A strided pool
//! becomes a stride-1 pool (exact at every size) followed by this layer.

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{
    Layer, LayerModule, LayerRule, PlanInput, PlanStep, expect_plane, invalid, no_lowering,
};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::{FrozenBuilder, Pose};
use crate::nn::{self, Resampling};
use crate::plan::LayerPlan;

/// The largest stride the layers take.
const MAX_STRIDE: usize = 16;

/// Every `stride`-th pixel of the canonical pose: `ceil(n / stride)` a side (model files:
/// `"kind": "equivariant_subsample"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EquivariantSubsample {
    pub stride: usize,
}

/// Zero-insertion upsampling in the canonical pose, `n * stride` a side (model files:
/// `"kind": "equivariant_upsample"`); follow it with a conv to interpolate.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct EquivariantUpsample {
    pub stride: usize,
}

fn plan_step(input: &PlanInput, resampling: Resampling) -> Result<PlanStep> {
    expect_plane(input)?;
    let stride = resampling.stride();
    if !(1..=MAX_STRIDE).contains(&stride) {
        return Err(invalid(
            input.layer,
            format!("stride {stride} is not in 1..={MAX_STRIDE}"),
        ));
    }
    Ok(PlanStep {
        out_size: resampling.out_size(input.in_size),
        ..PlanStep::same(input)
    })
}

fn build(plan: &LayerPlan, resampling: Resampling) -> Result<Layer> {
    Ok(Layer::CanonicalResample(nn::CanonicalResample {
        feature_type: plan.in_type.clone(),
        resampling,
        name: plan.name.clone(),
    }))
}

impl LayerRule for EquivariantSubsample {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        plan_step(
            input,
            Resampling::Subsample {
                stride: self.stride,
            },
        )
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        build(
            plan,
            Resampling::Subsample {
                stride: self.stride,
            },
        )
    }
}

impl LayerRule for EquivariantUpsample {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        plan_step(
            input,
            Resampling::Upsample {
                stride: self.stride,
            },
        )
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        build(
            plan,
            Resampling::Upsample {
                stride: self.stride,
            },
        )
    }
}

fn kind(resampling: Resampling) -> &'static str {
    match resampling {
        Resampling::Subsample { .. } => "equivariant_subsample",
        Resampling::Upsample { .. } => "equivariant_upsample",
    }
}

impl LayerModule for nn::CanonicalResample {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::CanonicalResample::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Err(no_lowering(
            kind(self.resampling),
            "plain burn layers",
            "its per-image pose has no plain burn layer; run the model itself",
        ))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        let poses = self
            .elements()
            .into_iter()
            .map(Pose::of)
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| {
                no_lowering(
                    kind(self.resampling),
                    "the frozen model",
                    "its group has a symmetry that does not permute the pixels; run the model \
                     itself for inference",
                )
            })?;
        frozen.canonical_resample(self.resampling, poses);
        Ok(())
    }
}
