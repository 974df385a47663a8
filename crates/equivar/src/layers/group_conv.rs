//! Group convolution (G -> G): regular fields to regular fields.

use burn::tensor::Device;
use serde::{Deserialize, Serialize};

use super::Layer;
use super::{
    LayerRule, PlanInput, PlanStep, expect_plane, expect_repr, invalid, on_pixel_grid, plan_fields,
    windowed,
};
use crate::error::Result;
use crate::field::{FieldType, Repr};
use crate::nn::GroupConv2d;
use crate::plan::LayerPlan;
use crate::space::Window;

/// `out_fields` regular fields from regular ones, through a `window`-sized filter.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GroupConv {
    pub out_fields: usize,
    pub window: Window,
    pub bias: bool,
}

impl LayerRule for GroupConv {
    fn window(&self) -> Option<Window> {
        Some(self.window)
    }

    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        expect_plane(input)?;
        let in_type = on_pixel_grid(expect_repr(
            input,
            Repr::Regular,
            "put a lifting conv before the first group conv",
        )?)?;
        if self.out_fields == 0 {
            return Err(invalid(input.layer, "out_fields must be at least 1"));
        }
        let out_type = FieldType::regular(in_type.group, self.out_fields).into();
        windowed(input, self.window, out_type, false)
    }

    fn build(&self, plan: &LayerPlan, device: &Device) -> Result<Layer> {
        Ok(Layer::GroupConv(GroupConv2d::new(
            &plan.name,
            plan_fields(plan)?,
            self.out_fields,
            self.window,
            self.bias,
            device,
        )?))
    }
}

expanded_conv_module!(GroupConv2d);
