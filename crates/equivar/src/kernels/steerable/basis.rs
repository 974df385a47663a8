//! A steerable kernel basis between two representations, sampled on a kernel's pixel grid.
//!
//! Both representations are `Q (sum of irreps) Q^T`. Per pair (input irrep, output irrep), per
//! ring and per frequency up to the ring's cutoff, each solution of the constraint
//! ([`super::harmonics`]) times the ring's radial profile is one basis element; in the
//! representations' own basis it is `Q_out block Q_in^T`. As in escnn 1.0 each element is
//! normalised on the grid (the trace of `sum_p k(p) k(p)^T`, divided by the output irrep's
//! dimension, is 1) and elements that vanish on the grid are dropped (e.g. `sin(4 phi)` on a
//! 3x3 grid, whose pixels sit at multiples of 45 degrees).
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
#[derive(Clone, Debug)]
pub struct SteerableBasis {
    pub group: PlanarGroup,
    pub size: usize,
    pub dilation: usize,
    pub input_dim: usize,
    pub output_dim: usize,
    pub origins: Vec<ElementOrigin>,
    /// `[element, output, input, row, column]`, row-major.
    pub sampled: Vec<f64>,
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
        let (input_dim, output_dim) = (input.dim(), output.dim());
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
        let (in_offsets, out_offsets) = (offsets(input.irreps()), offsets(output.irreps()));
        let q_in = input.change_of_basis();
        let q_out = output.change_of_basis();
        let mut solutions: HashMap<(Irrep, Irrep, usize), Vec<Harmonic>> = HashMap::new();
        let mut origins = Vec::new();
        let mut sampled = Vec::new();
        let plane = output_dim * input_dim;
        for (o, &out_irrep) in output.irreps().iter().enumerate() {
            for (i, &in_irrep) in input.irreps().iter().enumerate() {
                for (ring_index, ring) in rings.iter().enumerate() {
                    let top = ring.max_frequency.floor() as usize;
                    for frequency in 0..=top {
                        let found = solutions
                            .entry((in_irrep, out_irrep, frequency))
                            .or_insert_with(|| harmonics(group, in_irrep, out_irrep, frequency));
                        for h in found.iter() {
                            let mut element = vec![0.0; plane * points.len()];
                            let mut block_energy = 0.0;
                            for (p, &(r, phi)) in points.iter().enumerate() {
                                if r < 1e-9 && frequency > 0 {
                                    continue; // the angle is undefined at the centre
                                }
                                let block = h.at(phi) * ring.profile(r);
                                block_energy += block.norm_squared();
                                // Q_out [0 .. block .. 0] Q_in^T, only the block's rows and columns.
                                let rows = q_out.columns(out_offsets[o], block.nrows());
                                let cols = q_in.columns(in_offsets[i], block.ncols());
                                let full: DMatrix<f64> = rows * &block * cols.transpose();
                                for a in 0..output_dim {
                                    for b in 0..input_dim {
                                        element[(a * input_dim + b) * points.len() + p] =
                                            full[(a, b)];
                                    }
                                }
                            }
                            // escnn's normalisation: trace(sum_p k k^T) / dim(output irrep).
                            let norm = (block_energy / out_irrep.dim(group) as f64).sqrt();
                            if norm < VANISHING {
                                continue;
                            }
                            sampled.extend(element.iter().map(|v| v / norm));
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
            dilation,
            input_dim,
            output_dim,
            origins,
            sampled,
        })
    }

    /// The number of basis elements (learned weights per pair of fields).
    pub fn len(&self) -> usize {
        self.origins.len()
    }

    pub fn is_empty(&self) -> bool {
        self.origins.is_empty()
    }

    /// Element `e`'s value at grid pixel `(row, column)`, `[output, input]`.
    pub fn at(&self, e: usize, row: usize, column: usize) -> DMatrix<f64> {
        let pixels = self.size * self.size;
        let base = e * self.output_dim * self.input_dim * pixels;
        DMatrix::from_fn(self.output_dim, self.input_dim, |a, b| {
            self.sampled[base + (a * self.input_dim + b) * pixels + row * self.size + column]
        })
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
