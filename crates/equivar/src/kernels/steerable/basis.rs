//! A steerable kernel basis between two representations, sampled on a kernel's pixel grid.
//!
//! Both representations are `Q (sum of irreps) Q^T`. Per pair (input irrep, output irrep), per
//! ring and per frequency up to the ring's cutoff, each solution of the constraint
//! ([`super::harmonics`]) times the ring's radial profile is one basis element; in the
//! representations' own basis it is `Q_out block Q_in^T`. As in escnn 1.0 each element is
//! normalised on the grid (the trace of `sum_p k(p) k(p)^T`, divided by the output irrep's
//! dimension, is 1) and elements that vanish on the grid are dropped (e.g. `sin(4 phi)` on a
//! 3x3 grid, whose pixels sit at multiples of 45 degrees). The basis is kept in the irreps'
//! basis (small blocks); the change of basis is applied when a filter is expanded.
//!
//! Pixel coordinates are those of [`crate::space::PixelAction`]: `x` along the columns, `y`
//! up, the origin at the kernel's centre; at the centre only frequency 0 is nonzero.

use std::collections::HashMap;

use nalgebra::DMatrix;

use super::harmonics::{Harmonic, harmonics};
use super::rings::{Ring, default_rings, validate_rings};
use crate::error::EquivarError;
use crate::group::{Irrep, PlanarGroup, Representation};

/// Elements whose norm on the grid is below this vanish there and are dropped (escnn: a norm
/// below 1e-6 is left unnormalised, and then its squared norm is below its 1e-2 threshold).
const VANISHING: f64 = 1e-6;

/// Where one basis element comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ElementOrigin {
    /// Index into the input representation's irreps.
    pub input_irrep: usize,
    /// Index into the output representation's irreps.
    pub output_irrep: usize,
    pub ring: usize,
    pub frequency: usize,
}

/// A basis of the kernels from `input` to `output` on a `size x size` grid.
///
/// Stored in the irreps' basis: each element is one `[output irrep dim, input irrep dim]`
/// block per pixel, a few numbers instead of a dense `[output dim, input dim]` matrix per pixel
/// (for D16's regular fields at 5x5: 35,200 values instead of 9 million). The change of basis
/// is applied when a filter is expanded ([`SteerableBasis::at`] for one element).
#[derive(Clone, Debug)]
pub struct SteerableBasis {
    group: PlanarGroup,
    size: usize,
    input: Representation,
    output: Representation,
    /// Offsets of each irrep's block in the irreps' basis.
    input_offsets: Vec<usize>,
    output_offsets: Vec<usize>,
    origins: Vec<ElementOrigin>,
    /// Per element, its blocks `[pixel][output irrep row][input irrep column]`, row-major,
    /// starting at `starts[element]`.
    blocks: Vec<f64>,
    starts: Vec<usize>,
}

impl SteerableBasis {
    /// The basis with escnn 1.0's default rings for `size` at `dilation`.
    pub fn new(
        input: &Representation,
        output: &Representation,
        size: usize,
        dilation: usize,
    ) -> Result<Self, EquivarError> {
        let rings = default_rings(size, dilation)?;
        Self::with_rings(input, output, size, dilation, &rings)
    }

    /// The basis with the given rings.
    pub fn with_rings(
        input: &Representation,
        output: &Representation,
        size: usize,
        dilation: usize,
        rings: &[Ring],
    ) -> Result<Self, EquivarError> {
        let group = input.group();
        if output.group() != group {
            return Err(EquivarError::InvalidBasis {
                reason: format!(
                    "the input is a representation of {group} and the output one of {}; \
                     both must be of the same group",
                    output.group()
                ),
            });
        }
        validate_rings(rings, size, dilation)?;
        let points = grid_points(size, dilation);
        let offsets = |irreps: &[Irrep]| -> Vec<usize> {
            irreps
                .iter()
                .scan(0, |at, irrep| {
                    let here = *at;
                    *at += irrep.dim(group);
                    Some(here)
                })
                .collect()
        };
        let mut solutions: HashMap<(Irrep, Irrep, usize), Vec<Harmonic>> = HashMap::new();
        let (mut origins, mut blocks, mut starts) = (Vec::new(), Vec::new(), Vec::new());
        for (o, &out_irrep) in output.irreps().iter().enumerate() {
            for (i, &in_irrep) in input.irreps().iter().enumerate() {
                let block_len = out_irrep.dim(group) * in_irrep.dim(group);
                for (ring_index, ring) in rings.iter().enumerate() {
                    let top = ring.max_frequency.floor() as usize;
                    for frequency in 0..=top {
                        let found = solutions
                            .entry((in_irrep, out_irrep, frequency))
                            .or_insert_with(|| harmonics(group, in_irrep, out_irrep, frequency));
                        for h in found.iter() {
                            let mut element = vec![0.0; block_len * points.len()];
                            for (p, &(r, phi)) in points.iter().enumerate() {
                                if r < 1e-9 && frequency > 0 {
                                    continue; // the angle is undefined at the centre
                                }
                                let block = h.at(phi) * ring.profile(r);
                                for (k, v) in block.transpose().iter().enumerate() {
                                    element[p * block_len + k] = *v;
                                }
                            }
                            // escnn's normalisation: trace(sum_p k k^T) / dim(output irrep);
                            // the change of basis is orthogonal and leaves it unchanged.
                            let energy: f64 = element.iter().map(|v| v * v).sum();
                            let norm = (energy / out_irrep.dim(group) as f64).sqrt();
                            if norm < VANISHING {
                                continue;
                            }
                            starts.push(blocks.len());
                            blocks.extend(element.iter().map(|v| v / norm));
                            origins.push(ElementOrigin {
                                input_irrep: i,
                                output_irrep: o,
                                ring: ring_index,
                                frequency,
                            });
                        }
                    }
                }
            }
        }
        Ok(SteerableBasis {
            group,
            size,
            input_offsets: offsets(input.irreps()),
            output_offsets: offsets(output.irreps()),
            input: input.clone(),
            output: output.clone(),
            origins,
            blocks,
            starts,
        })
    }

    /// The number of basis elements (learned weights per pair of fields).
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    pub fn group(&self) -> PlanarGroup {
        self.group
    }

    /// The kernel is `size x size`.
    pub fn size(&self) -> usize {
        self.size
    }

    pub fn origins(&self) -> &[ElementOrigin] {
        &self.origins
    }

    /// Element `e`'s block at pixel `(row, column)` in the irreps' basis, `[output irrep dim,
    /// input irrep dim]`.
    pub fn block(&self, e: usize, row: usize, column: usize) -> DMatrix<f64> {
        let origin = self.origins[e];
        let rows = self.output.irreps()[origin.output_irrep].dim(self.group);
        let cols = self.input.irreps()[origin.input_irrep].dim(self.group);
        let at = self.starts[e] + (row * self.size + column) * rows * cols;
        DMatrix::from_row_slice(rows, cols, &self.blocks[at..at + rows * cols])
    }

    /// Element `e` at pixel `(row, column)` in the representations' own basis, `[output dim,
    /// input dim]`: `Q_out [0 .. block .. 0] Q_in^T`.
    pub fn at(&self, e: usize, row: usize, column: usize) -> DMatrix<f64> {
        let origin = self.origins[e];
        let block = self.block(e, row, column);
        let q_out = self
            .output
            .change_of_basis()
            .columns(self.output_offsets[origin.output_irrep], block.nrows());
        let q_in = self
            .input
            .change_of_basis()
            .columns(self.input_offsets[origin.input_irrep], block.ncols());
        q_out * block * q_in.transpose()
    }
}

impl SteerableBasis {
    /// Every element in the representations' own basis as a conv filter, in f32:
    /// `[element][output component][input component][kernel row][kernel column]`, row-major
    /// (what a learned combination of the elements is multiplied with to give a plain
    /// conv2d filter).
    pub fn filters(&self) -> Vec<f32> {
        let (d_out, d_in) = (self.output.dim(), self.input.dim());
        let pixels = self.size * self.size;
        let mut out = vec![0.0f32; self.len() * d_out * d_in * pixels];
        // `Q_out[:, rows] block Q_in[:, cols]^T` per pixel, with the columns copied once.
        let columns = |q: &DMatrix<f64>, at: usize, n: usize| -> Vec<f64> {
            (0..q.nrows())
                .flat_map(|r| (0..n).map(move |k| q[(r, at + k)]))
                .collect()
        };
        for (e, origin) in self.origins.iter().enumerate() {
            let a = self.output.irreps()[origin.output_irrep].dim(self.group);
            let b = self.input.irreps()[origin.input_irrep].dim(self.group);
            let q_out = columns(
                self.output.change_of_basis(),
                self.output_offsets[origin.output_irrep],
                a,
            );
            let q_in = columns(
                self.input.change_of_basis(),
                self.input_offsets[origin.input_irrep],
                b,
            );
            // left[r][k][p] = (Q_out[:, rows] block(p))[r, k], along the pixels so that the
            // expansion below runs over contiguous rows.
            let block = |p: usize| &self.blocks[self.starts[e] + p * a * b..][..a * b];
            let mut left = vec![0.0f64; d_out * b * pixels];
            for r in 0..d_out {
                let q = &q_out[r * a..(r + 1) * a];
                for k in 0..b {
                    let row = &mut left[(r * b + k) * pixels..][..pixels];
                    for (p, v) in row.iter_mut().enumerate() {
                        let block = block(p);
                        *v = q
                            .iter()
                            .enumerate()
                            .map(|(i, q)| q * block[i * b + k])
                            .sum();
                    }
                }
            }
            // out[e, r, c, :] = sum_k Q_in[c, cols[k]] left[r][k][:]; the planar groups'
            // irreps have dimension 1 or 2, so the sum is spelled out.
            for r in 0..d_out {
                let left = &left[r * b * pixels..][..b * pixels];
                for c in 0..d_in {
                    let q = &q_in[c * b..(c + 1) * b];
                    let dst = &mut out[((e * d_out + r) * d_in + c) * pixels..][..pixels];
                    match b {
                        1 => {
                            for (d, l) in dst.iter_mut().zip(left) {
                                *d = (q[0] * l) as f32;
                            }
                        }
                        2 => {
                            let (l0, l1) = left.split_at(pixels);
                            for ((d, x), y) in dst.iter_mut().zip(l0).zip(l1) {
                                *d = (q[0] * x + q[1] * y) as f32;
                            }
                        }
                        _ => {
                            for (p, d) in dst.iter_mut().enumerate() {
                                *d =
                                    (0..b).map(|k| q[k] * left[k * pixels + p]).sum::<f64>() as f32;
                            }
                        }
                    }
                }
            }
        }
        out
    }

    pub fn input(&self) -> &Representation {
        &self.input
    }

    pub fn output(&self) -> &Representation {
        &self.output
    }
}

/// Polar coordinates `(r, phi)` of the pixels of a `size x size` kernel, row-major: `x` along
/// the columns, `y` up, the origin at the centre, distances times the dilation.
fn grid_points(size: usize, dilation: usize) -> Vec<(f64, f64)> {
    let centre = (size as f64 - 1.0) / 2.0;
    let mut out = Vec::with_capacity(size * size);
    for row in 0..size {
        for column in 0..size {
            let x = (column as f64 - centre) * dilation as f64;
            let y = (centre - row as f64) * dilation as f64;
            out.push((x.hypot(y), y.atan2(x)));
        }
    }
    out
}
