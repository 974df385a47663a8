//! Groups and their representations, pure mathematics in f64, no tensors.
//!
//! - [`Group`] (this file): the finite groups C_N and D_N as the pixel grid sees them, elements
//!   numbered on a group axis (what the G-CNN layers index).
//! - [`planar`]: the same groups and SO(2), O(2) as subgroups of O(2), elements as an angle
//!   and a mirror flag.
//! - [`irrep`], [`representation`]: real irreps, and representations as direct sums of irreps
//!   up to a change of basis (trivial, regular with its Fourier transform, quotient,
//!   band-limited regular, direct sums, restriction, characters).
//!
//! For [`Group`]: An element of D_N is written `r^a m^f`: first the mirror
//! `m` (if `f`), then `a` rotations by `2*pi/N`. C_N is the subgroup with `f = 0`.
//! Composition follows from `m r m = r^-1`:
//! `(r^a1 m^f1)(r^a2 m^f2) = r^(a1 + (-1)^f1 a2) m^(f1 xor f2)`.

mod decompose;
pub mod irrep;
pub mod planar;
pub mod representation;

pub use irrep::Irrep;
pub use planar::{O2Element, PlanarGroup};
pub use representation::Representation;

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;

use crate::error::EquivarError;

/// A finite planar symmetry group.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum Group {
    /// Rotations by multiples of `2*pi/N`.
    Cyclic(usize),
    /// Rotations by multiples of `2*pi/N` and the N mirrors.
    Dihedral(usize),
}

/// One element `r^rotation m^reflected` of a [`Group`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Element {
    /// Number of rotations by `2*pi/N`, in `0..N`.
    pub rotation: usize,
    /// Whether the mirror is applied (before the rotation).
    pub reflected: bool,
}

impl Group {
    /// C_N. Panics if `n == 0` (a group has at least its identity); [`Group::try_cyclic`] is
    /// the fallible twin.
    pub fn cyclic(n: usize) -> Self {
        Self::try_cyclic(n).unwrap_or_else(|e| panic!("{e}"))
    }

    /// D_N. Panics if `n == 0`; [`Group::try_dihedral`] is the fallible twin.
    pub fn dihedral(n: usize) -> Self {
        Self::try_dihedral(n).unwrap_or_else(|e| panic!("{e}"))
    }

    /// C_N, or an error if `n == 0`.
    pub fn try_cyclic(n: usize) -> Result<Self, EquivarError> {
        Group::Cyclic(n).validate()
    }

    /// D_N, or an error if `n == 0`.
    pub fn try_dihedral(n: usize) -> Result<Self, EquivarError> {
        Group::Dihedral(n).validate()
    }

    /// The group itself if it is one: the variants are public, so `Group::Cyclic(0)` can be
    /// written, but it has no elements. Planning and building a model call this first.
    pub fn validate(self) -> Result<Self, EquivarError> {
        if self.rotations() == 0 {
            return Err(EquivarError::UnknownGroup(self.to_string()));
        }
        Ok(self)
    }

    /// The trivial group C1: plain (translation-only) CNNs are G-CNNs over C1.
    pub fn trivial() -> Self {
        Group::Cyclic(1)
    }

    /// N, the number of rotations.
    pub fn rotations(self) -> usize {
        match self {
            Group::Cyclic(n) | Group::Dihedral(n) => n,
        }
    }

    /// Whether the group contains mirrors.
    pub fn has_reflections(self) -> bool {
        matches!(self, Group::Dihedral(_))
    }

    /// |G|.
    pub fn order(self) -> usize {
        self.rotations() * if self.has_reflections() { 2 } else { 1 }
    }

    /// The identity element.
    pub fn identity(self) -> Element {
        Element {
            rotation: 0,
            reflected: false,
        }
    }

    /// The element at position `index` of the group axis: rotations first, then the
    /// reflected elements (`index = f * N + a`).
    pub fn element(self, index: usize) -> Element {
        assert!(
            index < self.order(),
            "element index {index} out of range for {self}"
        );
        let n = self.rotations();
        Element {
            rotation: index % n,
            reflected: index >= n,
        }
    }

    /// Position of `e` on the group axis; inverse of [`Group::element`].
    pub fn index(self, e: Element) -> usize {
        debug_assert!(self.contains(e));
        e.rotation + if e.reflected { self.rotations() } else { 0 }
    }

    /// Whether `e` is an element of this group.
    pub fn contains(self, e: Element) -> bool {
        e.rotation < self.rotations() && (!e.reflected || self.has_reflections())
    }

    /// All elements in group-axis order.
    pub fn elements(self) -> impl Iterator<Item = Element> {
        (0..self.order()).map(move |i| self.element(i))
    }

    /// The product `a b` (apply `b` first, then `a`).
    pub fn compose(self, a: Element, b: Element) -> Element {
        // max(1): C0 has no elements to compose (see `validate`); no division by zero.
        let n = self.rotations().max(1);
        let b_rot = if a.reflected {
            (n - b.rotation) % n
        } else {
            b.rotation
        };
        Element {
            rotation: (a.rotation + b_rot) % n,
            reflected: a.reflected ^ b.reflected,
        }
    }

    /// The inverse: rotations invert, mirrors are involutions.
    pub fn inverse(self, e: Element) -> Element {
        let n = self.rotations().max(1);
        if e.reflected {
            e
        } else {
            Element {
                rotation: (n - e.rotation % n) % n,
                reflected: false,
            }
        }
    }

    /// The regular representation of `g` as a permutation of the group axis:
    /// `(L_g f)[h] = f[g^-1 h]`, so the returned `perm` satisfies `(L_g f)[h] = f[perm[h]]`.
    pub fn regular_permutation(self, g: Element) -> Vec<usize> {
        let g_inv = self.inverse(g);
        self.elements()
            .map(|h| self.index(self.compose(g_inv, h)))
            .collect()
    }

    /// Whether the group acts exactly on a square pixel grid (rotations by multiples of 90
    /// degrees): N must divide 4.
    pub fn acts_on_pixel_grid(self) -> bool {
        self.rotations() != 0 && 4 % self.rotations() == 0
    }

    /// The short name: `C4`, `D4`, ...
    pub fn name(self) -> String {
        self.to_string()
    }
}

impl fmt::Display for Group {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Group::Cyclic(n) => write!(f, "C{n}"),
            Group::Dihedral(n) => write!(f, "D{n}"),
        }
    }
}

impl FromStr for Group {
    type Err = EquivarError;

    /// Parses `C4`, `D4`, `c2`, ... and the G-CNN names `p4` (= C4), `p4m` (= D4), `z2` (= C1).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let lower = s.trim().to_ascii_lowercase();
        let parsed = match lower.as_str() {
            "z2" => Some(Group::Cyclic(1)),
            "p4" => Some(Group::Cyclic(4)),
            "p4m" => Some(Group::Dihedral(4)),
            _ => {
                let (kind, digits) = lower.split_at(1.min(lower.len()));
                match (kind, digits.parse::<usize>()) {
                    ("c", Ok(n)) if n >= 1 => Some(Group::Cyclic(n)),
                    ("d", Ok(n)) if n >= 1 => Some(Group::Dihedral(n)),
                    _ => None,
                }
            }
        };
        parsed.ok_or_else(|| EquivarError::UnknownGroup(s.to_string()))
    }
}

impl TryFrom<String> for Group {
    type Error = EquivarError;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<Group> for String {
    fn from(g: Group) -> String {
        g.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn any_group() -> impl Strategy<Value = Group> {
        (1usize..13, any::<bool>()).prop_map(|(n, dihedral)| {
            if dihedral {
                Group::dihedral(n)
            } else {
                Group::cyclic(n)
            }
        })
    }

    proptest! {
        #[test]
        fn group_axioms(g in any_group(), a in 0usize..1000, b in 0usize..1000, c in 0usize..1000) {
            let [a, b, c] = [a, b, c].map(|i| g.element(i % g.order()));
            let e = g.identity();
            // closure and index round trip
            let ab = g.compose(a, b);
            prop_assert!(g.contains(ab));
            prop_assert_eq!(g.element(g.index(ab)), ab);
            // associativity
            prop_assert_eq!(g.compose(g.compose(a, b), c), g.compose(a, g.compose(b, c)));
            // identity and inverse
            prop_assert_eq!(g.compose(e, a), a);
            prop_assert_eq!(g.compose(a, e), a);
            prop_assert_eq!(g.compose(a, g.inverse(a)), e);
            prop_assert_eq!(g.compose(g.inverse(a), a), e);
        }

        #[test]
        fn regular_representation_is_a_homomorphism(g in any_group(), a in 0usize..100, b in 0usize..100) {
            let [a, b] = [a, b].map(|i| g.element(i % g.order()));
            let pa = g.regular_permutation(a);
            let pb = g.regular_permutation(b);
            let pab = g.regular_permutation(g.compose(a, b));
            // (L_a (L_b f))[h] = (L_b f)[pa[h]] = f[pb[pa[h]]] must equal (L_ab f)[h] = f[pab[h]]
            for h in 0..g.order() {
                prop_assert_eq!(pb[pa[h]], pab[h]);
            }
        }
    }

    #[test]
    fn dihedral_mirror_conjugates_rotation_to_its_inverse() {
        let g = Group::dihedral(4);
        let r = g.element(1);
        let m = g.element(4);
        assert_eq!(g.compose(g.compose(m, r), m), g.inverse(r));
        assert_eq!(g.order(), 8);
    }

    #[test]
    fn parses_names() {
        assert_eq!("p4".parse::<Group>().unwrap(), Group::Cyclic(4));
        assert_eq!("D4".parse::<Group>().unwrap(), Group::Dihedral(4));
        assert_eq!("z2".parse::<Group>().unwrap(), Group::Cyclic(1));
        assert!("q7".parse::<Group>().is_err());
        assert!("C0".parse::<Group>().is_err());
    }

    #[test]
    fn a_group_without_elements_is_an_error_not_a_panic() {
        for g in [Group::Cyclic(0), Group::Dihedral(0)] {
            let err = g.validate().unwrap_err().to_string();
            assert!(err.contains("N >= 1"), "{err}");
            assert_eq!(g.elements().count(), 0);
            assert!(!g.acts_on_pixel_grid());
            // Arithmetic on a stray element does not divide by zero.
            let e = Element {
                rotation: 1,
                reflected: false,
            };
            let _ = (g.compose(e, e), g.inverse(e));
        }
        assert!(Group::try_cyclic(0).is_err() && Group::try_dihedral(4).is_ok());
    }
}
