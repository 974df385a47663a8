//! `equivar bench --disco`: a DISCO convolution layer on the sphere, with the figures
//! `../shared/peers/th_disco.py` prints for torch-harmonics (same layer: equiangular grid in
//! and out, 16 -> 16 channels, batch 4, piecewise-linear basis of kernel shape (3, 3), the
//! default cutoff of one latitude spacing), plus the process's peak resident memory.

use anyhow::{Result, bail};
use burn::tensor::{Device, Distribution, Tensor};
use equivar::kernels::FilterBasis;
use equivar::nn::DiscoConfig;
use equivar::ops::Kernels;
use equivar::space::SphereGrid;
use serde::Serialize;

use crate::bench::median_seconds;

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

/// Largest batch and channel count of the DISCO benchmark.
pub const MAX_DISCO_BATCH: usize = 1024;
pub const MAX_DISCO_CHANNELS: usize = 1024;

/// `Ok` if `batch` and `channels` are within [`MAX_DISCO_BATCH`] and [`MAX_DISCO_CHANNELS`]
/// (and positive); the error names the setting (`disco_batch`, `disco_channels`).
pub fn check_settings(batch: usize, channels: usize) -> Result<()> {
    anyhow::ensure!(
        (1..=MAX_DISCO_BATCH).contains(&batch),
        "`disco_batch` must be in 1..={MAX_DISCO_BATCH}, got {batch}"
    );
    anyhow::ensure!(
        (1..=MAX_DISCO_CHANNELS).contains(&channels),
        "`disco_channels` must be in 1..={MAX_DISCO_CHANNELS}, got {channels}"
    );
    Ok(())
}

/// Smallest and largest sphere grids the DISCO commands take. Below the minimum the layer's
/// support (one latitude spacing) covers a large part of the sphere and the measurement means
/// little; above the maximum one tensor alone approaches the memory of a large machine.
pub const MIN_GRID: [usize; 2] = [8, 16];
pub const MAX_GRID: [usize; 2] = [2048, 4096];

/// Parses `64x128,128x256` into shapes, each within [`MIN_GRID`]..=[`MAX_GRID`]; `flag` names
/// the option in errors. An empty string gives no shapes.
pub fn parse_shapes(list: &str, flag: &str) -> Result<Vec<[usize; 2]>> {
    let usage = format!(
        "{flag} takes comma-separated grids NLATxNLON with NLAT in {}..={} and NLON in \
         {}..={}, e.g. 64x128,256x512",
        MIN_GRID[0], MAX_GRID[0], MIN_GRID[1], MAX_GRID[1]
    );
    if list.trim().is_empty() {
        return Ok(Vec::new());
    }
    list.split(',')
        .map(|s| {
            let s = s.trim();
            let parsed = s
                .split_once('x')
                .and_then(|(a, b)| Some([a.trim().parse().ok()?, b.trim().parse().ok()?]));
            let Some(shape) = parsed else {
                bail!("grid `{s}` is not NLATxNLON; {usage}");
            };
            let fits = (0..2).all(|i| (MIN_GRID[i]..=MAX_GRID[i]).contains(&shape[i]));
            anyhow::ensure!(fits, "grid `{s}` is out of range; {usage}");
            Ok(shape)
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

/// Benchmarks one DISCO layer on an `nlat x nlon` equiangular grid, on `device`.
pub fn bench_disco(
    [nlat, nlon]: [usize; 2],
    batch: usize,
    channels: usize,
    repeats: usize,
    (kernels, device): (Kernels, &Device),
) -> Result<DiscoFigures> {
    check_settings(batch, channels)?;
    anyhow::ensure!(repeats >= 1, "`repeats` must be at least 1, got 0");
    let points = (nlat * nlon) as f64;
    // Input, output and their gradients in the plain and autodiff passes (~8 tensors), and psi
    // (about 16 neighbours per point for each of the 9 basis functions, index and value).
    equivar::memory::ensure_fits(
        &format!("the DISCO benchmark at {nlat}x{nlon}, batch {batch}, {channels} channels"),
        4.0 * 8.0 * (batch * channels) as f64 * points + 8.0 * 16.0 * 9.0 * points,
        "use a smaller grid, `disco_batch` or `disco_channels`",
    )?;
    reset_peak_rss();
    let grid = SphereGrid::equiangular(nlat, nlon)?;
    let basis = FilterBasis::piecewise_linear(3, 3)?;
    let config = DiscoConfig::new(channels, channels, grid.clone(), grid, basis);
    let device = device.clone();
    let mut conv = config.init_conv(&device)?;
    conv.kernels = kernels;
    let construct_repeats = if nlat * nlon > 1 << 20 { 1 } else { repeats };
    let construct_s = median_seconds(0, construct_repeats, || {
        // Built once above with the same config: it cannot fail here.
        let _ = config.init_conv(&device);
    });
    let x = Tensor::<4>::random(
        [batch, channels, nlat, nlon],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    let fwd_s = median_seconds(2.min(repeats), repeats, || {
        let _ = conv.forward(x.clone()).into_data();
    });

    let ad = device.autodiff();
    let mut conv_ad = config.init_conv(&ad)?;
    conv_ad.kernels = kernels;
    let x_ad = Tensor::<4>::from_inner(x).require_grad();
    let fwd_bwd_s = median_seconds(2.min(repeats), repeats, || {
        let loss = conv_ad.forward(x_ad.clone()).square().mean();
        let grads = loss.backward();
        let _ = x_ad.grad(&grads).map(|g| g.into_data());
    });
    let result = DiscoFigures {
        bench: "equivar_disco",
        kernels: kernels.name(),
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
    Ok(result)
}
