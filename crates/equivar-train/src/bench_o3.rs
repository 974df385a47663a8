//! `equivar bench --o3`: the E(3) ops with the cases `../shared/peers/e3nn_ops.py` times for
//! e3nn (float32, medians; forward without autodiff, forward + backward of
//! `mean(out^2)` with gradients for every input):
//! - `e3nn_sh` lmax 2, 3, 6: spherical harmonics ('component', normalised) of 100,000
//!   vectors, gradient for the vectors;
//! - `e3nn_tp` fctp_uvw: `32x0e+32x1o+32x2e x 0e+1o+2e -> 32x0e+32x1o+32x2e` fully connected
//!   (11 paths, 11,264 shared weights) on 20,000 rows, gradients for both inputs and weights;
//! - `e3nn_tp` uvu_radial: the channel-wise product of the same irreps (11 paths, 352
//!   weights per row) with given per-row weights, gradients for both inputs and the weights;
//! - `e3nn_gate` silu_sigmoid: `32x0e | 32x0e gates | 32x1o` on 20,000 rows.

use anyhow::Result;
use burn::tensor::{Device, Distribution, Tensor};
use equivar::e3::{Activation, Gate, SphericalHarmonics};
use equivar::o3::{self, Normalization};
use equivar::ops::{self, Kernels, TpWeights};
use serde::Serialize;

use crate::bench::median_seconds;

/// One figure line, named like e3nn_ops.py's (`bench`, `case`) so the two join.
#[derive(Clone, Debug, Serialize)]
pub struct O3Figures {
    /// `equivar_sh`, `equivar_tp`, `equivar_gate`.
    pub bench: String,
    pub case: String,
    pub kernels: &'static str,
    pub rows: usize,
    pub fwd_ms: f64,
    pub fwd_bwd_ms: f64,
    pub repeats: usize,
}

const FEATURES: &str = "32x0e+32x1o+32x2e";
const SH2: &str = "1x0e+1x1o+1x2e";

fn normal(shape: [usize; 2], device: &Device) -> Tensor<2> {
    Tensor::random(shape, Distribution::Normal(0.0, 1.0), device)
}

/// Flex runs eagerly: the op has run when it returns (as PyTorch's on the CPU), so the
/// forward figure times the op alone, like e3nn_ops.py's.
fn settle(t: Tensor<2>) {
    drop(t);
}

/// Every case, on the Flex CPU backend with `kernels`.
pub fn bench_o3(kernels: Kernels, repeats: usize) -> Result<Vec<O3Figures>> {
    let device = Device::flex();
    let grad_device = Device::flex().autodiff();
    let mut out = Vec::new();
    let time = |f: &mut dyn FnMut()| 1e3 * median_seconds(3, repeats, f);
    let figure = |bench: &str, case: String, rows, fwd_ms, fwd_bwd_ms| O3Figures {
        bench: bench.into(),
        case,
        kernels: kernels.name(),
        rows,
        fwd_ms,
        fwd_bwd_ms,
        repeats,
    };

    let n = 100_000;
    for lmax in [2, 3, 6] {
        let sh =
            SphericalHarmonics::new(lmax, Normalization::Component, true)?.with_kernels(kernels);
        let v = normal([n, 3], &device);
        let fwd = time(&mut || settle(sh.forward(v.clone())));
        let vg = normal([n, 3], &grad_device).require_grad();
        let fwd_bwd = time(&mut || {
            let g = sh.forward(vg.clone()).square().mean().backward();
            let _ = vg.grad(&g);
        });
        out.push(figure("equivar_sh", format!("lmax{lmax}"), n, fwd, fwd_bwd));
    }

    let e = 20_000;
    let (features, sh2) = (FEATURES.parse::<o3::Irreps>()?, SH2.parse::<o3::Irreps>()?);
    let harmonics = SphericalHarmonics::new(2, Normalization::Component, true)?;
    for channel_wise in [false, true] {
        let product = if channel_wise {
            o3::TensorProduct::channel_wise(features.clone(), sh2.clone(), &features)?
        } else {
            o3::TensorProduct::fully_connected(features.clone(), sh2.clone(), features.clone())?
        };
        let plan = product.plan().clone();
        let weights = |device: &Device, grad: bool| {
            let w = if channel_wise {
                TpWeights::PerRow(normal([e, product.weight_numel()], device))
            } else {
                TpWeights::Shared(Tensor::random(
                    [product.weight_numel()],
                    Distribution::Normal(0.0, 1.0),
                    device,
                ))
            };
            match (w, grad) {
                (TpWeights::PerRow(w), true) => TpWeights::PerRow(w.require_grad()),
                (TpWeights::Shared(w), true) => TpWeights::Shared(w.require_grad()),
                (w, false) => w,
            }
        };
        let x1 = normal([e, features.dim()], &device);
        let x2 = harmonics.forward(normal([e, 3], &device));
        let w = weights(&device, false);
        let fwd = time(&mut || {
            settle(ops::tensor_product(
                x1.clone(),
                x2.clone(),
                w.clone(),
                &plan,
                kernels,
            ))
        });
        let g1 = normal([e, features.dim()], &grad_device).require_grad();
        let g2 = harmonics
            .forward(normal([e, 3], &grad_device))
            .detach()
            .require_grad();
        let gw = weights(&grad_device, true);
        let fwd_bwd = time(&mut || {
            let g = ops::tensor_product(g1.clone(), g2.clone(), gw.clone(), &plan, kernels)
                .square()
                .mean()
                .backward();
            let _ = (g1.grad(&g), g2.grad(&g));
        });
        let case = if channel_wise {
            "uvu_radial"
        } else {
            "fctp_uvw"
        };
        out.push(figure("equivar_tp", case.into(), e, fwd, fwd_bwd));
    }

    let gate = Gate::new(
        "32x0e".parse()?,
        Activation::Silu,
        "32x0e".parse()?,
        Activation::Sigmoid,
        "32x1o".parse()?,
    )?;
    let x = normal([e, gate.irreps_in().dim()], &device);
    let fwd = time(&mut || settle(gate.forward(x.clone())));
    let xg = normal([e, gate.irreps_in().dim()], &grad_device).require_grad();
    let fwd_bwd = time(&mut || {
        let g = gate.forward(xg.clone()).square().mean().backward();
        let _ = xg.grad(&g);
    });
    out.push(figure(
        "equivar_gate",
        "silu_sigmoid".into(),
        e,
        fwd,
        fwd_bwd,
    ));
    Ok(out)
}
