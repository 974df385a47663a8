//! The action of a group element on a feature map of a [`FeatureType`]:
//! `(g . f)(p) = rho(g) f(g^-1 p)`. The pixels move by [`PixelAction`] (exactly for multiples
//! of 90 degrees and the mirrors that map the grid to itself, by bilinear interpolation
//! otherwise); the channels mix by `rho(g)`, the type's representation.

use burn::tensor::{Int, Tensor, TensorData};

use super::FeatureType;
use crate::error::{EquivarError, Result};
use crate::group::O2Element;
use crate::space::PixelAction;

/// A readable name of an element of O(2): `r(45)`, `r(90)m` (the mirror, then the rotation).
pub fn element_label(g: O2Element) -> String {
    let degrees = g.angle.to_degrees();
    let degrees = if (degrees - degrees.round()).abs() < 1e-9 {
        format!("{}", degrees.round())
    } else {
        format!("{degrees:.3}")
    };
    format!("r({degrees}){}", if g.reflected { "m" } else { "" })
}

/// `rho(g)` comes from a change of basis in f64, so a permutation's zeros and ones carry
/// rounding noise of about 1e-16; snapping them makes exact elements act exactly.
fn snap(v: f64) -> f32 {
    let r = v.round();
    if (v - r).abs() < 1e-9 {
        r as f32
    } else {
        v as f32
    }
}

impl FeatureType {
    /// `g` acting on `x: [batch, channels, n, n]` of this type. Errors if `g` is not in the
    /// type's group or `x` is not a square map with this type's channels.
    pub fn act(&self, g: O2Element, x: Tensor<4>) -> Result<Tensor<4>> {
        if !self.group.contains(g) {
            return Err(EquivarError::InvalidRepresentation {
                group: self.group.to_string(),
                reason: format!(
                    "the element {} is not in {}; act with one of its elements",
                    element_label(g),
                    self.group
                ),
            });
        }
        let channels = self.validate()?.channels();
        let [b, c, h, w] = x.dims();
        if c != channels || h != w {
            return Err(EquivarError::InputShape {
                context: format!("the action on feature type `{self}`"),
                expected: format!("[batch, {channels}, n, n]"),
                found: x.dims().to_vec(),
                fix: "feature maps are square, with the type's channels".to_string(),
            });
        }
        let moved = PixelAction::of(g).apply(x);
        // rho(g) is block diagonal, one block per copy of each term: act term by term (a
        // permutation block as a gather, any other as a small matmul) instead of building
        // the whole type's c x c matrix (c^3 work for its change of basis).
        let device = moved.device();
        let mut at = 0;
        let mut parts = Vec::with_capacity(self.terms.len());
        for &(count, kind) in &self.terms {
            let rho = kind.representation(self.group)?.matrix(g);
            let d = rho.nrows();
            let part = moved.clone().narrow(1, at, count * d);
            at += count * d;
            let block = snapped(&rho);
            if rho.is_identity(0.0) {
                parts.push(part);
            } else if let Some(source) = permutation(&block, d) {
                let index = Tensor::<1, Int>::from_data(TensorData::new(source, [d]), &device);
                parts.push(
                    part.reshape([b, count, d, h * w])
                        .select(2, index)
                        .reshape([b, count * d, h, w]),
                );
            } else {
                let rho = Tensor::<3>::from_data(TensorData::new(block, [1, d, d]), &device)
                    .expand([b * count, d, d]);
                parts.push(rho.matmul(part.reshape([b * count, d, h * w])).reshape([
                    b,
                    count * d,
                    h,
                    w,
                ]));
            }
        }
        Ok(Tensor::cat(parts, 1))
    }
}

/// A representation that moves channels without mixing them: channel `c` of `rho(g) f` is
/// `sign[c]` times channel `source[c]` of `f`. Regular and quotient representations act so
/// under every element of a finite group, and every representation of the planar groups
/// under the quarter turns and axis mirrors (cosines and sines of multiples of 90 degrees).
#[derive(Clone, Debug, PartialEq)]
pub struct SignedPermutation {
    pub source: Vec<usize>,
    pub sign: Vec<f32>,
}

impl SignedPermutation {
    /// A plain permutation: `out[c] = in[source[c]]`.
    pub fn unsigned(source: Vec<usize>) -> Self {
        let sign = vec![1.0; source.len()];
        SignedPermutation { source, sign }
    }
}

impl FeatureType {
    /// `rho(g)` as a [`SignedPermutation`] of this type's channels, if it is one; `None` if
    /// it mixes channels or `g` is not in the type's group.
    pub fn signed_permutation(&self, g: O2Element) -> Option<SignedPermutation> {
        if !self.group.contains(g) {
            return None;
        }
        let mut moves = SignedPermutation {
            source: Vec::new(),
            sign: Vec::new(),
        };
        for &(count, kind) in &self.terms {
            let rho = kind.representation(self.group).ok()?.matrix(g);
            let d = rho.nrows();
            let block = signed_sources(&snapped(&rho), d)?;
            for _ in 0..count {
                let at = moves.source.len();
                moves.source.extend(block.iter().map(|&(j, _)| at + j));
                moves.sign.extend(block.iter().map(|&(_, v)| v));
            }
        }
        Some(moves)
    }
}

/// `rho`'s entries, snapped, row-major.
fn snapped(rho: &nalgebra::DMatrix<f64>) -> Vec<f32> {
    let d = rho.nrows();
    (0..d)
        .flat_map(|i| (0..d).map(move |j| (i, j)))
        .map(|(i, j)| snap(rho[(i, j)]))
        .collect()
}

/// For a `d x d` matrix (row-major) with one entry of +-1 in each row and zeros elsewhere,
/// the source and sign of each output coordinate (`out[i] = sign * in[source]`); `None` for
/// any other matrix.
fn signed_sources(block: &[f32], d: usize) -> Option<Vec<(usize, f32)>> {
    (0..d)
        .map(|i| {
            let row = &block[i * d..(i + 1) * d];
            let mut nonzero = (0..d).filter(|&j| row[j] != 0.0);
            match (nonzero.next(), nonzero.next()) {
                (Some(j), None) if row[j].abs() == 1.0 => Some((j, row[j])),
                _ => None,
            }
        })
        .collect()
}

/// For a `d x d` matrix (row-major) that permutes coordinates, the source of each output
/// coordinate (`out[i] = in[source[i]]`); `None` for any other matrix.
fn permutation(block: &[f32], d: usize) -> Option<Vec<i64>> {
    signed_sources(block, d)?
        .into_iter()
        .map(|(j, sign)| (sign == 1.0).then_some(j as i64))
        .collect()
}
