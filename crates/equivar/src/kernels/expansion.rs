//! Index maps expanding G-CNN filter banks (Cohen & Welling 2016).
//!
//! A lifting conv (Z2 -> G) learns `W[o, i, y, x]`; output channel `(o, g)` correlates the
//! input with the filter moved by `g`. A group conv (G -> G) learns `W[o, i, h, y, x]`; output
//! `(o, g)` uses `(g . W)[o, i, h] = W[o, i, g^-1 h]` moved by `g`. Both expansions are pure
//! gathers, `expanded[j] = weight[index[j]]`, precomputed here once as plain integers so the
//! per-forward work is one backend `select` (differentiable: its backward is a scatter-add).

use std::fmt;
use std::sync::Arc;

use crate::error::Result;
use crate::field::{FieldType, Repr};
use crate::space::GridAction;

/// The gather that expands a learned filter bank into a plain conv2d filter bank of shape
/// `[out_fields * |G|, in_channels, k, k]`, and the one that expands the per-field bias.
#[derive(Clone)]
pub struct FilterExpansion {
    /// `expanded_flat[j] = weight_flat[filter_index[j]]`.
    pub filter_index: Arc<[i64]>,
    /// `expanded_bias[c] = bias[bias_index[c]]`: one bias per field, shared over the group.
    pub bias_index: Arc<[i64]>,
    /// Shape of the expanded bank: `[out_channels, in_channels, k, k]`.
    pub expanded_shape: [usize; 4],
    /// Shape of the learned bank, flattened to `weight_len` entries.
    pub weight_len: usize,
}

impl fmt::Debug for FilterExpansion {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "FilterExpansion({} -> {:?})",
            self.weight_len, self.expanded_shape
        )
    }
}

impl FilterExpansion {
    /// The expansion for a conv from `input` to `out_fields` regular fields with a `k x k`
    /// kernel. Trivial input gives a lifting conv (learned bank `[out_fields, in_channels, k, k]`),
    /// regular input a group conv (learned bank `[out_fields, in_fields, |G|, k, k]`).
    pub fn new(input: FieldType, out_fields: usize, kernel: usize) -> Result<Self> {
        let group = input.group;
        let order = group.order();
        let kk = kernel * kernel;
        // For each group element: how it moves the filter's pixels (source pixel per target pixel)
        // and, for group convs, which input component it reads (g^-1 h for target component h).
        let moves: Vec<Vec<usize>> = group
            .elements()
            .map(|g| {
                let action = GridAction::of(group, g)?;
                Ok((0..kk)
                    .map(|p| {
                        let (y, x) = action.source(p / kernel, p % kernel, kernel);
                        y * kernel + x
                    })
                    .collect())
            })
            .collect::<Result<_>>()?;
        let component_sources: Vec<Vec<usize>> = group
            .elements()
            .map(|g| group.regular_permutation(g))
            .collect();

        let in_fields = input.fields;
        let in_size = input.field_size();
        let in_channels = input.channels();
        let mut index = Vec::with_capacity(out_fields * order * in_channels * kk);
        for o in 0..out_fields {
            for (pixel_source, component_source) in moves.iter().zip(&component_sources) {
                // target component h of an input field reads learned component source[h]
                let components: &[usize] = match input.repr {
                    Repr::Trivial => &[0],
                    Repr::Regular => component_source,
                };
                for i in 0..in_fields {
                    for &learned_component in components {
                        let base = ((o * in_fields + i) * in_size + learned_component) * kk;
                        index.extend(pixel_source.iter().map(|&p| (base + p) as i64));
                    }
                }
            }
        }
        let bias_index = (0..out_fields * order)
            .map(|c| (c / order) as i64)
            .collect();
        Ok(FilterExpansion {
            filter_index: index.into(),
            bias_index,
            expanded_shape: [out_fields * order, in_channels, kernel, kernel],
            weight_len: out_fields * in_channels * kk,
        })
    }

    /// Expands a flat host copy of the learned bank (the reference path used by tests and
    /// export checks).
    pub fn expand_host(&self, weight: &[f32]) -> Vec<f32> {
        assert_eq!(weight.len(), self.weight_len, "learned filter bank size");
        self.filter_index
            .iter()
            .map(|&j| weight[j as usize])
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::group::Group;

    fn lifting(
        group: Group,
        in_channels: usize,
        out_fields: usize,
        kernel: usize,
    ) -> Result<FilterExpansion> {
        FilterExpansion::new(FieldType::trivial(group, in_channels), out_fields, kernel)
    }

    #[test]
    fn lifting_c4_rotates_the_filter() {
        // one 2x2 filter [[0, 1], [2, 3]]; rot90 (torch convention) gives [[1, 3], [0, 2]]
        let e = lifting(Group::cyclic(4), 1, 1, 2).unwrap();
        let out = e.expand_host(&[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(&out[0..4], &[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(&out[4..8], &[1.0, 3.0, 0.0, 2.0]);
        assert_eq!(&out[8..12], &[3.0, 2.0, 1.0, 0.0]);
    }

    #[test]
    fn group_conv_c4_rolls_the_group_axis() {
        // 1x1 kernel: only the component permutation is visible. g = r: component h reads r^-1 h.
        let input = FieldType::regular(Group::cyclic(4), 1);
        let e = FilterExpansion::new(input, 1, 1).unwrap();
        let out = e.expand_host(&[0.0, 1.0, 2.0, 3.0]);
        assert_eq!(e.expanded_shape, [4, 4, 1, 1]);
        assert_eq!(&out[4..8], &[3.0, 0.0, 1.0, 2.0]);
    }
}
