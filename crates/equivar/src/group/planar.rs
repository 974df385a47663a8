//! The symmetry groups of the plane about a point, as values: the finite C_N and D_N and the
//! continuous SO(2) and O(2). Every element is an element of O(2), written `r(angle) m^f`: first
//! the mirror `m` across the x axis (if `f`), then the rotation by `angle`. Composition follows
//! from `m r(a) m = r(-a)`: `(a1, f1)(a2, f2) = (a1 + (-1)^f1 a2, f1 xor f2)`.
//!
//! Pure mathematics in f64, no tensors. [`super::Group`] is the grid-facing view of the finite
//! groups (element indices on a group axis); [`PlanarGroup::from`] embeds it here.

use std::f64::consts::TAU;
use std::fmt;

use crate::error::EquivarError;

/// A subgroup of O(2) that equivar works with.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum PlanarGroup {
    /// Rotations by multiples of `2*pi/N`.
    Cyclic(usize),
    /// Rotations by multiples of `2*pi/N` and N mirrors (one across the x axis).
    Dihedral(usize),
    /// All rotations.
    So2,
    /// All rotations and mirrors.
    O2,
}

/// An element `r(angle) m^reflected` of O(2); `angle` in `[0, 2*pi)`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct O2Element {
    pub angle: f64,
    pub reflected: bool,
}

impl O2Element {
    pub fn new(angle: f64, reflected: bool) -> Self {
        O2Element {
            angle: angle.rem_euclid(TAU),
            reflected,
        }
    }

    pub fn identity() -> Self {
        O2Element::new(0.0, false)
    }

    /// The product `self * other` (apply `other` first).
    pub fn compose(self, other: O2Element) -> O2Element {
        let sign = if self.reflected { -1.0 } else { 1.0 };
        O2Element::new(
            self.angle + sign * other.angle,
            self.reflected ^ other.reflected,
        )
    }

    pub fn inverse(self) -> O2Element {
        if self.reflected {
            self // mirrors are involutions: (r(a) m)^2 = r(a) r(-a) = 1
        } else {
            O2Element::new(-self.angle, false)
        }
    }

    /// Distance to `other` on O(2): the angle between them, or infinity across the two
    /// components.
    pub fn distance(self, other: O2Element) -> f64 {
        if self.reflected != other.reflected {
            return f64::INFINITY;
        }
        let d = (self.angle - other.angle).rem_euclid(TAU);
        d.min(TAU - d)
    }
}

/// Tolerance for deciding that an angle is a multiple of `2*pi/N`.
const ANGLE_TOLERANCE: f64 = 1e-9;

impl PlanarGroup {
    /// The group itself if it is one (`N >= 1` for the finite families).
    pub fn validate(self) -> Result<Self, EquivarError> {
        match self {
            PlanarGroup::Cyclic(0) | PlanarGroup::Dihedral(0) => {
                Err(EquivarError::UnknownGroup(self.to_string()))
            }
            _ => Ok(self),
        }
    }

    /// Whether the group contains mirrors.
    pub fn has_reflections(self) -> bool {
        matches!(self, PlanarGroup::Dihedral(_) | PlanarGroup::O2)
    }

    /// N for the finite groups; `None` for SO(2) and O(2).
    pub fn rotation_order(self) -> Option<usize> {
        match self {
            PlanarGroup::Cyclic(n) | PlanarGroup::Dihedral(n) => Some(n),
            PlanarGroup::So2 | PlanarGroup::O2 => None,
        }
    }

    /// |G| for the finite groups.
    pub fn order(self) -> Option<usize> {
        self.rotation_order()
            .map(|n| n * if self.has_reflections() { 2 } else { 1 })
    }

    /// The elements of a finite group in group-axis order (rotations `r^0..r^(N-1)`, then
    /// `r^a m`), as [`super::Group::element`] numbers them; empty for SO(2) and O(2).
    pub fn elements(self) -> Vec<O2Element> {
        let Some(n) = self.rotation_order() else {
            return Vec::new();
        };
        let flips: &[bool] = if self.has_reflections() {
            &[false, true]
        } else {
            &[false]
        };
        flips
            .iter()
            .flat_map(|&f| (0..n).map(move |a| O2Element::new(TAU * a as f64 / n as f64, f)))
            .collect()
    }

    /// `count` elements spread evenly over the group: for a finite group its elements in turn,
    /// for SO(2) `count` equally spaced rotations, for O(2) `count / 2` of each kind (the
    /// sample points of Fourier nonlinearities).
    pub fn even_samples(self, count: usize) -> Vec<O2Element> {
        match self {
            PlanarGroup::Cyclic(_) | PlanarGroup::Dihedral(_) => {
                let all = self.elements();
                (0..count).map(|i| all[i % all.len()]).collect()
            }
            PlanarGroup::So2 => (0..count)
                .map(|i| O2Element::new(TAU * i as f64 / count as f64, false))
                .collect(),
            PlanarGroup::O2 => {
                let half = count.div_ceil(2);
                (0..count)
                    .map(|i| O2Element::new(TAU * (i % half) as f64 / half as f64, i >= half))
                    .collect()
            }
        }
    }

    /// A random element (uniform: Haar measure), from `unit` draws in `[0, 1)`: the first
    /// picks the rotation, the second the mirror.
    pub fn element_at(self, unit: [f64; 2]) -> O2Element {
        let reflected = self.has_reflections() && unit[1] >= 0.5;
        let angle = match self.rotation_order() {
            Some(n) => TAU * ((unit[0] * n as f64).floor() as usize).min(n - 1) as f64 / n as f64,
            None => TAU * unit[0],
        };
        O2Element::new(angle, reflected)
    }

    /// The elements that map a square pixel grid to itself: the group's intersection with D4
    /// (quarter turns and the axis mirrors), in [`PlanarGroup::elements`]' order for a finite
    /// group. The plan's exactness and `check`'s exact elements are these.
    pub fn pixel_grid_elements(self) -> Vec<O2Element> {
        let d4 = PlanarGroup::Dihedral(4).elements();
        match self.rotation_order() {
            Some(_) => self
                .elements()
                .into_iter()
                .filter(|&g| d4.iter().any(|&h| g.distance(h) < ANGLE_TOLERANCE))
                .collect(),
            None => d4.into_iter().filter(|&g| self.contains(g)).collect(),
        }
    }

    /// Whether `g` lies in this group.
    pub fn contains(self, g: O2Element) -> bool {
        if g.reflected && !self.has_reflections() {
            return false;
        }
        match self.rotation_order() {
            None => true,
            Some(n) => {
                let steps = g.angle * n as f64 / TAU;
                (steps - steps.round()).abs() < ANGLE_TOLERANCE * n as f64
            }
        }
    }

    /// Whether `sub` is a subgroup of this group (with the mirror across the x axis shared).
    pub fn has_subgroup(self, sub: PlanarGroup) -> bool {
        use PlanarGroup::*;
        let divides = |m: usize, n: usize| m >= 1 && n.is_multiple_of(m);
        match (self, sub) {
            (O2, _) => true,
            (So2, So2 | Cyclic(_)) => true,
            (Dihedral(n), Dihedral(m) | Cyclic(m)) | (Cyclic(n), Cyclic(m)) => divides(m, n),
            _ => false,
        }
    }

    /// The position of `g` in [`PlanarGroup::elements`] (finite groups; `None` if `g` is not
    /// an element).
    pub fn index_of(self, g: O2Element) -> Option<usize> {
        let n = self.rotation_order()?;
        if !self.contains(g) {
            return None;
        }
        let a = (g.angle * n as f64 / TAU).round() as usize % n;
        Some(a + if g.reflected { n } else { 0 })
    }
}

impl fmt::Display for PlanarGroup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PlanarGroup::Cyclic(n) => write!(f, "C{n}"),
            PlanarGroup::Dihedral(n) => write!(f, "D{n}"),
            PlanarGroup::So2 => f.write_str("SO(2)"),
            PlanarGroup::O2 => f.write_str("O(2)"),
        }
    }
}

impl From<super::Group> for PlanarGroup {
    fn from(g: super::Group) -> Self {
        match g {
            super::Group::Cyclic(n) => PlanarGroup::Cyclic(n),
            super::Group::Dihedral(n) => PlanarGroup::Dihedral(n),
        }
    }
}

impl super::Group {
    /// The element `e` as an element of O(2).
    pub fn o2_element(self, e: super::Element) -> O2Element {
        let n = self.rotations().max(1);
        O2Element::new(TAU * e.rotation as f64 / n as f64, e.reflected)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finite_groups_are_closed_and_indexed_like_the_grid_groups() {
        for g in [
            super::super::Group::Cyclic(6),
            super::super::Group::Dihedral(4),
        ] {
            let planar = PlanarGroup::from(g);
            let elements = planar.elements();
            assert_eq!(elements.len(), g.order());
            for (i, e) in g.elements().enumerate() {
                assert!(g.o2_element(e).distance(elements[i]) < 1e-12);
                assert_eq!(planar.index_of(elements[i]), Some(i));
                for (j, f) in g.elements().enumerate() {
                    let product = elements[i].compose(elements[j]);
                    let expected = g.o2_element(g.compose(e, f));
                    assert!(product.distance(expected) < 1e-12, "{i} {j}");
                }
            }
        }
    }

    #[test]
    fn subgroups_and_membership() {
        use PlanarGroup::*;
        assert!(Dihedral(16).has_subgroup(Cyclic(16)) && O2.has_subgroup(So2));
        assert!(Cyclic(8).has_subgroup(Cyclic(4)) && !Cyclic(8).has_subgroup(Cyclic(3)));
        assert!(!Cyclic(8).has_subgroup(Dihedral(4)) && !So2.has_subgroup(O2));
        assert!(Cyclic(4).contains(O2Element::new(TAU / 4.0, false)));
        assert!(!Cyclic(4).contains(O2Element::new(TAU / 8.0, false)));
        assert!(!Cyclic(4).contains(O2Element::new(0.0, true)));
        assert!(Cyclic(0).validate().is_err() && So2.validate().is_ok());
        assert_eq!(O2.even_samples(8).iter().filter(|g| g.reflected).count(), 4);
    }
}
