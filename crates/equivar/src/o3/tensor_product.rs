//! Clebsch-Gordan tensor products between irreps lists, with e3nn's instructions, path
//! normalisation and weight layout (f64 description; the float32 kernels run it).
//!
//! An instruction couples block `i1` of input 1 and block `i2` of input 2 into block `i_out`
//! through the 3j symbol `C(l1, l2, l_out)`; its mode says how channels mix (see
//! [`equivar_kernels::tensor_product`]). Each path's output is scaled by
//! `sqrt(a / x * path_weight)`: `a = 2 l_out + 1` (`component`), `(2l1+1)(2l2+1)` (`norm`) or
//! 1 (`none`); `x` = the fan-in summed over every path into the same output block
//! (`element`) or the path's fan-in times the number of such paths (`path`), fan-in
//! `mul1 mul2` (uvw) or `mul2` (uvu). With unit-variance inputs and N(0, 1) weights the output
//! then has unit second moment, as e3nn's.

use std::sync::Arc;

use equivar_kernels::tensor_product::{Block, Coupling, Mode, Path, TpPlan};

use super::{Irrep, Irreps, MulIrrep, O3Error, wigner_3j};

/// The output scale per path by degree (e3nn's `irrep_normalization`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum IrrepNormalization {
    #[default]
    Component,
    Norm,
    None,
}

/// How the fan-in is counted (e3nn's `path_normalization`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum PathNormalization {
    #[default]
    Element,
    Path,
}

/// One path of a tensor product.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Instruction {
    pub i1: usize,
    pub i2: usize,
    pub i_out: usize,
    pub mode: Mode,
    /// A user factor under the square root of the normalisation (1 by default).
    pub path_weight: f64,
}

impl Instruction {
    pub fn new(i1: usize, i2: usize, i_out: usize, mode: Mode) -> Self {
        Instruction {
            i1,
            i2,
            i_out,
            mode,
            path_weight: 1.0,
        }
    }
}

/// A tensor product `in1 x in2 -> out` with its paths and weight layout.
#[derive(Clone, Debug)]
pub struct TensorProduct {
    in1: Irreps,
    in2: Irreps,
    out: Irreps,
    instructions: Vec<Instruction>,
    /// Per path: the nonzero 3j entries in f64.
    couplings: Vec<Vec<(usize, usize, usize, f64)>>,
    coefficients: Vec<f64>,
    weight_offsets: Vec<usize>,
    weight_numel: usize,
    plan: Arc<TpPlan>,
}

impl TensorProduct {
    /// A product with explicit instructions; every path must satisfy the selection rules
    /// (`|l1 - l2| <= l_out <= l1 + l2`, `p1 p2 = p_out`), and uvu paths need
    /// `mul_out = mul1`.
    pub fn new(
        in1: Irreps,
        in2: Irreps,
        out: Irreps,
        instructions: Vec<Instruction>,
        irrep_normalization: IrrepNormalization,
        path_normalization: PathNormalization,
    ) -> Result<Self, O3Error> {
        let (b1, b2, bo) = (in1.blocks(), in2.blocks(), out.blocks());
        for (n, ins) in instructions.iter().enumerate() {
            let bad = |reason: String| O3Error::InvalidInstruction { index: n, reason };
            let (Some(a), Some(b), Some(o)) = (b1.get(ins.i1), b2.get(ins.i2), bo.get(ins.i_out))
            else {
                return Err(bad(format!(
                    "block indices ({}, {}, {}) out of range: the inputs have {} and {} blocks, the output {}",
                    ins.i1,
                    ins.i2,
                    ins.i_out,
                    b1.len(),
                    b2.len(),
                    bo.len()
                )));
            };
            if !a.ir.product(b.ir).any(|ir| ir == o.ir) {
                return Err(bad(format!(
                    "{} x {} does not contain {}",
                    a.ir, b.ir, o.ir
                )));
            }
            if ins.mode == Mode::Uvu && o.mul != a.mul {
                return Err(bad(format!(
                    "uvu keeps input 1's channels: the output block needs {} copies, not {}",
                    a.mul, o.mul
                )));
            }
            if !(ins.path_weight.is_finite() && ins.path_weight >= 0.0) {
                return Err(bad("path_weight must be finite and non-negative".into()));
            }
        }
        let fan = |ins: &Instruction| -> f64 {
            let (a, b) = (b1[ins.i1].mul, b2[ins.i2].mul);
            match ins.mode {
                Mode::Uvw => (a * b) as f64,
                Mode::Uvu => b as f64,
            }
        };
        let mut coefficients = Vec::with_capacity(instructions.len());
        for ins in &instructions {
            let (l1, l2, lo) = (b1[ins.i1].ir.l, b2[ins.i2].ir.l, bo[ins.i_out].ir.l);
            let a = match irrep_normalization {
                IrrepNormalization::Component => (2 * lo + 1) as f64,
                IrrepNormalization::Norm => ((2 * l1 + 1) * (2 * l2 + 1)) as f64,
                IrrepNormalization::None => 1.0,
            };
            let siblings = instructions.iter().filter(|o| o.i_out == ins.i_out);
            let x = match path_normalization {
                PathNormalization::Element => siblings.map(fan).sum::<f64>(),
                PathNormalization::Path => fan(ins) * siblings.count() as f64,
            };
            coefficients.push(if x > 0.0 {
                (a / x * ins.path_weight).sqrt()
            } else {
                0.0
            });
        }
        let mut couplings = Vec::with_capacity(instructions.len());
        for ins in &instructions {
            let (l1, l2, lo) = (b1[ins.i1].ir.l, b2[ins.i2].ir.l, bo[ins.i_out].ir.l);
            let c = wigner_3j(l1, l2, lo)?;
            let (n2, no) = (2 * l2 + 1, 2 * lo + 1);
            let nonzero = c
                .iter()
                .enumerate()
                .filter(|(_, v)| v.abs() > 1e-14)
                .map(|(idx, &v)| (idx / (n2 * no), idx / no % n2, idx % no, v))
                .collect::<Vec<_>>();
            couplings.push(nonzero);
        }
        let mut weight_offsets = Vec::with_capacity(instructions.len());
        let mut weight_numel = 0;
        for ins in &instructions {
            weight_offsets.push(weight_numel);
            weight_numel += match ins.mode {
                Mode::Uvw => b1[ins.i1].mul * b2[ins.i2].mul * bo[ins.i_out].mul,
                Mode::Uvu => b1[ins.i1].mul * b2[ins.i2].mul,
            };
        }
        let layout = |irreps: &Irreps| -> Vec<Block> {
            irreps
                .blocks()
                .iter()
                .zip(irreps.offsets())
                .map(|(b, offset)| Block {
                    offset,
                    mul: b.mul,
                    dim: b.ir.dim(),
                })
                .collect()
        };
        let plan = TpPlan {
            in1: layout(&in1),
            in2: layout(&in2),
            out: layout(&out),
            dim1: in1.dim(),
            dim2: in2.dim(),
            dim_out: out.dim(),
            paths: instructions
                .iter()
                .enumerate()
                .map(|(n, ins)| Path {
                    in1: ins.i1,
                    in2: ins.i2,
                    out: ins.i_out,
                    mode: ins.mode,
                    coefficient: coefficients[n] as f32,
                    weight_offset: weight_offsets[n],
                    couplings: couplings[n]
                        .iter()
                        .map(|&(i, j, k, v)| Coupling {
                            i: i as u16,
                            j: j as u16,
                            k: k as u16,
                            value: v as f32,
                        })
                        .collect(),
                })
                .collect(),
            weight_numel,
        };
        plan.validate()
            .map_err(|reason| O3Error::InvalidInstruction { index: 0, reason })?;
        Ok(TensorProduct {
            in1,
            in2,
            out,
            instructions,
            couplings,
            coefficients,
            weight_offsets,
            weight_numel,
            plan: Arc::new(plan),
        })
    }

    /// e3nn's `FullyConnectedTensorProduct`: a uvw path for every `(i1, i2, i_out)` allowed
    /// by the selection rules, in the loop order i1, i2, i_out; default normalisations.
    pub fn fully_connected(in1: Irreps, in2: Irreps, out: Irreps) -> Result<Self, O3Error> {
        let mut instructions = Vec::new();
        for (i1, a) in in1.blocks().iter().enumerate() {
            for (i2, b) in in2.blocks().iter().enumerate() {
                for (io, o) in out.blocks().iter().enumerate() {
                    if a.ir.product(b.ir).any(|ir| ir == o.ir) {
                        instructions.push(Instruction::new(i1, i2, io, Mode::Uvw));
                    }
                }
            }
        }
        Self::new(
            in1,
            in2,
            out,
            instructions,
            IrrepNormalization::Component,
            PathNormalization::Element,
        )
    }

    /// NequIP's channel-wise convolution product: for every block of `in1`, every block of
    /// `in2` and every irrep of their product that `target` contains, one uvu path into its
    /// own output block; the output blocks are then sorted by irrep (e3nn's `Irreps::sort`,
    /// stable), so equal irreps sit together. Weights are per row (`weight_numel` each).
    pub fn channel_wise(in1: Irreps, in2: Irreps, target: &Irreps) -> Result<Self, O3Error> {
        let mut blocks = Vec::new();
        let mut instructions = Vec::new();
        for (i1, a) in in1.blocks().iter().enumerate() {
            for (i2, b) in in2.blocks().iter().enumerate() {
                for ir in a.ir.product(b.ir) {
                    if target.contains(ir) {
                        instructions.push(Instruction::new(i1, i2, blocks.len(), Mode::Uvu));
                        blocks.push(super::MulIrrep { mul: a.mul, ir });
                    }
                }
            }
        }
        let sorted = Irreps::new(blocks).sort();
        for ins in &mut instructions {
            ins.i_out = sorted.p[ins.i_out];
        }
        Self::new(
            in1,
            in2,
            sorted.irreps,
            instructions,
            IrrepNormalization::Component,
            PathNormalization::Element,
        )
    }

    pub fn irreps_in1(&self) -> &Irreps {
        &self.in1
    }

    pub fn irreps_in2(&self) -> &Irreps {
        &self.in2
    }

    pub fn irreps_out(&self) -> &Irreps {
        &self.out
    }

    pub fn instructions(&self) -> &[Instruction] {
        &self.instructions
    }

    /// Each path's normalisation factor.
    pub fn coefficients(&self) -> &[f64] {
        &self.coefficients
    }

    /// Weights per row (or in total, when shared).
    pub fn weight_numel(&self) -> usize {
        self.weight_numel
    }

    /// The float32 kernels' description of this product.
    pub fn plan(&self) -> &Arc<TpPlan> {
        &self.plan
    }

    /// The product in f64, one index of the definition at a time: the reference the kernels
    /// are tested against, and a function [`super::assert_equivariant`] can check.
    /// `weights`: one vector (`shared`) or one per row.
    pub fn forward_f64(&self, x1: &[f64], x2: &[f64], weights: &[f64], shared: bool) -> Vec<f64> {
        let (d1, d2, dout) = (self.in1.dim(), self.in2.dim(), self.out.dim());
        let rows = x1.len() / d1.max(1);
        let (o1, o2, oo) = (self.in1.offsets(), self.in2.offsets(), self.out.offsets());
        let mut out = vec![0.0; rows * dout];
        for r in 0..rows {
            let w = if shared {
                weights
            } else {
                &weights[r * self.weight_numel..][..self.weight_numel]
            };
            for (n, ins) in self.instructions.iter().enumerate() {
                let (b1, b2, bo) = (
                    self.in1.blocks()[ins.i1],
                    self.in2.blocks()[ins.i2],
                    self.out.blocks()[ins.i_out],
                );
                let (n1, n2, no) = (b1.ir.dim(), b2.ir.dim(), bo.ir.dim());
                for &(i, j, k, c) in &self.couplings[n] {
                    for u in 0..b1.mul {
                        for v in 0..b2.mul {
                            let t = c
                                * x1[r * d1 + o1[ins.i1] + u * n1 + i]
                                * x2[r * d2 + o2[ins.i2] + v * n2 + j];
                            let base = self.weight_offsets[n];
                            match ins.mode {
                                Mode::Uvw => {
                                    for wo in 0..bo.mul {
                                        let wv = w[base + (u * b2.mul + v) * bo.mul + wo];
                                        out[r * dout + oo[ins.i_out] + wo * no + k] +=
                                            self.coefficients[n] * wv * t;
                                    }
                                }
                                Mode::Uvu => {
                                    let wv = w[base + u * b2.mul + v];
                                    out[r * dout + oo[ins.i_out] + u * no + k] +=
                                        self.coefficients[n] * wv * t;
                                }
                            }
                        }
                    }
                }
            }
        }
        out
    }
}

/// SEGNN's "weight-balanced" hidden irreps: `n` copies of every harmonic degree up to `lmax`
/// (`nx0e+nx1o+nx2e+...`), with the smallest `n` whose fully connected product with
/// `attributes` (back to the same irreps) has at least as many weights as a plain linear
/// layer of `scalars` channels (`scalars^2`). SEGNN's QM9 model: 128 scalars, attributes up
/// to l = 3, lmax 2 -> `36x0e+36x1o+36x2e` (13 paths of 36^2 weights >= 128^2).
pub fn weight_balanced_irreps(
    scalars: usize,
    attributes: &Irreps,
    lmax: usize,
) -> Result<Irreps, O3Error> {
    if scalars == 0 || attributes.is_empty() {
        return Err(O3Error::InvalidInstruction {
            index: 0,
            reason: "weight-balanced irreps need a positive number of scalars and attributes"
                .into(),
        });
    }
    let target = scalars * scalars;
    let copies = |n: usize| {
        Irreps::new(
            (0..=lmax)
                .map(|l| MulIrrep {
                    mul: n,
                    ir: Irrep::harmonic(l),
                })
                .collect(),
        )
    };
    // One copy of each degree gives `paths` weights; n copies give paths * n^2.
    let paths =
        TensorProduct::fully_connected(copies(1), attributes.clone(), copies(1))?.weight_numel();
    if paths == 0 {
        return Err(O3Error::InvalidInstruction {
            index: 0,
            reason: format!("no product of degrees up to {lmax} with {attributes} has weights"),
        });
    }
    let mut n = 1;
    while paths * n * n < target {
        n += 1;
    }
    Ok(copies(n))
}
