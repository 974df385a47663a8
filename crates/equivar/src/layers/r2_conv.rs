//! The steerable convolution (`R2Conv`, Weiler & Cesa 2019) between feature types of any
//! representations of C_N, D_N, SO(2) or O(2). Exactly equivariant under the group's elements
//! that map the pixel grid to itself (quarter turns and axis mirrors) when its sampling grid
//! is symmetric (the plan's condition, as for every conv); under the other rotations of the
//! group it is equivariant up to the sampling of its kernel and of the image, which `check`
//! measures.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::{Layer, LayerRule, PlanInput, PlanStep, expect_plane, invalid, windowed};
use crate::error::Result;
use crate::field::FeatureType;
use crate::kernels::steerable::{Ring, validate_rings};
use crate::nn::R2Conv2d;
use crate::plan::LayerPlan;
use crate::space::Window;

/// A steerable convolution to the feature type `out`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct R2Conv {
    /// The output type: its terms (`"8x regular + 2x irrep(1)"`, in the input's group) or
    /// the whole type (`"C8: 8x regular"`).
    pub out: String,
    pub window: Window,
    /// A bias on the output's trivial irreps.
    pub bias: bool,
    /// The radial rings of the kernel basis; escnn 1.0's for the kernel size and dilation if
    /// left out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rings: Option<Vec<Ring>>,
}

impl R2Conv {
    /// The output type, read against the input's.
    pub fn out_type(&self, layer: &str, in_type: &FeatureType) -> Result<FeatureType> {
        let text = if self.out.contains(':') {
            self.out.clone()
        } else {
            format!("{}: {}", in_type.group, self.out)
        };
        let out: FeatureType = text
            .parse()
            .map_err(|e| invalid(layer, format!("output type: {e}")))?;
        if out.group != in_type.group {
            return Err(invalid(
                layer,
                format!(
                    "the output type `{out}` is of {} but the input `{in_type}` of {}; a \
                     convolution keeps the group (restrict the input's group first)",
                    out.group, in_type.group
                ),
            ));
        }
        Ok(out)
    }
}

impl LayerRule for R2Conv {
    fn window(&self) -> Option<Window> {
        Some(self.window)
    }

    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        expect_plane(input)?;
        let out_type = self.out_type(input.layer, input.in_type)?;
        self.window
            .validate()
            .map_err(|r| invalid(input.layer, r))?;
        if let Some(rings) = &self.rings {
            validate_rings(rings, self.window.kernel, self.window.dilation)
                .map_err(|e| invalid(input.layer, e.to_string()))?;
        }
        windowed(input, self.window, out_type, false)
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        Ok(Layer::R2Conv(R2Conv2d::new(
            &plan.name,
            &plan.in_type,
            &plan.out_type,
            self.window,
            self.rings.as_deref(),
            self.bias,
            device,
        )?))
    }
}

expanded_conv_module!(R2Conv2d);
