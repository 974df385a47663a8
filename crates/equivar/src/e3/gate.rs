//! The gated nonlinearity (Weiler et al. 2018; e3nn's `nn.Gate`).

use burn::tensor::Tensor;
use burn::tensor::activation;

use crate::o3::{Irrep, Irreps, MulIrrep, O3Error, Parity};

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

    fn apply(self, x: Tensor<2>) -> Tensor<2> {
        let c = self.normalization() as f32;
        let y = match self {
            Activation::Silu => activation::silu(x),
            Activation::Sigmoid => activation::sigmoid(x),
            Activation::Tanh => x.tanh(),
            Activation::Abs => x.abs(),
        };
        y * c
    }
}

/// `[act(scalars) | act_gates(gates) * gated]`: every gated irrep is multiplied, all its
/// `2l + 1` components alike, by its own gate. The input is the stable sort of
/// `scalars + gates + gated` by irrep, as e3nn's.
#[derive(Clone, Debug)]
pub struct Gate {
    scalars: Irreps,
    gates: Irreps,
    gated: Irreps,
    act_scalars: Activation,
    act_gates: Activation,
    irreps_in: Irreps,
    irreps_out: Irreps,
    /// For each block of scalars + gates + gated (in that order): its offset in the input.
    offsets: Vec<usize>,
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
        let offsets = sorted.p.iter().map(|&new| sorted_offsets[new]).collect();
        Ok(Gate {
            scalars,
            gates,
            gated,
            act_scalars,
            act_gates,
            irreps_in: sorted.irreps,
            irreps_out: Irreps::new(out_blocks),
            offsets,
        })
    }

    pub fn irreps_in(&self) -> &Irreps {
        &self.irreps_in
    }

    pub fn irreps_out(&self) -> &Irreps {
        &self.irreps_out
    }

    /// `x [n, irreps_in.dim()] -> [n, irreps_out.dim()]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps_in.dim(),
            "Gate: input is [n, {}] ({})",
            self.irreps_in.dim(),
            self.irreps_in
        );
        let (ns, ng) = (self.scalars.len(), self.gates.len());
        let block = |k: usize, b: &MulIrrep| x.clone().narrow(1, self.offsets[k], b.dim());
        let mut parts = Vec::new();
        if self.scalars.dim() > 0 {
            let s: Vec<Tensor<2>> = self
                .scalars
                .blocks()
                .iter()
                .enumerate()
                .map(|(k, b)| block(k, b))
                .collect();
            parts.push(self.act_scalars.apply(Tensor::cat(s, 1)));
        }
        if self.gates.dim() > 0 {
            let g: Vec<Tensor<2>> = self
                .gates
                .blocks()
                .iter()
                .enumerate()
                .map(|(k, b)| block(ns + k, b))
                .collect();
            let gates = self.act_gates.apply(Tensor::cat(g, 1));
            let mut copy = 0;
            for (k, b) in self.gated.blocks().iter().enumerate() {
                let d = b.ir.dim();
                let y = block(ns + ng + k, b).reshape([n, b.mul, d]);
                let g = gates.clone().narrow(1, copy, b.mul).reshape([n, b.mul, 1]);
                parts.push((y * g).reshape([n, b.mul * d]));
                copy += b.mul;
            }
        }
        if parts.is_empty() {
            return Tensor::zeros([n, 0], &x.device());
        }
        Tensor::cat(parts, 1)
    }
}
