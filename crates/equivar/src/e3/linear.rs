//! Equivariant linear maps between irreps lists.

use burn::module::{Module, Param};
use burn::tensor::{Device, Distribution, Tensor};

use crate::o3::{Irreps, O3Error};

/// One weight matrix `[mul_in, mul_out]` for every pair of an input and an output block of
/// the same irrep (Schur: nothing else commutes with the group), as e3nn's `o3.Linear`:
/// weights N(0, 1), each output block scaled by `1/sqrt(fan_in)` (the input channels that
/// feed it), optional biases on the `0e` outputs only (the only ones a constant keeps
/// equivariant).
#[derive(Module, Debug)]
pub struct Linear {
    /// All path matrices, flattened in path order.
    pub weight: Param<Tensor<1>>,
    /// One bias per `0e` output channel, in output order.
    pub bias: Option<Param<Tensor<1>>>,
    #[module(skip)]
    pub irreps_in: Irreps,
    #[module(skip)]
    pub irreps_out: Irreps,
    /// `(input block, output block, weight offset, coefficient)`.
    #[module(skip)]
    paths: Vec<(usize, usize, usize, f32)>,
}

impl Linear {
    pub fn new(
        irreps_in: Irreps,
        irreps_out: Irreps,
        bias: bool,
        device: &Device,
    ) -> Result<Self, O3Error> {
        let mut paths = Vec::new();
        let mut numel = 0;
        for (o, bo) in irreps_out.blocks().iter().enumerate() {
            let fan_in: usize = irreps_in
                .blocks()
                .iter()
                .filter(|b| b.ir == bo.ir)
                .map(|b| b.mul)
                .sum();
            for (i, bi) in irreps_in.blocks().iter().enumerate() {
                if bi.ir == bo.ir && bi.mul > 0 && bo.mul > 0 {
                    paths.push((i, o, numel, 1.0 / (fan_in as f32).sqrt()));
                    numel += bi.mul * bo.mul;
                }
            }
        }
        let weight = Param::from_tensor(Tensor::<1>::random(
            [numel],
            Distribution::Normal(0.0, 1.0),
            device,
        ));
        let scalars = irreps_out.count(crate::o3::Irrep::harmonic(0));
        let bias = (bias && scalars > 0)
            .then(|| Param::from_tensor(Tensor::<1>::zeros([scalars], device)));
        Ok(Linear {
            weight,
            bias,
            irreps_in,
            irreps_out,
            paths,
        })
    }

    /// `x [n, dim_in] -> [n, dim_out]`.
    pub fn forward(&self, x: Tensor<2>) -> Tensor<2> {
        let [n, dim] = x.dims();
        assert_eq!(
            dim,
            self.irreps_in.dim(),
            "Linear: input is [n, {}] ({})",
            self.irreps_in.dim(),
            self.irreps_in
        );
        let device = x.device();
        let (bi, bo) = (self.irreps_in.blocks(), self.irreps_out.blocks());
        let oi = self.irreps_in.offsets();
        let weight = self.weight.val();
        let mut blocks: Vec<Option<Tensor<2>>> = vec![None; bo.len()];
        for &(i, o, offset, coefficient) in &self.paths {
            let (mi, mo, d) = (bi[i].mul, bo[o].mul, bi[i].ir.dim());
            let w = weight.clone().narrow(0, offset, mi * mo).reshape([mi, mo]) * coefficient;
            // [n, mi, d] -> [n d, mi] . [mi, mo] -> [n, d, mo] -> [n, mo d]
            let xb = x
                .clone()
                .narrow(1, oi[i], mi * d)
                .reshape([n, mi, d])
                .swap_dims(1, 2)
                .reshape([n * d, mi]);
            let y = xb
                .matmul(w)
                .reshape([n, d, mo])
                .swap_dims(1, 2)
                .reshape([n, mo * d]);
            blocks[o] = Some(match blocks[o].take() {
                Some(acc) => acc + y,
                None => y,
            });
        }
        let mut bias_offset = 0;
        let parts: Vec<Tensor<2>> = blocks
            .into_iter()
            .zip(bo)
            .map(|(t, b)| {
                let mut t = t.unwrap_or_else(|| Tensor::zeros([n, b.dim()], &device));
                if let Some(bias) = &self.bias
                    && b.ir == crate::o3::Irrep::harmonic(0)
                {
                    t = t + bias.val().narrow(0, bias_offset, b.mul).unsqueeze::<2>();
                    bias_offset += b.mul;
                }
                t
            })
            .collect();
        if parts.is_empty() {
            return Tensor::zeros([n, 0], &device);
        }
        Tensor::cat(parts, 1)
    }
}
