//! Feature types as direct sums of representations of one planar group, with a short text
//! form that parses and prints:
//!
//! ```text
//! C8: 8x regular + 2x irrep(1) + 4x trivial
//! D4: 16x regular + quotient(C2) + irrep(1,1) + irrep(0,2)
//! SO(2): 4x irrep(1) + 2x regular(3) + trivial
//! O(2): 8x regular(2) + 2x irrep(1,3)
//! ```
//!
//! `GROUP: TERM + TERM + ...`, each term `[COUNT x] REPR` with REPR one of `trivial`,
//! `regular` (finite groups), `regular(L)` (band-limited to frequency L), `quotient(H)` (the
//! permutation of the cosets of the subgroup H), `irrep(k)` (groups without mirrors) or
//! `irrep(j,k)` (with mirrors; DESIGN.md 2.6). Groups: `C<N>`, `D<N>`, `SO(2)`, `O(2)`, and
//! the G-CNN names `z2` (C1), `p4` (C4), `p4m` (D4). Spaces are free; names are not case
//! sensitive. Printing gives the canonical form, which parses back to the same type.
//!
//! The channels of a feature map of this type follow the terms in order, each term's copies
//! one after another: the layout `[batch, channels, height, width]` stays.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;
use std::str::FromStr;

use super::super::group::{Group, Irrep, PlanarGroup, Representation};
use super::{FieldType, Repr};
use crate::error::EquivarError;

/// One kind of representation in a feature type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReprKind {
    Trivial,
    /// The regular representation of a finite group.
    Regular,
    /// The regular representation band-limited to a maximum frequency.
    BandLimitedRegular(usize),
    /// The permutation representation on the cosets of a subgroup.
    Quotient(PlanarGroup),
    Irrep(Irrep),
}

/// A direct sum `count_1 x repr_1 + count_2 x repr_2 + ...` of representations of `group`.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct FeatureType {
    pub group: PlanarGroup,
    pub terms: Vec<(usize, ReprKind)>,
}

impl ReprKind {
    /// The representation of `group` this names.
    pub fn representation(self, group: PlanarGroup) -> Result<Representation, EquivarError> {
        match self {
            ReprKind::Trivial => Representation::trivial(group),
            ReprKind::Regular => Representation::regular(group),
            ReprKind::BandLimitedRegular(l) => Representation::band_limited_regular(group, l),
            ReprKind::Quotient(sub) => Representation::quotient(group, sub),
            ReprKind::Irrep(irrep) => Representation::irrep(group, irrep),
        }
    }

    /// The dimension of the representation of `group` this names, from the irreps alone (no
    /// change of basis is built); 0 if it is not a representation of `group`.
    pub fn dim(self, group: PlanarGroup) -> usize {
        match self {
            ReprKind::Trivial => 1,
            ReprKind::Regular => group.order().unwrap_or(0),
            ReprKind::Quotient(sub) => match (group.order(), sub.order()) {
                (Some(n), Some(m)) if m >= 1 && group.has_subgroup(sub) => n / m,
                _ => 0,
            },
            ReprKind::Irrep(irrep) if irrep.is_irrep_of(group) => irrep.dim(group),
            ReprKind::Irrep(_) => 0,
            // Each irrep up to L as often as in the regular representation.
            ReprKind::BandLimitedRegular(l) => group
                .irreps(l)
                .into_iter()
                .filter(|i| i.frequency <= l)
                .map(|i| i.dim(group) * i.dim(group) / i.endomorphism_dim(group))
                .sum(),
        }
    }

    /// The term's text form in `group` (`regular(3)`, `irrep(1,2)`, ...).
    pub fn text(self, group: PlanarGroup) -> String {
        match self {
            ReprKind::Trivial => "trivial".into(),
            ReprKind::Regular => "regular".into(),
            ReprKind::BandLimitedRegular(l) => format!("regular({l})"),
            ReprKind::Quotient(sub) => format!("quotient({sub})"),
            ReprKind::Irrep(irrep) => irrep.label(group),
        }
    }
}

impl FeatureType {
    /// The type, checked: every term a representation of `group`, every count at least 1.
    pub fn new(group: PlanarGroup, terms: Vec<(usize, ReprKind)>) -> Result<Self, EquivarError> {
        let t = FeatureType { group, terms };
        t.term_representations()?;
        Ok(t)
    }

    /// Each term's representation (one copy), checked.
    fn term_representations(&self) -> Result<Vec<(usize, Representation)>, EquivarError> {
        let group = self.group.validate()?;
        if self.terms.is_empty() {
            return Err(parse_error(
                &self.to_string(),
                "a feature type needs at least one term",
            ));
        }
        self.terms
            .iter()
            .map(|&(count, kind)| {
                if count == 0 {
                    return Err(parse_error(
                        &self.to_string(),
                        format!(
                            "`0x {}` has no channels; leave the term out",
                            kind.text(group)
                        ),
                    ));
                }
                Ok((count, kind.representation(group)?))
            })
            .collect()
    }

    /// The direct sum as one representation (each term's copies in turn).
    pub fn representation(&self) -> Result<Representation, EquivarError> {
        let parts: Vec<Representation> = self
            .term_representations()?
            .into_iter()
            .flat_map(|(count, rho)| std::iter::repeat_n(rho, count))
            .collect();
        Representation::direct_sum(&parts)
    }

    /// The type itself if it is one (what [`FeatureType::new`], parsing and deserializing
    /// check); otherwise the error naming the bad term.
    pub fn validate(&self) -> Result<&Self, EquivarError> {
        self.term_representations()?;
        Ok(self)
    }

    /// Channels of a feature map of this type (for a valid type; see
    /// [`FeatureType::validate`]: an invalid term counts 0).
    pub fn channels(&self) -> usize {
        self.terms
            .iter()
            .map(|&(count, kind)| count * kind.dim(self.group))
            .sum()
    }

    /// The G-CNN view of this type, if it has one: a finite group and one term of trivial or
    /// regular fields (what the lifting and group convs, group pooling and the G-CNN batch
    /// norm take).
    pub fn field_type(&self) -> Option<FieldType> {
        let group = match self.group {
            PlanarGroup::Cyclic(n) if n >= 1 => Group::Cyclic(n),
            PlanarGroup::Dihedral(n) if n >= 1 => Group::Dihedral(n),
            _ => return None,
        };
        match self.terms.as_slice() {
            [(fields, ReprKind::Trivial)] => Some(FieldType::trivial(group, *fields)),
            [(fields, ReprKind::Regular)] => Some(FieldType::regular(group, *fields)),
            _ => None,
        }
    }

    /// Whether the group acts on every field by permuting its components (trivial, regular and
    /// quotient fields): then any pointwise function commutes with it.
    pub fn permutes_components(&self) -> bool {
        self.terms.iter().all(|(_, kind)| {
            matches!(
                kind,
                ReprKind::Trivial | ReprKind::Regular | ReprKind::Quotient(_)
            )
        })
    }

    /// Whether every field is invariant (trivial).
    pub fn is_trivial(&self) -> bool {
        self.terms
            .iter()
            .all(|(_, kind)| *kind == ReprKind::Trivial)
    }
}

impl From<FieldType> for FeatureType {
    fn from(t: FieldType) -> Self {
        let kind = match t.repr {
            Repr::Trivial => ReprKind::Trivial,
            Repr::Regular => ReprKind::Regular,
        };
        FeatureType {
            group: t.group.into(),
            terms: vec![(t.fields, kind)],
        }
    }
}

/// In model files and plans a feature type is its text form (`"C8: 8x regular"`); files
/// written before the text form existed give the G-CNN object
/// (`{"group": "C4", "fields": 1, "repr": "trivial"}`), which still reads.
impl Serialize for FeatureType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for FeatureType {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(FeatureTypeVisitor)
    }
}

struct FeatureTypeVisitor;

impl<'de> serde::de::Visitor<'de> for FeatureTypeVisitor {
    type Value = FeatureType;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a feature type such as \"C8: 8x regular + trivial\"")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<FeatureType, E> {
        text.parse().map_err(E::custom)
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, map: A) -> Result<FeatureType, A::Error> {
        let fields = FieldType::deserialize(serde::de::value::MapAccessDeserializer::new(map))?;
        let t = FeatureType::from(fields);
        t.validate().map_err(serde::de::Error::custom)?;
        Ok(t)
    }
}

fn parse_error(text: &str, reason: impl Into<String>) -> EquivarError {
    EquivarError::FeatureTypeSyntax {
        text: text.to_string(),
        reason: reason.into(),
    }
}

const SYNTAX: &str = "write GROUP: TERM + TERM, e.g. `C8: 8x regular + 2x irrep(1) + trivial`; \
                      terms are [COUNTx] trivial | regular | regular(L) | quotient(H) | \
                      irrep(k) | irrep(j,k)";

impl FromStr for PlanarGroup {
    type Err = EquivarError;

    /// Parses `C8`, `D4`, `SO(2)`, `O(2)`, `z2`, `p4`, `p4m`.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        parse_group(text, text)
    }
}

/// Parses `C8`, `D4`, `SO(2)`, `O(2)`, `z2`, `p4`, `p4m`.
fn parse_group(text: &str, whole: &str) -> Result<PlanarGroup, EquivarError> {
    let lower: String = text.chars().filter(|c| !c.is_whitespace()).collect();
    let lower = lower.to_ascii_lowercase();
    let group = match lower.as_str() {
        "so(2)" | "so2" => Some(PlanarGroup::So2),
        "o(2)" | "o2" => Some(PlanarGroup::O2),
        _ => lower
            .parse::<super::super::group::Group>()
            .ok()
            .map(PlanarGroup::from),
    };
    group.ok_or_else(|| {
        parse_error(
            whole,
            format!("`{text}` is not a group: use C<N>, D<N> (N >= 1), SO(2) or O(2)"),
        )
    })
}

/// The text inside `name( ... )`, if `s` has that form.
fn inside<'a>(s: &'a str, name: &str) -> Option<&'a str> {
    let inner = s.strip_prefix(name)?.trim_start().strip_prefix('(')?;
    Some(inner.strip_suffix(')')?.trim())
}

fn parse_term(
    group: PlanarGroup,
    term: &str,
    whole: &str,
) -> Result<(usize, ReprKind), EquivarError> {
    let term = term.trim();
    if term.is_empty() {
        return Err(parse_error(whole, format!("an empty term; {SYNTAX}")));
    }
    let lower = term.to_ascii_lowercase();
    // `8x regular`, `8 x regular` or `regular`.
    let (count, repr) = match lower.split_once('x') {
        Some((n, rest)) if !n.trim().is_empty() && n.trim().chars().all(|c| c.is_ascii_digit()) => {
            let count: usize = n.trim().parse().map_err(|_| {
                parse_error(whole, format!("the count `{}` is too large", n.trim()))
            })?;
            (count, rest.trim())
        }
        _ => (1, lower.as_str()),
    };
    let number = |s: &str, what: &str| -> Result<usize, EquivarError> {
        s.parse().map_err(|_| {
            parse_error(
                whole,
                format!("`{term}`: {what} must be a whole number >= 0, got `{s}`"),
            )
        })
    };
    let kind = if repr == "trivial" {
        ReprKind::Trivial
    } else if repr == "regular" {
        ReprKind::Regular
    } else if let Some(l) = inside(repr, "regular") {
        ReprKind::BandLimitedRegular(number(l, "the maximum frequency of regular(L)")?)
    } else if let Some(sub) = inside(repr, "quotient") {
        ReprKind::Quotient(parse_group(sub, whole)?)
    } else if let Some(args) = inside(repr, "irrep") {
        let args: Vec<&str> = args.split(',').map(str::trim).collect();
        match args.as_slice() {
            [k] => {
                if group.has_reflections() {
                    return Err(parse_error(
                        whole,
                        format!(
                            "`{term}`: {group} has mirrors, so its irreps are written \
                             irrep(j,k) (j = 1 where the mirror enters)"
                        ),
                    ));
                }
                ReprKind::Irrep(Irrep::new(0, number(k, "the frequency")?))
            }
            [j, k] => {
                if !group.has_reflections() {
                    return Err(parse_error(
                        whole,
                        format!("`{term}`: {group} has no mirrors, so its irreps are irrep(k)"),
                    ));
                }
                let j = number(j, "j")?;
                if j > 1 {
                    return Err(parse_error(
                        whole,
                        format!("`{term}`: j is 0 or 1, got {j}"),
                    ));
                }
                ReprKind::Irrep(Irrep::new(j as u8, number(k, "the frequency")?))
            }
            _ => {
                return Err(parse_error(
                    whole,
                    format!("`{term}`: irrep takes (k) or (j,k)"),
                ));
            }
        }
    } else {
        return Err(parse_error(
            whole,
            format!("`{term}` is not a representation; {SYNTAX}"),
        ));
    };
    Ok((count, kind))
}

impl FromStr for FeatureType {
    type Err = EquivarError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let Some((group, terms)) = text.split_once(':') else {
            return Err(parse_error(text, format!("no `GROUP:` prefix; {SYNTAX}")));
        };
        let group = parse_group(group.trim(), text)?;
        let terms = terms
            .split('+')
            .map(|t| parse_term(group, t, text))
            .collect::<Result<Vec<_>, _>>()?;
        // Ranges and memberships (irrep frequencies, subgroups) are the representations' own.
        FeatureType::new(group, terms).map_err(|e| match e {
            EquivarError::FeatureTypeSyntax { .. } => e,
            other => parse_error(text, other.to_string()),
        })
    }
}

impl fmt::Display for FeatureType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: ", self.group)?;
        for (i, &(count, kind)) in self.terms.iter().enumerate() {
            if i > 0 {
                f.write_str(" + ")?;
            }
            if count != 1 {
                write!(f, "{count}x ")?;
            }
            f.write_str(&kind.text(self.group))?;
        }
        Ok(())
    }
}
