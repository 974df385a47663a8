//! `equivar bench --disco`: a DISCO convolution layer on the sphere, with the figures
//! `../shared/peers/th_disco.py` prints for torch-harmonics (same layer: equiangular grid in
//! and out, 16 -> 16 channels, batch 4, piecewise-linear basis of kernel shape (3, 3), the
//! default cutoff of one latitude spacing), plus the process's peak resident memory.

use anyhow::{Context, Result};
use burn::tensor::{Device, Distribution, Tensor};
use equivar::kernels::FilterBasis;
use equivar::nn::DiscoConfig;
use equivar::ops::{self, Kernels};
use equivar::space::SphereGrid;
use serde::Serialize;

use crate::bench::{kernels_name, median_seconds};

#[derive(Clone, Debug, Serialize)]
pub struct DiscoFigures {
    pub bench: &'static str,
    pub kernels: &'static str,
    /// `[nlat, nlon]`, in and out.
    pub shape: [usize; 2],
    pub batch: usize,
    pub channels: usize,
    pub kernel_shape: [usize; 2],
    pub basis: &'static str,
    pub kernel_size: usize,
    pub theta_cutoff: f64,
    pub psi_nnz: usize,
    /// Layer construction, psi included (median).
    pub construct_s: f64,
    /// Forward without autodiff (median).
    pub fwd_ms: f64,
    /// Forward and backward of `mean(conv(x)^2)` with gradients for x, weight and bias.
    pub fwd_bwd_ms: f64,
    /// Peak resident memory of the process while this shape ran (reset before it).
    pub peak_rss_mb: f64,
    pub repeats: usize,
}

/// Parses `64x128,128x256` into shapes.
pub fn parse_shapes(list: &str) -> Result<Vec<[usize; 2]>> {
    list.split(',')
        .filter(|s| !s.is_empty())
        .map(|s| {
            let (a, b) = s
                .split_once('x')
                .with_context(|| format!("grid `{s}`: write NLATxNLON, e.g. 256x512"))?;
            Ok([a.trim().parse()?, b.trim().parse()?])
        })
        .collect()
}

/// Resets the kernel's peak-RSS counter of this process (Linux; ignored elsewhere).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Peak resident memory in MB since the last reset (Linux; 0 elsewhere).
pub fn peak_rss_mb() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        })
        .map_or(0.0, |kb| kb / 1024.0)
}

/// Benchmarks one DISCO layer on an `nlat x nlon` equiangular grid.
pub fn bench_disco(
    [nlat, nlon]: [usize; 2],
    batch: usize,
    channels: usize,
    repeats: usize,
    kernels: Kernels,
) -> Result<DiscoFigures> {
    ops::set_kernels(kernels);
    reset_peak_rss();
    let grid = SphereGrid::equiangular(nlat, nlon)?;
    let basis = FilterBasis::piecewise_linear(3, 3)?;
    let config = DiscoConfig::new(channels, channels, grid.clone(), grid, basis);
    let device = Device::flex();
    let construct_repeats = if nlat * nlon > 1 << 20 { 1 } else { repeats };
    let construct_s = median_seconds(0, construct_repeats, || {
        config.init_conv(&device).expect("valid layer");
    });
    let conv = config.init_conv(&device)?;
    let x = Tensor::<4>::random(
        [batch, channels, nlat, nlon],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let fwd_s = median_seconds(2.min(repeats), repeats, || {
        let _ = conv.forward(x.clone()).into_data();
    });

    let ad = device.autodiff();
    let conv_ad = config.init_conv(&ad)?;
    let x_ad = Tensor::<4>::from_inner(x).require_grad();
    let fwd_bwd_s = median_seconds(2.min(repeats), repeats, || {
        let loss = conv_ad.forward(x_ad.clone()).square().mean();
        let grads = loss.backward();
        let _ = x_ad.grad(&grads).map(|g| g.into_data());
    });
    let result = DiscoFigures {
        bench: "equivar_disco",
        kernels: kernels_name(kernels),
        shape: [nlat, nlon],
        batch,
        channels,
        kernel_shape: [3, 3],
        basis: "piecewise linear",
        kernel_size: basis.size(),
        theta_cutoff: config.cutoff(),
        psi_nnz: conv.psi.nnz(),
        construct_s,
        fwd_ms: fwd_s * 1e3,
        fwd_bwd_ms: fwd_bwd_s * 1e3,
        peak_rss_mb: peak_rss_mb(),
        repeats,
    };
    ops::set_kernels(Kernels::Equivar);
    Ok(result)
}
