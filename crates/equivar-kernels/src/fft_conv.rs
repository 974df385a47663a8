//! FFT convolution for large windows (stride 1, no dilation): the forward, the input gradient
//! and the filter gradient, for training and the frozen inference model. A steerable CNN's
//! 7x7 and 9x9 filters cost `k^2 = 49-81` multiply-adds per output pixel and channel pair as a
//! direct (im2col + GEMM) convolution; on the transform grid they cost one complex product
//! per frequency bin, about 4 x 13/24 = 2.2 real multiply-adds per grid point.
//!
//! Every plane is zero-extended to an `n_h x n_w` grid with `n >= size + padding`, so that the
//! circular convolution wraps only zeros into the outputs kept: the zeros after the data serve
//! as the padding on both sides. The filter tap `(m_y, m_x)` sits at `(p - m_y, p - m_x) mod
//! n`, which turns the layer's cross-correlation into a circular convolution:
//!
//! ```text
//! y[o]   = crop( IDFT( sum_i  G[o, i] X[i] ) )           forward
//! dx[i]  = crop( IDFT( sum_o  conj(G[o, i]) DY[o] ) )    input gradient (the adjoint)
//! dw[o,i] = taps( IDFT( sum_b  DY[b, o] conj(X[b, i]) ) ) filter gradient
//! ```
//!
//! with real 2-D DFTs (`n_h x (n_w/2 + 1)` bins, the rest by symmetry). Each bin's sum over
//! channels is a complex matrix product, run as two real GEMMs on the bin's planes stored
//! `[channel][re over images | im over images]`:
//!
//! ```text
//! Y  = G_re [X_re | X_im] + G_im [-X_im | X_re]
//! DX = G_re^T [DY_re | DY_im] + G_im^T [DY_im | -DY_re]
//! DG_re = [DY_re | DY_im] [X_re | X_im]^T,   DG_im = [DY_im | -DY_re] [X_re | X_im]^T
//! ```
//!
//! The transforms are rustfft's (with realfft's real-input wrappers). Floating-point error is
//! that of a length-n FFT, far inside the layers' 1e-5 equivariance tolerance; the tests
//! compare all three products with the plain f64 loops.

use std::sync::Arc;

use gemm::Parallelism;
use rayon::prelude::*;
use realfft::{ComplexToReal, RealFftPlanner, RealToComplex};
use rustfft::num_complex::Complex;
use rustfft::{Fft, FftPlanner};

use crate::SharedOut;
use crate::conv::{ConvGrads, ConvShape, Wanted, sgemm_strided};

/// The smallest window the FFT path takes: below it the transforms cost more than they save.
pub const MIN_KERNEL: usize = 5;

/// Input and output channels from which the transforms (per plane) are paid back by the
/// cheaper products (per channel pair).
pub const MIN_CHANNELS: usize = 8;

/// Images whose spectra are held at once: bounds the bin-major buffers (`bins x channels x 2
/// x images` floats) while keeping each bin's GEMM wide.
const IMAGES_PER_CHUNK: usize = 64;

/// Cost of a full plane's transform per grid point, in GEMM-equivalent FLOPs per
/// `log2(points)`: rustfft's small transforms run far below the GEMM's rate.
const TRANSFORM_COST: f64 = 60.0;

/// The transform grid of one geometry: `n_h x n_w` points, `n_h x (n_w/2 + 1)` bins.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Grid {
    pub n_h: usize,
    pub n_w: usize,
}

impl Grid {
    /// The smallest even 7-smooth lengths with room for the data and the padding.
    pub fn of(s: &ConvShape) -> Grid {
        Grid {
            n_h: fft_len(s.height + s.padding),
            n_w: fft_len(s.width + s.padding),
        }
    }

    fn half(&self) -> usize {
        self.n_w / 2 + 1
    }

    /// Frequency bins of a real plane's spectrum.
    pub fn bins(&self) -> usize {
        self.n_h * self.half()
    }

    fn points(&self) -> usize {
        self.n_h * self.n_w
    }
}

/// The smallest even length `>= at_least` whose prime factors are all <= 7 (fast in rustfft).
fn fft_len(at_least: usize) -> usize {
    let smooth = |mut n: usize| {
        for p in [2, 3, 5, 7] {
            while n.is_multiple_of(p) {
                n /= p;
            }
        }
        n == 1
    };
    (at_least.max(2)..)
        .find(|&n| n % 2 == 0 && smooth(n))
        .expect("smooth lengths are unbounded")
}

/// Whether [`forward`] computes this geometry: stride 1, no dilation, and padding below the
/// window (so the outputs fit on the grid).
pub fn supports(s: &ConvShape) -> bool {
    s.stride == 1 && s.dilation == 1 && s.padding < s.kernel
}

/// Whether a layer with this window and these channel counts is one the FFT path may speed
/// up (given a geometry it [`suits`]).
pub fn suits_layer(
    kernel: usize,
    stride: usize,
    dilation: usize,
    c_in: usize,
    c_out: usize,
) -> bool {
    kernel >= MIN_KERNEL
        && stride == 1
        && dilation == 1
        && c_in >= MIN_CHANNELS
        && c_out >= MIN_CHANNELS
}

/// What a call computes, which decides what the transforms must pay back.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pass {
    /// A forward with the filter's spectra at hand (a frozen model's, transformed once).
    Frozen,
    /// A forward that transforms the filter first (an untracked call on live weights).
    Forward,
    /// A training step: the filter's transform, the forward, the input and filter gradients.
    Training,
}

/// Whether the FFT path beats the direct convolution on `pass` by the cost model's margin:
/// a window it [`suits_layer`] and an estimated cost ([`cost`]) under the direct one's
/// (whose backward costs about 2.5 times its forward).
pub fn suits(s: &ConvShape, pass: Pass) -> bool {
    if !(supports(s) && suits_layer(s.kernel, s.stride, s.dilation, s.c_in, s.c_out)) {
        return false;
    }
    let (cost, direct) = match pass {
        Pass::Frozen => (frozen_cost(s), direct_cost(s)),
        Pass::Forward => (cost(s, pass), direct_cost(s)),
        Pass::Training => (cost(s, pass), 3.5 * direct_cost(s)),
    };
    MARGIN * cost < direct
}

/// How much cheaper the estimate must be: the model is good to about this factor.
const MARGIN: f64 = 1.25;

/// Fixed cost of one plane's transform (planning-free setup, gathers and scatters), in
/// GEMM-equivalent FLOPs; measured with `TRANSFORM_COST` on 8x8 to 24x24 grids.
const PLANE_OVERHEAD: f64 = 30_000.0;

/// Reading one bin's `2 c_out c_in` spectrum floats costs, in GEMM-equivalent FLOPs, about
/// as much as this many images' complex products with them (the machine's FLOP rate over its
/// memory bandwidth): one image's products are bound by that read.
const SPECTRUM_READ_IMAGES: f64 = 12.0;

/// One plane's transform or inverse, with `rows` of its `n_h` rows nonzero (or wanted).
fn plane_cost(g: Grid, rows: usize) -> f64 {
    let points = g.points() as f64;
    let share = (rows.min(g.n_h) + g.n_h) as f64 / (2 * g.n_h) as f64;
    PLANE_OVERHEAD + TRANSFORM_COST * points * points.log2() * share
}

/// One pass of the per-bin products over the batch: 8 FLOPs per bin, channel pair and image
/// (a complex multiply-add), plus reading the spectra once per chunk of images.
fn products_cost(s: &ConvShape) -> f64 {
    let chunks = s.batch.div_ceil(IMAGES_PER_CHUNK) as f64;
    let images = s.batch as f64 + SPECTRUM_READ_IMAGES * chunks;
    8.0 * (Grid::of(s).bins() * s.c_in * s.c_out) as f64 * images
}

/// The direct conv's cost in the same units: its GEMM runs below its best rate when it is
/// narrow (few output pixels on few images: 100 pixels ~1.25x, 25 ~2x the time per FLOP).
fn direct_cost(s: &ConvShape) -> f64 {
    let columns = (s.batch * s.out_pixels()) as f64;
    s.forward_flops() * (1.0 + 25.0 / columns)
}

/// The estimated cost of `pass` in GEMM-equivalent FLOPs. The forward: the products, the
/// input planes' transforms and the output planes' inverses; the filter's transform (two
/// passes over every channel pair with the filter gradient's inverses); the backward: two
/// passes of products, the input and output-gradient planes' transforms and the input
/// gradient's inverses.
pub fn cost(s: &ConvShape, pass: Pass) -> f64 {
    let g = Grid::of(s);
    let (images, pairs) = (s.batch as f64, (s.c_in * s.c_out) as f64);
    let (c_in, c_out) = (s.c_in as f64, s.c_out as f64);
    let (input_plane, output_plane) = (plane_cost(g, s.height), plane_cost(g, s.out_height()));
    let forward = products_cost(s) + images * (c_in * input_plane + c_out * output_plane);
    let filter = pairs * plane_cost(g, s.kernel);
    match pass {
        Pass::Frozen => forward,
        Pass::Forward => forward + filter,
        Pass::Training => {
            let backward =
                2.0 * products_cost(s) + images * (2.0 * c_in * input_plane + c_out * output_plane);
            forward + 2.0 * filter + backward
        }
    }
}

/// Overlap-save tiling for a frozen forward on few images: each output cut into `tile x tile`
/// tiles, each computed from its own `patch x patch` input window (`tile + kernel - 1`, zero
/// outside the image) as one image of a padding-free conv on a `patch`-point grid. On one
/// image the whole-plane products are matrix-vector products that read the filter's spectra
/// once per image; tiles share that read and the smaller grid has fewer bins, so its
/// spectra are smaller (e2-c8's 264->360 layer at 20x20: 4 tiles on a 16-grid, 144 instead
/// of 312 bins).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Tiling {
    /// Input window (and grid) side of a tile.
    pub patch: usize,
}

impl Tiling {
    /// Output side of a tile.
    pub fn tile(&self, s: &ConvShape) -> usize {
        self.patch + 1 - s.kernel
    }

    /// Tiles down and across.
    fn counts(&self, s: &ConvShape) -> (usize, usize) {
        let t = self.tile(s);
        (s.out_height().div_ceil(t), s.out_width().div_ceil(t))
    }

    /// The conv the tiles run: one image per tile, `patch x patch`, no padding.
    pub fn patch_shape(&self, s: &ConvShape) -> ConvShape {
        let (down, across) = self.counts(s);
        ConvShape {
            batch: s.batch * down * across,
            height: self.patch,
            width: self.patch,
            padding: 0,
            ..*s
        }
    }
}

/// The cheapest frozen forward of `s` on the grid (by [`cost`]): whole planes (`None`) or
/// tiles whose patch is an even 7-smooth length below the whole plane's grid.
pub fn frozen_tiling(s: &ConvShape) -> Option<Tiling> {
    if !supports(s) {
        return None;
    }
    let whole = Grid::of(s);
    let largest = whole.n_h.min(whole.n_w);
    (s.kernel + 1..largest)
        .filter(|&n| fft_len(n) == n)
        .map(|patch| Tiling { patch })
        .map(|t| (cost(&t.patch_shape(s), Pass::Frozen), t))
        .filter(|(c, _)| *c < cost(s, Pass::Frozen))
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, t)| t)
}

/// The frozen forward's cost on the layout [`frozen_tiling`] picks.
fn frozen_cost(s: &ConvShape) -> f64 {
    frozen_tiling(s).map_or_else(
        || cost(s, Pass::Frozen),
        |t| cost(&t.patch_shape(s), Pass::Frozen),
    )
}

/// The forward on tiles (see [`Tiling`]), with `filter` transformed for
/// `tiling.patch_shape(s)`; the same output as [`forward`].
pub fn forward_tiled(
    s: &ConvShape,
    x: &[f32],
    tiling: Tiling,
    filter: &FftFilter,
    bias: &[f32],
    epilogue: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    assert!(
        tiling.tile(s) >= 1 && supports(s),
        "fft conv: tiles for {s:?}"
    );
    assert_eq!(x.len(), s.input_len(), "fft conv: input length for {s:?}");
    let patches_shape = tiling.patch_shape(s);
    let (t, n, p) = (tiling.tile(s), tiling.patch, s.padding);
    let (down, across) = tiling.counts(s);
    let (h, w, ci, co) = (s.height, s.width, s.c_in, s.c_out);
    let (ho, wo) = (s.out_height(), s.out_width());
    // Patch (b, ty, tx) is image b's rows ty t - p .. + n and columns tx t - p .. + n.
    let mut patches = vec![0.0f32; patches_shape.input_len()];
    patches
        .par_chunks_mut(ci * n * n)
        .enumerate()
        .for_each(|(index, patch)| {
            let (b, ty, tx) = (
                index / (down * across),
                index / across % down,
                index % across,
            );
            for (c, plane) in patch.chunks_mut(n * n).enumerate() {
                let image = &x[(b * ci + c) * h * w..][..h * w];
                for (r, row) in plane.chunks_mut(n).enumerate() {
                    let Some(y) = (ty * t + r).checked_sub(p).filter(|&y| y < h) else {
                        continue;
                    };
                    for (dx, v) in row.iter_mut().enumerate() {
                        if let Some(x) = (tx * t + dx).checked_sub(p).filter(|&x| x < w) {
                            *v = image[y * w + x];
                        }
                    }
                }
            }
        });
    // Tiles are elementwise-finished: the epilogue runs on them.
    let tiles = forward(&patches_shape, &patches, filter, bias, epilogue);
    let mut out = vec![0.0f32; s.output_len()];
    out.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(plane_index, plane)| {
            let (b, o) = (plane_index / co, plane_index % co);
            for ty in 0..down {
                for tx in 0..across {
                    let tile =
                        &tiles[(((b * down + ty) * across + tx) * co + o) * t * t..][..t * t];
                    for u in 0..t.min(ho - ty * t) {
                        let width = t.min(wo - tx * t);
                        plane[(ty * t + u) * wo + tx * t..][..width]
                            .copy_from_slice(&tile[u * t..][..width]);
                    }
                }
            }
        });
    out
}

/// The real 2-D transforms of one grid, planned once per call and shared by its tasks.
struct PlaneFft {
    grid: Grid,
    rows_forward: Arc<dyn RealToComplex<f32>>,
    rows_inverse: Arc<dyn ComplexToReal<f32>>,
    cols_forward: Arc<dyn Fft<f32>>,
    cols_inverse: Arc<dyn Fft<f32>>,
}

/// One task's buffers for [`PlaneFft`]: a real row, its half spectrum, the plane's spectrum
/// column by column (`[n_w/2 + 1][n_h]`) and the transforms' scratch.
struct Work {
    row: Vec<f32>,
    row_spectrum: Vec<Complex<f32>>,
    spectrum: Vec<Complex<f32>>,
    scratch: Vec<Complex<f32>>,
}

const ZERO: Complex<f32> = Complex { re: 0.0, im: 0.0 };

impl PlaneFft {
    fn new(grid: Grid) -> Self {
        let mut real = RealFftPlanner::<f32>::new();
        let mut complex = FftPlanner::<f32>::new();
        PlaneFft {
            grid,
            rows_forward: real.plan_fft_forward(grid.n_w),
            rows_inverse: real.plan_fft_inverse(grid.n_w),
            cols_forward: complex.plan_fft_forward(grid.n_h),
            cols_inverse: complex.plan_fft_inverse(grid.n_h),
        }
    }

    fn work(&self) -> Work {
        let scratch = [
            self.rows_forward.get_scratch_len(),
            self.rows_inverse.get_scratch_len(),
            self.cols_forward.get_inplace_scratch_len(),
            self.cols_inverse.get_inplace_scratch_len(),
        ];
        Work {
            row: vec![0.0; self.grid.n_w],
            row_spectrum: vec![ZERO; self.grid.half()],
            spectrum: vec![ZERO; self.grid.bins()],
            scratch: vec![ZERO; scratch.into_iter().max().unwrap_or(0)],
        }
    }

    /// The spectrum (into `work.spectrum`, bin `kx * n_h + ky`) of the grid whose rows
    /// `rows` `fill(y, row)` writes into zeroed rows; the other rows are zero.
    fn forward(
        &self,
        rows: impl IntoIterator<Item = usize>,
        mut fill: impl FnMut(usize, &mut [f32]),
        work: &mut Work,
    ) {
        let n_h = self.grid.n_h;
        work.spectrum.fill(ZERO);
        for y in rows {
            work.row.fill(0.0);
            fill(y, &mut work.row);
            self.rows_forward
                .process_with_scratch(&mut work.row, &mut work.row_spectrum, &mut work.scratch)
                .expect("buffer lengths come from the plan");
            for (kx, &v) in work.row_spectrum.iter().enumerate() {
                work.spectrum[kx * n_h + y] = v;
            }
        }
        self.cols_forward
            .process_with_scratch(&mut work.spectrum, &mut work.scratch);
    }

    /// The inverse transform of `work.spectrum` (destroyed), unscaled: its rows `rows` are
    /// given to `take(y, row)`.
    fn inverse(
        &self,
        rows: impl IntoIterator<Item = usize>,
        mut take: impl FnMut(usize, &[f32]),
        work: &mut Work,
    ) {
        let (n_h, half) = (self.grid.n_h, self.grid.half());
        self.cols_inverse
            .process_with_scratch(&mut work.spectrum, &mut work.scratch);
        for y in rows {
            for (kx, v) in work.row_spectrum.iter_mut().enumerate() {
                *v = work.spectrum[kx * n_h + y];
            }
            // The spectrum is Hermitian up to rounding: the first and (n_w even) last bins'
            // imaginary parts are rounding noise, which the real inverse must not see.
            work.row_spectrum[0].im = 0.0;
            work.row_spectrum[half - 1].im = 0.0;
            self.rows_inverse
                .process_with_scratch(&mut work.row_spectrum, &mut work.row, &mut work.scratch)
                .expect("buffer lengths and a real first and last bin");
            take(y, &work.row);
        }
    }
}

/// Planes' spectra stored by bin: `[bin][group][re over members | im over members]`, the
/// layout the per-bin GEMMs read. For activations the groups are the channels and the members
/// the images; for filters the output and the input channels.
struct BinMajor {
    values: Vec<f32>,
    groups: usize,
    members: usize,
}

impl BinMajor {
    fn zeros(bins: usize, groups: usize, members: usize) -> Self {
        BinMajor {
            values: vec![0.0; bins * groups * 2 * members],
            groups,
            members,
        }
    }

    /// Floats per bin.
    fn bin_len(&self) -> usize {
        self.groups * 2 * self.members
    }

    /// Bin `bin` as a `groups x 2 members` matrix.
    fn bin(&self, bin: usize) -> &[f32] {
        &self.values[bin * self.bin_len()..][..self.bin_len()]
    }

    /// The spectra of the planes `(group, member)` that `plane(group, member, work)` leaves
    /// in `work.spectrum`. One task per group, which gathers its members' spectra and writes
    /// each bin's run at once: a plane at a time would write its two floats per bin a page
    /// apart, bound by TLB misses.
    fn transform(
        fft: &PlaneFft,
        (groups, members): (usize, usize),
        plane: impl Fn(usize, usize, &mut Work) + Sync,
    ) -> Self {
        let bins = fft.grid.bins();
        let mut spectra = BinMajor::zeros(bins, groups, members);
        let bin_len = spectra.bin_len();
        let out = SharedOut::new(&mut spectra.values);
        (0..groups).into_par_iter().for_each_init(
            || (fft.work(), vec![ZERO; bins * members]),
            |(work, local), g| {
                for m in 0..members {
                    plane(g, m, work);
                    for (bin, &v) in work.spectrum.iter().enumerate() {
                        local[bin * members + m] = v;
                    }
                }
                // SAFETY: group g owns entries `g * 2 members ..` (2 members long) of every
                // bin, which no other task writes; `spectra` outlives the loop.
                let dst = unsafe { out.slice() };
                for (bin, run) in local.chunks(members).enumerate() {
                    let (re, im) =
                        dst[bin * bin_len + g * 2 * members..][..2 * members].split_at_mut(members);
                    for ((r, i), v) in re.iter_mut().zip(im).zip(run) {
                        (*r, *i) = (v.re, v.im);
                    }
                }
            },
        );
        spectra
    }

    /// The spectra of `data`'s real `h x w` planes (NCHW: groups = channels, members =
    /// images), each zero-extended to the grid.
    fn of_images(fft: &PlaneFft, data: &[f32], channels: usize, (h, w): (usize, usize)) -> Self {
        let images = data.len() / (channels * h * w);
        BinMajor::transform(fft, (channels, images), |c, b, work| {
            let plane = &data[(b * channels + c) * h * w..][..h * w];
            fft.forward(
                0..h,
                |y, row| row[..w].copy_from_slice(&plane[y * w..][..w]),
                work,
            );
        })
    }

    /// Calls `plane(group, member, work)` with each plane's spectrum in `work.spectrum`, one
    /// task per group (reading each bin's run at once, as [`BinMajor::transform`] writes).
    fn for_each_plane(&self, fft: &PlaneFft, plane: impl Fn(usize, usize, &mut Work) + Sync) {
        let (bins, bin_len, members) = (fft.grid.bins(), self.bin_len(), self.members);
        (0..self.groups).into_par_iter().for_each_init(
            || (fft.work(), vec![ZERO; bins * members]),
            |(work, local), g| {
                for (bin, run) in local.chunks_mut(members).enumerate() {
                    let (re, im) = self.values[bin * bin_len + g * 2 * members..][..2 * members]
                        .split_at(members);
                    for ((v, &r), &i) in run.iter_mut().zip(re).zip(im) {
                        *v = Complex::new(r, i);
                    }
                }
                for m in 0..members {
                    for (bin, v) in work.spectrum.iter_mut().enumerate() {
                        *v = local[bin * members + m];
                    }
                    plane(g, m, work);
                }
            },
        );
    }

    /// The real planes inverted from these spectra (groups = channels, members = images),
    /// cropped to `h x w` and scaled by `1 / points`, written NCHW into `out`, then given to
    /// `finish(channel, plane)`.
    fn to_planes(
        &self,
        fft: &PlaneFft,
        (h, w): (usize, usize),
        out: &mut [f32],
        finish: impl Fn(usize, &mut [f32]) + Sync,
    ) {
        assert_eq!(out.len(), self.groups * self.members * h * w);
        let scale = 1.0 / fft.grid.points() as f32;
        let channels = self.groups;
        let shared = SharedOut::new(out);
        self.for_each_plane(fft, |c, b, work| {
            // SAFETY: plane (b, c) is written by this call only; `out` outlives the loop.
            let plane = &mut unsafe { shared.slice() }[(b * channels + c) * h * w..][..h * w];
            fft.inverse(
                0..h,
                |y, row| {
                    for (d, &v) in plane[y * w..][..w].iter_mut().zip(row) {
                        *d = v * scale;
                    }
                },
                work,
            );
            finish(c, plane);
        });
    }
}

/// `[-im | re]` of a bin's `rows x 2 images` matrix `[re | im]`: multiplication by `i`.
fn times_i(bin: &[f32], images: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in bin.chunks(2 * images) {
        let (re, im) = row.split_at(images);
        out.extend(im.iter().map(|v| -v));
        out.extend_from_slice(re);
    }
}

/// `[im | -re]` of a bin's `rows x 2 images` matrix `[re | im]`: multiplication by `-i`.
fn times_minus_i(bin: &[f32], images: usize, out: &mut Vec<f32>) {
    out.clear();
    for row in bin.chunks(2 * images) {
        let (re, im) = row.split_at(images);
        out.extend_from_slice(im);
        out.extend(re.iter().map(|v| -v));
    }
}

/// A filter bank `[out, in, k, k]` transformed once for one grid: per bin the `out x 2 in`
/// matrix `[G_re | G_im]`.
#[derive(Clone)]
pub struct FftFilter {
    pub c_out: usize,
    pub c_in: usize,
    pub kernel: usize,
    pub padding: usize,
    pub grid: Grid,
    spectra: Vec<f32>,
}

impl std::fmt::Debug for FftFilter {
    /// The geometry, not the spectra (megabytes of floats).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (o, i, k, g) = (self.c_out, self.c_in, self.kernel, self.grid);
        write!(
            f,
            "FftFilter({o}x{i}, {k}x{k} taps, padding {}, {}x{} grid)",
            self.padding, g.n_h, g.n_w
        )
    }
}

impl FftFilter {
    /// The spectra of `weight` placed for geometry `s`.
    pub fn new(s: &ConvShape, weight: &[f32]) -> Self {
        assert!(
            supports(s),
            "the FFT conv needs stride 1, no dilation, padding < window"
        );
        assert_eq!(
            weight.len(),
            s.weight_len(),
            "fft conv: filter length for {s:?}"
        );
        let grid = Grid::of(s);
        let fft = PlaneFft::new(grid);
        let (k, p) = (s.kernel, s.padding);
        // Tap (my, mx) sits at ((p - my) mod n_h, (p - mx) mod n_w); on a grid smaller than
        // the window several taps share a point and add up.
        let placed = |m: usize, n: usize| (p + n - m % n) % n;
        let mut rows: Vec<usize> = (0..k).map(|my| placed(my, grid.n_h)).collect();
        rows.sort_unstable();
        rows.dedup();
        let spectra = BinMajor::transform(&fft, (s.c_out, s.c_in), |o, i, work| {
            let taps = &weight[(o * s.c_in + i) * k * k..][..k * k];
            let fill = |y: usize, row: &mut [f32]| {
                for my in (0..k).filter(|&my| placed(my, grid.n_h) == y) {
                    for mx in 0..k {
                        row[placed(mx, grid.n_w)] += taps[my * k + mx];
                    }
                }
            };
            fft.forward(rows.iter().copied(), fill, work);
        });
        FftFilter {
            c_out: s.c_out,
            c_in: s.c_in,
            kernel: k,
            padding: p,
            grid,
            spectra: spectra.values,
        }
    }

    /// Whether this filter was transformed for geometry `s`'s grid and window.
    pub fn fits(&self, s: &ConvShape) -> bool {
        (self.c_out, self.c_in, self.kernel, self.padding, self.grid)
            == (s.c_out, s.c_in, s.kernel, s.padding, Grid::of(s))
    }

    fn bin(&self, bin: usize) -> &[f32] {
        let len = self.c_out * 2 * self.c_in;
        &self.spectra[bin * len..][..len]
    }
}

/// The images of a batch in chunks of at most [`IMAGES_PER_CHUNK`].
fn image_chunks(batch: usize) -> impl Iterator<Item = std::ops::Range<usize>> {
    (0..batch)
        .step_by(IMAGES_PER_CHUNK)
        .map(move |start| start..(start + IMAGES_PER_CHUNK).min(batch))
}

/// `c = a . b` for one bin (`accumulate`: `c += a . b`), single-threaded: the bins are the
/// parallel tasks.
#[allow(clippy::too_many_arguments)]
fn product(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    accumulate: bool,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
) {
    sgemm_strided((m, n, k), (c, n, 1), accumulate, a, b, Parallelism::None)
}

/// The forward pass: `[B, C_out, H_out, W_out]`, NCHW, contiguous, then `epilogue` on each
/// output plane (value by value, as [`crate::conv::forward_then`]).
pub fn forward(
    s: &ConvShape,
    x: &[f32],
    filter: &FftFilter,
    bias: &[f32],
    epilogue: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    assert!(
        filter.fits(s),
        "fft conv: filter transformed for another geometry"
    );
    assert_eq!(x.len(), s.input_len(), "fft conv: input length for {s:?}");
    assert_eq!(bias.len(), s.c_out, "fft conv: bias length");
    let fft = PlaneFft::new(filter.grid);
    let (ci, co) = (s.c_in, s.c_out);
    let (in_plane, out_plane) = (s.height * s.width, s.out_pixels());
    let mut out = vec![0.0f32; s.output_len()];
    for images in image_chunks(s.batch) {
        let nb = images.len();
        let xs = BinMajor::of_images(
            &fft,
            &x[images.start * ci * in_plane..][..nb * ci * in_plane],
            ci,
            (s.height, s.width),
        );
        let mut ys = BinMajor::zeros(filter.grid.bins(), co, nb);
        let bin_len = ys.bin_len();
        ys.values.par_chunks_mut(bin_len).enumerate().for_each_init(
            Vec::new,
            |rotated, (bin, y)| {
                let (g, x) = (filter.bin(bin), xs.bin(bin));
                times_i(x, nb, rotated);
                product((co, 2 * nb, ci), y, false, (g, 2 * ci, 1), (x, 2 * nb, 1));
                product(
                    (co, 2 * nb, ci),
                    y,
                    true,
                    (&g[ci..], 2 * ci, 1),
                    (rotated, 2 * nb, 1),
                );
            },
        );
        let chunk_out = &mut out[images.start * co * out_plane..][..nb * co * out_plane];
        ys.to_planes(
            &fft,
            (s.out_height(), s.out_width()),
            chunk_out,
            |o, plane| {
                plane.iter_mut().for_each(|v| *v += bias[o]);
                epilogue(plane);
            },
        );
    }
    out
}

/// The backward pass for the gradients in `wanted` (the bias gradient too), from the output
/// gradient `dy`. The filter spectra are those of the forward's `filter`.
pub fn backward(
    s: &ConvShape,
    x: &[f32],
    filter: &FftFilter,
    dy: &[f32],
    wanted: Wanted,
) -> ConvGrads {
    assert!(
        filter.fits(s),
        "fft conv: filter transformed for another geometry"
    );
    assert_eq!(x.len(), s.input_len(), "fft conv: input length for {s:?}");
    assert_eq!(dy.len(), s.output_len(), "fft conv: output-gradient length");
    let fft = PlaneFft::new(filter.grid);
    let (ci, co, bins) = (s.c_in, s.c_out, filter.grid.bins());
    let (in_plane, out_plane) = (s.height * s.width, s.out_pixels());
    let mut input_grad = wanted.input.then(|| vec![0.0f32; s.input_len()]);
    // Per bin `[DG_re over i | DG_im over i]` for each o, summed over the chunks.
    let mut weight_spectra = wanted.weight.then(|| BinMajor::zeros(bins, co, ci));
    for images in image_chunks(s.batch) {
        let nb = images.len();
        let dys = BinMajor::of_images(
            &fft,
            &dy[images.start * co * out_plane..][..nb * co * out_plane],
            co,
            (s.out_height(), s.out_width()),
        );
        let xs = wanted.weight.then(|| {
            BinMajor::of_images(
                &fft,
                &x[images.start * ci * in_plane..][..nb * ci * in_plane],
                ci,
                (s.height, s.width),
            )
        });
        let mut dxs = wanted.input.then(|| BinMajor::zeros(bins, ci, nb));
        let dx_bins: Vec<Option<&mut [f32]>> = match dxs.as_mut() {
            Some(d) => d.values.chunks_mut(ci * 2 * nb).map(Some).collect(),
            None => (0..bins).map(|_| None).collect(),
        };
        let dw_bins: Vec<Option<&mut [f32]>> = match weight_spectra.as_mut() {
            Some(d) => d.values.chunks_mut(co * 2 * ci).map(Some).collect(),
            None => (0..bins).map(|_| None).collect(),
        };
        dx_bins
            .into_par_iter()
            .zip(dw_bins)
            .enumerate()
            .for_each_init(Vec::new, |turned, (bin, (dx, dw))| {
                let d = dys.bin(bin);
                times_minus_i(d, nb, turned);
                if let Some(dx) = dx {
                    let g = filter.bin(bin);
                    // G_re^T and G_im^T: element (i, o) at o * 2 ci + i (+ ci).
                    product((ci, 2 * nb, co), dx, false, (g, 1, 2 * ci), (d, 2 * nb, 1));
                    product(
                        (ci, 2 * nb, co),
                        dx,
                        true,
                        (&g[ci..], 1, 2 * ci),
                        (turned, 2 * nb, 1),
                    );
                }
                if let (Some(dw), Some(xs)) = (dw, xs.as_ref()) {
                    // [X_re | X_im]^T: element (column, i) at i * 2 nb + column.
                    let xt = (xs.bin(bin), 1, 2 * nb);
                    // The real parts are columns 0..ci of each row, the imaginary ones ci..2 ci.
                    let (none, d_rs) = (Parallelism::None, 2 * nb);
                    // The first chunk writes without reading: reading the fresh (zero-page)
                    // buffer first would make every write a copy-on-write fault with a TLB
                    // shootdown, which cost more than the products themselves.
                    let sum = images.start > 0;
                    sgemm_strided(
                        (co, ci, 2 * nb),
                        (dw, 2 * ci, 1),
                        sum,
                        (d, d_rs, 1),
                        xt,
                        none,
                    );
                    let im = &mut dw[ci..];
                    sgemm_strided(
                        (co, ci, 2 * nb),
                        (im, 2 * ci, 1),
                        sum,
                        (turned, d_rs, 1),
                        xt,
                        none,
                    );
                }
            });
        if let (Some(dxs), Some(dx)) = (dxs, input_grad.as_mut()) {
            let chunk = &mut dx[images.start * ci * in_plane..][..nb * ci * in_plane];
            dxs.to_planes(&fft, (s.height, s.width), chunk, |_, _| {});
        }
    }
    let weight = weight_spectra.map(|spectra| filter_taps(s, &fft, &spectra));
    let bias = wanted.bias.then(|| {
        let mut db = vec![0.0f32; co];
        for image in dy.chunks(co * out_plane) {
            for (acc, plane) in db.iter_mut().zip(image.chunks(out_plane)) {
                *acc += crate::sum_of(plane, |v| v);
            }
        }
        db
    });
    ConvGrads {
        input: input_grad,
        weight,
        bias,
    }
}

/// The filter gradient `[out, in, k, k]` from its spectra (`[bin][o][re over i | im over i]`):
/// each pair's inverse transform, read at the taps' grid points.
fn filter_taps(s: &ConvShape, fft: &PlaneFft, spectra: &BinMajor) -> Vec<f32> {
    let (k, p, g) = (s.kernel, s.padding, fft.grid);
    let scale = 1.0 / g.points() as f32;
    let placed = |m: usize, n: usize| (p + n - m % n) % n;
    let rows: Vec<usize> = (0..k).map(|my| placed(my, g.n_h)).collect();
    let mut dw = vec![0.0f32; s.weight_len()];
    let shared = SharedOut::new(&mut dw);
    spectra.for_each_plane(fft, |o, i, work| {
        // SAFETY: pair (o, i)'s taps are written by this call only; `dw` outlives the loop.
        let taps = &mut unsafe { shared.slice() }[(o * s.c_in + i) * k * k..][..k * k];
        let mut taps_at_row = |y: usize, row: &[f32]| {
            for my in (0..k).filter(|&my| rows[my] == y) {
                for mx in 0..k {
                    taps[my * k + mx] = row[placed(mx, g.n_w)] * scale;
                }
            }
        };
        let mut distinct = rows.clone();
        distinct.sort_unstable();
        distinct.dedup();
        fft.inverse(distinct, &mut taps_at_row, work);
    });
    dw
}

#[cfg(test)]
mod tests;
