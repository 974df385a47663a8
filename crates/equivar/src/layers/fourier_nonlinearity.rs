//! The Fourier-pointwise nonlinearity: a pointwise function applied to the samples of the
//! band-limited functions on the group that `regular(L)` fields of SO(2)/O(2) (and regular or
//! trivial fields) are, then projected back (see [`crate::nn::FourierPointwise`]).

use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::frozen::FrozenBuilder;
use crate::nn::{self, FourierPointwise};
use crate::plan::LayerPlan;
use crate::spec::Activation;

/// `function` on `samples` group elements of every field (model files:
/// `"kind": "fourier_nonlinearity"`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FourierNonlinearity {
    pub function: Activation,
    /// Sampled elements of SO(2)/O(2): a multiple of 4 (of 8 for O(2)), at least the band
    /// limit's Nyquist rate; twice that rate if left out. Finite groups use all elements.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub samples: Option<usize>,
}

impl LayerRule for FourierNonlinearity {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        FourierPointwise::new(input.layer, input.in_type, self.function, self.samples)?;
        Ok(PlanStep::same(input))
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::Fourier(FourierPointwise::new(
            &plan.name,
            &plan.in_type,
            self.function,
            self.samples,
        )?))
    }
}

impl LayerModule for nn::FourierPointwise {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        nn::FourierPointwise::forward(self, x)
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(Some(PlainLayer::Fourier(self.clone())))
    }

    fn lower(&self, frozen: &mut FrozenBuilder) -> Result<()> {
        frozen.fourier(self.function, &self.terms);
        Ok(())
    }
}
