//! Helpers shared by the f64 tests of the planar groups: the groups they sweep and
//! deterministic random draws.

use equivar::group::{O2Element, PlanarGroup};

/// C_N and D_N for N = 1..12, then SO(2) and O(2).
pub fn groups() -> Vec<PlanarGroup> {
    let mut out: Vec<PlanarGroup> = (1..=12)
        .flat_map(|n| [PlanarGroup::Cyclic(n), PlanarGroup::Dihedral(n)])
        .collect();
    out.extend([PlanarGroup::So2, PlanarGroup::O2]);
    out
}

/// Deterministic uniform draws in [0, 1) (xorshift).
pub struct Draws(pub u64);

impl Draws {
    pub fn unit(&mut self) -> f64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A uniformly random element of `group`.
    pub fn element(&mut self, group: PlanarGroup) -> O2Element {
        group.element_at([self.unit(), self.unit()])
    }
}
