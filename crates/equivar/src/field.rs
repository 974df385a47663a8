//! Feature types: what a feature map's channels mean and how the group acts on them.
//!
//! **Layout** (the one convention of the library): a feature map is a `Tensor<4>` of shape
//! `[batch, fields * size, height, width]`, field-major: channel `f * size + i` is component
//! `i` of field `f`. A *trivial* field has one component and is invariant (an image channel,
//! a pooled feature). A *regular* field has `|G|` components, one per group element in
//! group-axis order (see [`Group::element`]); `g` acts on it by moving pixels and permuting
//! the components with the regular representation.

mod action;
pub mod feature_type;

pub use action::{SignedPermutation, element_label};
pub use feature_type::{FeatureType, ReprKind};

use burn::tensor::{Int, Tensor};
use serde::{Deserialize, Serialize};
use std::fmt;

use crate::error::Result;
use crate::group::{Element, Group};
use crate::space::GridAction;

/// The representation carried by each field.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Repr {
    /// One invariant component.
    Trivial,
    /// `|G|` components permuted by the regular representation.
    Regular,
}

/// The type of a feature map: its group, number of fields and their representation.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct FieldType {
    pub group: Group,
    pub fields: usize,
    pub repr: Repr,
}

impl FieldType {
    /// `fields` invariant channels (e.g. the input image: `trivial(group, 1)`).
    pub fn trivial(group: Group, fields: usize) -> Self {
        FieldType {
            group,
            fields,
            repr: Repr::Trivial,
        }
    }

    /// `fields` regular fields of `|G|` channels each.
    pub fn regular(group: Group, fields: usize) -> Self {
        FieldType {
            group,
            fields,
            repr: Repr::Regular,
        }
    }

    /// Components per field.
    pub fn field_size(&self) -> usize {
        match self.repr {
            Repr::Trivial => 1,
            Repr::Regular => self.group.order(),
        }
    }

    /// Channels of the tensor: `fields * field_size`.
    pub fn channels(&self) -> usize {
        self.fields * self.field_size()
    }

    /// For each output channel, the input channel it takes under the action of `g`:
    /// `(g . x)[c] = x[perm[c]]` (before moving pixels).
    pub fn channel_permutation(&self, g: Element) -> Vec<usize> {
        match self.repr {
            Repr::Trivial => (0..self.channels()).collect(),
            Repr::Regular => {
                let n = self.group.order();
                let perm = self.group.regular_permutation(g);
                (0..self.fields)
                    .flat_map(|f| perm.iter().map(move |&p| f * n + p))
                    .collect()
            }
        }
    }

    /// The exact action of `g` on a feature map `[batch, channels, n, n]` of this type.
    pub fn act(&self, g: Element, x: Tensor<4>) -> Result<Tensor<4>> {
        let grid = GridAction::of(self.group, g)?;
        let x = grid.apply(x);
        if self.repr == Repr::Trivial || self.group.order() == 1 {
            return Ok(x);
        }
        let perm: Vec<i64> = self
            .channel_permutation(g)
            .into_iter()
            .map(|c| c as i64)
            .collect();
        let index = Tensor::<1, Int>::from_data(perm.as_slice(), &x.device());
        Ok(x.select(1, index))
    }
}

impl fmt::Display for FieldType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let repr = match self.repr {
            Repr::Trivial => "trivial",
            Repr::Regular => "regular",
        };
        write!(f, "{}x{repr}({})", self.fields, self.group)
    }
}
