//! Real irreducible representations of the planar groups (DESIGN.md 2.6), in O(2)'s notation
//! `psi_{j,k}`: `k` the rotation frequency, `j` whether the mirror acts by -1 on a 1-dim irrep
//! (2-dim irreps of groups with mirrors are written with `j = 1`, as escnn does).
//!
//! - SO(2): `psi_k`, k >= 0 (1-dim for k = 0, else the 2x2 rotation by `k * angle`).
//! - O(2): `psi_{0,0}` (trivial), `psi_{1,0}` (the mirror's sign), `psi_{1,k}` for k >= 1.
//! - C_N: `psi_k` for 0 <= k <= N/2; 1-dim at k = 0 and (N even) k = N/2, where rotations
//!   act by `(-1)^a`.
//! - D_N: O(2)'s pattern truncated the same way; for even N also `psi_{0,N/2}`, `psi_{1,N/2}`.
//!
//! A 2-dim irrep maps `r(angle) m^f` to `R(k * angle) F^f` with `F = diag(1, -1)`.

use std::fmt;

use nalgebra::DMatrix;

use super::planar::{O2Element, PlanarGroup};
use crate::error::EquivarError;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Irrep {
    /// `j`: 1 where the mirror enters (sign of a 1-dim irrep; every 2-dim irrep of a group with
    /// mirrors); always 0 for C_N and SO(2).
    pub reflection: u8,
    /// `k`, the rotation frequency.
    pub frequency: usize,
}

impl Irrep {
    pub fn new(reflection: u8, frequency: usize) -> Self {
        Irrep {
            reflection,
            frequency,
        }
    }

    /// Whether this is one of `group`'s irreps.
    pub fn is_irrep_of(self, group: PlanarGroup) -> bool {
        let (j, k) = (self.reflection, self.frequency);
        j <= 1
            && match group {
                PlanarGroup::So2 => j == 0,
                PlanarGroup::O2 => j == 1 || k == 0,
                PlanarGroup::Cyclic(n) => j == 0 && 2 * k <= n,
                PlanarGroup::Dihedral(n) => 2 * k <= n && (j == 1 || k == 0 || 2 * k == n),
            }
    }

    /// The irrep if it is one of `group`'s, else an error naming the group's irreps.
    pub fn validate(self, group: PlanarGroup) -> Result<Self, EquivarError> {
        if self.is_irrep_of(group) {
            return Ok(self);
        }
        Err(EquivarError::InvalidRepresentation {
            group: group.to_string(),
            reason: format!(
                "{} is not one of its irreps; they are {}",
                self.label(group),
                describe_irreps(group)
            ),
        })
    }

    /// Whether this irrep is 1-dim in `group` (frequency 0, or N/2 of an even finite group).
    fn is_one_dim(self, group: PlanarGroup) -> bool {
        self.frequency == 0 || group.rotation_order() == Some(2 * self.frequency)
    }

    pub fn dim(self, group: PlanarGroup) -> usize {
        if self.is_one_dim(group) { 1 } else { 2 }
    }

    /// Dimension of the irrep's commutant (the matrices commuting with all of it): 2 for the
    /// 2-dim irreps of C_N and SO(2), which are rotations and commute with each other; 1 for
    /// the rest. A real irrep appears `dim / this` times in the regular representation.
    pub fn endomorphism_dim(self, group: PlanarGroup) -> usize {
        if self.dim(group) == 2 && !group.has_reflections() {
            2
        } else {
            1
        }
    }

    /// `psi(g)`.
    pub fn matrix(self, group: PlanarGroup, g: O2Element) -> DMatrix<f64> {
        let k = self.frequency as f64;
        let mirror_sign = if g.reflected { -1.0 } else { 1.0 };
        if self.is_one_dim(group) {
            // cos(k * angle) is 1 at k = 0 and (-1)^a at k = N/2 on C_N / D_N.
            let rotation = (k * g.angle).cos().round();
            let reflection = if self.reflection == 1 {
                mirror_sign
            } else {
                1.0
            };
            return DMatrix::from_element(1, 1, rotation * reflection);
        }
        let (s, c) = (k * g.angle).sin_cos();
        DMatrix::from_row_slice(2, 2, &[c, -s * mirror_sign, s, c * mirror_sign])
    }

    /// `trace psi(g)`.
    pub fn character(self, group: PlanarGroup, g: O2Element) -> f64 {
        self.matrix(group, g).trace()
    }

    /// The short name: `irrep(k)` for groups without mirrors, `irrep(j,k)` with them.
    pub fn label(self, group: PlanarGroup) -> String {
        if group.has_reflections() {
            format!("irrep({},{})", self.reflection, self.frequency)
        } else {
            format!("irrep({})", self.frequency)
        }
    }

    /// The restriction of this irrep of `from` to the subgroup `to`: irreps of `to` and the
    /// orthogonal change of basis `Q` with `psi(h) = Q (sum of irreps)(h) Q^T` for h in `to`.
    /// A frequency folds modulo `to`'s rotation order M: to `k mod M`, or to `M - (k mod M)`
    /// through `Q = F` (since `F R(a) F = R(-a)`); folded to 0 or M/2, a 2-dim irrep splits.
    pub(crate) fn restrict(self, from: PlanarGroup, to: PlanarGroup) -> (Vec<Irrep>, DMatrix<f64>) {
        let mirrors = u8::from(to.has_reflections());
        let (folded, flip) = match to.rotation_order() {
            None => (self.frequency, false),
            Some(m) => {
                let r = self.frequency % m;
                if r == 0 || 2 * r >= m {
                    ((m - r) % m, 2 * r > m)
                } else {
                    (r, false)
                }
            }
        };
        if self.is_one_dim(from) {
            let j = if mirrors == 1 { self.reflection } else { 0 };
            return (vec![Irrep::new(j, folded)], DMatrix::identity(1, 1));
        }
        let target = Irrep::new(mirrors, folded);
        if !target.is_one_dim(to) {
            let q = if flip {
                DMatrix::from_diagonal(&nalgebra::DVector::from_vec(vec![1.0, -1.0]))
            } else {
                DMatrix::identity(2, 2)
            };
            return (vec![target], q);
        }
        // Rotations act as +-identity: the first axis is kept by the mirror, the second flipped.
        let parts = vec![Irrep::new(0, folded), Irrep::new(mirrors, folded)];
        (parts, DMatrix::identity(2, 2))
    }
}

impl PlanarGroup {
    /// The irreps of the group in a fixed order (frequency, then `j`); for SO(2) and O(2) up to
    /// `max_frequency` (ignored for finite groups).
    pub fn irreps(self, max_frequency: usize) -> Vec<Irrep> {
        let top = match self.rotation_order() {
            Some(n) => n / 2,
            None => max_frequency,
        };
        let mut out = Vec::new();
        for k in 0..=top {
            for j in 0..=1u8 {
                let irrep = Irrep::new(j, k);
                if irrep.is_irrep_of(self) {
                    out.push(irrep);
                }
            }
        }
        out
    }
}

fn describe_irreps(group: PlanarGroup) -> String {
    let shown: Vec<String> = group.irreps(2).iter().map(|i| i.label(group)).collect();
    match group.rotation_order() {
        Some(_) => shown.join(", "),
        None => format!("{}, ... (any frequency)", shown.join(", ")),
    }
}

impl fmt::Display for Irrep {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "irrep({},{})", self.reflection, self.frequency)
    }
}
