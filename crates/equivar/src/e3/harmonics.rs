//! Spherical harmonics of edge vectors as a layer.

use std::sync::Arc;

use burn::tensor::Tensor;
use equivar_kernels::spherical_harmonics::ShPlan;

use crate::o3::{self, Irreps, Normalization};
use crate::ops::{self, Kernels};

/// The harmonics of degrees `0..=lmax` of vectors `[n, 3]`: `[n, (lmax + 1)^2]`, irreps
/// `1x0e+1x1o+...`, in e3nn's basis and normalisations.
#[derive(Clone, Debug)]
pub struct SphericalHarmonics {
    plan: Arc<ShPlan>,
    irreps: Irreps,
    kernels: Kernels,
}

impl SphericalHarmonics {
    /// `normalize`: evaluate at the unit vector (e3nn's `normalize=True`).
    pub fn new(
        lmax: usize,
        normalization: Normalization,
        normalize: bool,
    ) -> Result<Self, o3::O3Error> {
        // Validates lmax and gives the per-degree scale.
        o3::SphericalHarmonics::new(lmax, normalization, normalize)?;
        let scale: Vec<f64> = (0..=lmax).map(|l| normalization.factor(l)).collect();
        Ok(SphericalHarmonics {
            plan: Arc::new(ShPlan::new(lmax, normalize, &scale)),
            irreps: Irreps::spherical_harmonics(lmax),
            kernels: Kernels::default(),
        })
    }

    /// Which implementation runs it (equivar's kernel on Flex by default).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    pub fn irreps_out(&self) -> &Irreps {
        &self.irreps
    }

    pub fn forward(&self, vectors: Tensor<2>) -> Tensor<2> {
        ops::spherical_harmonics(vectors, &self.plan, self.kernels)
    }
}
