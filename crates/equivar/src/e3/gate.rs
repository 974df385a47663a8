//! The gated nonlinearity (Weiler et al. 2018; e3nn's `nn.Gate`).

use std::sync::Arc;

use burn::tensor::Tensor;
use equivar_kernels::gate::{Act, GatePlan, Gated};

use crate::o3::{Irrep, Irreps, MulIrrep, O3Error, Parity};
use crate::ops::{self, Kernels};

/// A scalar activation, rescaled (as e3nn's `normalize2mom`) so that `E[f(z)^2] = 1` for
/// `z ~ N(0, 1)`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Silu,
    Sigmoid,
    Tanh,
    Abs,
}

impl Activation {
    /// The factor `E[f(z)^2]^(-1/2)`. For SiLU and the sigmoid, e3nn's own Monte Carlo values
    /// (1e6 samples, seed 0), so outputs match e3nn's; for the others the integral, by
    /// Simpson's rule over [-12, 12].
    pub fn normalization(self) -> f64 {
        match self {
            Activation::Silu => 1.6791767923989418,
            Activation::Sigmoid => 1.8467055342154763,
            _ => {
                let f = |z: f64| match self {
                    Activation::Tanh => z.tanh(),
                    _ => z.abs(),
                };
                let (steps, a) = (4800, 12.0);
                let h = 2.0 * a / steps as f64;
                let second_moment: f64 = (0..=steps)
                    .map(|i| {
                        let z = -a + i as f64 * h;
                        let w = if i == 0 || i == steps {
                            1.0
                        } else if i % 2 == 1 {
                            4.0
                        } else {
                            2.0
                        };
                        w * f(z).powi(2) * (-z * z / 2.0).exp()
                    })
                    .sum::<f64>()
                    * h
                    / 3.0
                    / (2.0 * std::f64::consts::PI).sqrt();
                second_moment.powf(-0.5)
            }
        }
    }

    /// `Some(true)` for odd functions, `Some(false)` for even ones, `None` for neither: what
    /// the activation does to the parity of an odd scalar.
    fn symmetry(self) -> Option<bool> {
        match self {
            Activation::Tanh => Some(true),
            Activation::Abs => Some(false),
            Activation::Silu | Activation::Sigmoid => None,
        }
    }

    fn output_parity(self, p: Parity) -> Option<Parity> {
        match (p, self.symmetry()) {
            (Parity::Even, _) => Some(Parity::Even),
            (Parity::Odd, Some(true)) => Some(Parity::Odd),
            (Parity::Odd, Some(false)) => Some(Parity::Even),
            (Parity::Odd, None) => None,
        }
    }

    fn kernel(self) -> Act {
        match self {
            Activation::Silu => Act::Silu,
            Activation::Sigmoid => Act::Sigmoid,
            Activation::Tanh => Act::Tanh,
            Activation::Abs => Act::Abs,
        }
    }
}

/// `[act(scalars) | act_gates(gates) * gated]`: every gated irrep is multiplied, all its
/// `2l + 1` components alike, by its own gate. The input is the stable sort of
/// `scalars + gates + gated` by irrep, as e3nn's.
#[derive(Clone, Debug)]
pub struct Gate {
    irreps_in: Irreps,
    irreps_out: Irreps,
    plan: Arc<GatePlan>,
    kernels: Kernels,
}

impl Gate {
    pub fn new(
        scalars: Irreps,
        act_scalars: Activation,
        gates: Irreps,
        act_gates: Activation,
        gated: Irreps,
    ) -> Result<Self, O3Error> {
        let bad = |reason: String| O3Error::InvalidGate { reason };
        for (name, list) in [("scalars", &scalars), ("gates", &gates)] {
            if let Some(b) = list.blocks().iter().find(|b| b.ir.l != 0) {
                return Err(bad(format!("the {name} must be degree 0, found {}", b.ir)));
            }
        }
        if gates.num_irreps() != gated.num_irreps() {
            return Err(bad(format!(
                "{} gates for {} gated irreps: give one 0e/0o gate per gated irrep (count copies, not dimensions)",
                gates.num_irreps(),
                gated.num_irreps()
            )));
        }
        for (list, act, what) in [
            (&scalars, act_scalars, "scalars"),
            (&gates, act_gates, "gates"),
        ] {
            if list
                .blocks()
                .iter()
                .any(|b| act.output_parity(b.ir.p).is_none())
            {
                return Err(bad(format!(
                    "odd {what} need an odd or even activation (tanh, abs), not {act:?}"
                )));
            }
        }
        let mut out_blocks: Vec<MulIrrep> = scalars
            .blocks()
            .iter()
            .map(|b| MulIrrep {
                mul: b.mul,
                ir: Irrep::new(0, act_scalars.output_parity(b.ir.p).unwrap()),
            })
            .collect();
        // Each gated copy takes the parity of its gate's output.
        let gate_parities: Vec<Parity> = gates
            .blocks()
            .iter()
            .flat_map(|b| std::iter::repeat_n(act_gates.output_parity(b.ir.p).unwrap(), b.mul))
            .collect();
        let mut copy = 0;
        for b in gated.blocks() {
            let parities = &gate_parities[copy..copy + b.mul];
            copy += b.mul;
            // Split a block whose gates differ in parity into runs.
            let mut start = 0;
            while start < b.mul {
                let p = parities[start];
                let end = (start..b.mul).find(|&i| parities[i] != p).unwrap_or(b.mul);
                out_blocks.push(MulIrrep {
                    mul: end - start,
                    ir: Irrep::new(b.ir.l, b.ir.p.times(p)),
                });
                start = end;
            }
        }
        let all: Vec<MulIrrep> = scalars
            .blocks()
            .iter()
            .chain(gates.blocks())
            .chain(gated.blocks())
            .copied()
            .collect();
        let sorted = Irreps::new(all).sort();
        let sorted_offsets = sorted.irreps.offsets();
        // The input offset of each block of scalars + gates + gated, in that order.
        let offsets: Vec<usize> = sorted.p.iter().map(|&new| sorted_offsets[new]).collect();
        let (ns, ng) = (scalars.len(), gates.len());
        let segment = |k: usize, b: &MulIrrep| (offsets[k], b.dim());
        let mut output = scalars.dim();
        let mut gate = 0;
        let gated_blocks = gated
            .blocks()
            .iter()
            .enumerate()
            .map(|(k, b)| {
                let g = Gated {
                    input: offsets[ns + ng + k],
                    output,
                    mul: b.mul,
                    dim: b.ir.dim(),
                    gate,
                };
                output += b.dim();
                gate += b.mul;
                g
            })
            .collect();
        let plan = GatePlan {
            dim_in: sorted.irreps.dim(),
            dim_out: scalars.dim() + gated.dim(),
            scalars: scalars
                .blocks()
                .iter()
                .enumerate()
                .map(|(k, b)| segment(k, b))
                .collect(),
            gates: gates
                .blocks()
                .iter()
                .enumerate()
                .map(|(k, b)| segment(ns + k, b))
                .collect(),
            gated: gated_blocks,
            act_scalars: act_scalars.kernel(),
            act_gates: act_gates.kernel(),
            scale_scalars: act_scalars.normalization() as f32,
            scale_gates: act_gates.normalization() as f32,
        };
        Ok(Gate {
            irreps_in: sorted.irreps,
            irreps_out: Irreps::new(out_blocks),
            plan: Arc::new(plan),
            kernels: Kernels::default(),
        })
    }

    /// Which implementation runs it (equivar's fused kernel on Flex by default).
    pub fn with_kernels(mut self, kernels: Kernels) -> Self {
        self.kernels = kernels;
        self
    }

    pub fn irreps_in(&self) -> &Irreps {
        &self.irreps_in
    }

    pub fn irreps_out(&self) -> &Irreps {
        &self.irreps_out
    }

    /// `x [n, irreps_in.dim()] -> [n, irreps_out.dim()]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [_, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps_in.dim(),
            "Gate: input is [n, {}] ({})",
            self.irreps_in.dim(),
            self.irreps_in
        );
        ops::gate(x, &self.plan, self.kernels)
    }
}
