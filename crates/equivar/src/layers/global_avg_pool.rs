//! Mean over the domain to `1 x 1`: of all pixels on the plane (invariant to every permutation
//! of pixels), the quadrature-weighted mean on the sphere.

use burn::nn::pool::AdaptiveAvgPool2dConfig;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, no_lowering};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn;
use crate::plan::LayerPlan;
use crate::space::SphereGrid;
use crate::spec::Domain;

/// The global average pool (no settings).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GlobalAvgPool {}

impl LayerRule for GlobalAvgPool {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        Ok(PlanStep {
            out_size: 1,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        let ring_weights = match plan.domain {
            Domain::Plane => None,
            Domain::Sphere => {
                let [nlat, nlon] = plan.domain.shape(plan.in_size);
                let grid = SphereGrid::equiangular(nlat, nlon)?;
                let over_sphere = 4.0 * std::f64::consts::PI;
                Some(
                    grid.weights()
                        .iter()
                        .map(|w| (w / over_sphere) as f32)
                        .collect(),
                )
            }
        };
        Ok(Layer::GlobalAvgPool(nn::GlobalAvgPool {
            name: plan.name.clone(),
            channels: plan.in_type.channels(),
            ring_weights,
        }))
    }
}

impl LayerModule for nn::GlobalAvgPool {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::GlobalAvgPool::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        if self.ring_weights.is_some() {
            return Err(no_lowering(
                "global_avg_pool",
                "plain burn layers",
                "burn's pools weigh every pixel alike, the sphere's quadrature does not",
            ));
        }
        Ok(Some(PlainLayer::GlobalAvgPool(
            AdaptiveAvgPool2dConfig::new([1, 1]).init(),
        )))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        if self.ring_weights.is_some() {
            return Err(no_lowering(
                "global_avg_pool",
                "the frozen model",
                "the frozen model runs planar steps; run the model itself for inference",
            ));
        }
        frozen.global_avg_pool();
        Ok(())
    }
}
