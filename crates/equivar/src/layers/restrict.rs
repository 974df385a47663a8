//! Restriction to a subgroup inside a model (Weiler & Cesa 2019's "D16|5 C16": D16 fields for
//! the first layers, C16 after): the tensor is unchanged and only read as a feature type of
//! the subgroup, so the layers after it may use the smaller symmetry (e.g. learn
//! mirror-dependent features). Supported where each term stays a sum of the subgroup's
//! representations in the same basis: trivial fields to any subgroup; D_N's regular fields to
//! C_N (two regular fields: the rotations, then the mirrored ones); irreps whose frequency the
//! subgroup keeps (frequency 0, below half its order, or D_N / O(2) to C_N / SO(2)). Other
//! cases need a change of basis (escnn's disentangling) and are refused with an error.

use burn::module::Module;
use burn::tensor::{Device, Tensor};
use serde::{Deserialize, Serialize};

use super::{Layer, LayerModule, LayerRule, PlanInput, PlanStep, invalid};
use crate::error::Result;
use crate::export::PlainLayer;
use crate::field::{FeatureType, ReprKind};
use crate::frozen::FrozenBuilder;
use crate::group::{Irrep, PlanarGroup};
use crate::plan::LayerPlan;

/// Reads the input as a feature type of `subgroup` (`"C16"`, `"SO(2)"`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Restrict {
    pub subgroup: String,
}

/// The restriction's module: the identity on tensors.
#[derive(Module, Debug)]
pub struct Restriction {
    #[module(skip)]
    pub name: String,
}

/// `kind` of `group` as representations of `sub` in the same basis, or `None`.
fn restrict_term(group: PlanarGroup, sub: PlanarGroup, kind: ReprKind) -> Option<Vec<ReprKind>> {
    let drops_mirror = group.has_reflections() && !sub.has_reflections();
    let same_rotations = group.rotation_order() == sub.rotation_order();
    match kind {
        ReprKind::Trivial => Some(vec![ReprKind::Trivial]),
        // D_N's group axis: r^0..r^(N-1), then r^a m; each half is C_N's regular field.
        ReprKind::Regular if drops_mirror && same_rotations => {
            Some(vec![ReprKind::Regular, ReprKind::Regular])
        }
        ReprKind::Irrep(irrep) => {
            let k = irrep.frequency;
            let j = if sub.has_reflections() {
                irrep.reflection
            } else {
                0
            };
            let kept = match sub.rotation_order() {
                None => true,
                Some(m) => 2 * k < m || (same_rotations && 2 * k == m),
            };
            if k == 0 {
                Some(vec![if j == 0 {
                    ReprKind::Trivial
                } else {
                    ReprKind::Irrep(Irrep::new(j, 0))
                }])
            } else if kept {
                Some(vec![ReprKind::Irrep(Irrep::new(j, k))])
            } else {
                None
            }
        }
        _ => None,
    }
}

impl Restrict {
    /// The input type read as a type of the subgroup.
    pub fn out_type(&self, layer: &str, in_type: &FeatureType) -> Result<FeatureType> {
        let sub: PlanarGroup = self
            .subgroup
            .parse()
            .map_err(|e| invalid(layer, format!("subgroup: {e}")))?;
        let group = in_type.group;
        if !group.has_subgroup(sub) || sub == group {
            return Err(invalid(
                layer,
                format!("{sub} is not a proper subgroup of {group}, the input's group"),
            ));
        }
        let mut terms = Vec::new();
        for &(count, kind) in &in_type.terms {
            let parts = restrict_term(group, sub, kind).ok_or_else(|| {
                invalid(
                    layer,
                    format!(
                        "restricting `{}` from {group} to {sub} needs a change of basis, which \
                         this layer does not do; restrict trivial, regular (D_N to C_N) or \
                         low-frequency irrep fields",
                        FeatureType::new(group, vec![(1, kind)])
                            .map_or_else(|_| format!("{kind:?}"), |t| t.to_string())
                    ),
                )
            })?;
            // One copy's parts in order, `count` times (the channels do not move).
            for _ in 0..count {
                for &part in &parts {
                    match terms.last_mut() {
                        Some((n, last)) if *last == part => *n += 1,
                        _ => terms.push((1, part)),
                    }
                }
            }
        }
        FeatureType::new(sub, terms).map_err(|e| invalid(layer, e.to_string()))
    }
}

impl LayerRule for Restrict {
    fn plan(&self, input: &PlanInput) -> Result<PlanStep> {
        Ok(PlanStep {
            out_type: self.out_type(input.layer, input.in_type)?,
            ..PlanStep::same(input)
        })
    }

    fn build(&self, plan: &LayerPlan, _device: &Device) -> Result<Layer> {
        Ok(Layer::Restrict(Restriction {
            name: plan.name.clone(),
        }))
    }
}

impl LayerModule for Restriction {
    fn forward(&self, x: Tensor<4>) -> Tensor<4> {
        x
    }

    fn export(&self) -> Result<Option<PlainLayer>> {
        Ok(None)
    }

    fn lower(&self, _frozen: &mut FrozenBuilder) -> Result<()> {
        Ok(())
    }
}
