//! Winograd F(2x2, 3x3) for 3x3 convolutions with stride 1 and no dilation (Lavin and Gray
//! 2016): the forward, the input gradient (itself such a convolution) and the filter gradient,
//! for training and the frozen inference model. Each 2x2 output tile comes from a
//! 4x4 input patch d:
//!
//! ```text
//! Y = A^T [ (G g G^T) (.) (B^T d B) ] A        (.) elementwise, 16 products
//! ```
//!
//! so a tile costs 16 multiplications per (input, output) channel pair instead of 36. The 16
//! elementwise products over channels are 16 GEMMs `M[xi] = U[xi] [out x in] . V[xi] [in x
//! tiles]`, run on chunks of tiles that stay in cache, in parallel over chunks.
//!
//! ```text
//! B^T = | 1  0 -1  0 |    G = |  1    0    0  |    A^T = | 1  1  1  0 |
//!       | 0  1  1  0 |        | 1/2  1/2  1/2 |          | 0  1 -1 -1 |
//!       | 0 -1  1  0 |        | 1/2 -1/2  1/2 |
//!       | 0  1  0 -1 |        |  0    0    1  |
//! ```
//!
//! F(4x4, 3x3) ([`f4`], [`Tiling`]) computes 4x4 tiles from 6x6 patches with 36 products,
//! 2.25 per output instead of 4; [`forward`] picks it for outputs whose tiles it covers with
//! little waste (28 x 28, not 14 x 14), for the forward and the input gradient. The filter
//! gradient stays F2: summed over a batch in the transformed domain, F4's rounding error
//! came within 1e-5 of the largest value.
//!
//! 4x4 windows run as F(3x3, 4x4) ([`f3x4`]): 3x3 tiles from the same 6x6 patches, 4
//! products per output instead of 16, for the forward and, from a batch of
//! [`MIN_BATCH_4X4_INPUT_GRAD`], the input gradient (rounding error up to 3.1e-6 and 2.6e-6 of
//! the largest value on a 40 -> 40 layer, as F4's up to 2.6e-6). Their filter gradient is
//! not Winograd: [`crate::conv::filter_grad`] computes it.
//!
//! This is the cross-correlation that conv layers compute, as [`crate::conv`] does; the
//! tests compare the two.

use std::cell::RefCell;
use std::ops::Range;
use std::sync::OnceLock;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::conv::{ConvShape, sgemm};
use crate::{Isa, SharedOut, par_ranges};

#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod f3x4;
mod f4;

/// Tiles per task: the chunk's transformed input and products (16 x channels x tiles each)
/// stay within the L2 cache for tens of channels.
const TILES_PER_TASK: usize = 128;

/// The output tile a Winograd pass computes at once.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Tiling {
    /// F(2x2, 3x3): 2x2 outputs from 4x4 inputs, 16 products (this module's matrices).
    F2,
    /// F(4x4, 3x3): 4x4 outputs from 6x6 inputs, 36 products ([`f4`]'s matrices): 2.25
    /// multiplications per output instead of 4, at ~8x F2's float32 rounding error.
    F4,
    /// F(3x3, 4x4), for 4x4 windows: 3x3 outputs from 6x6 inputs, 36 products ([`f3x4`]'s
    /// matrices): 4 multiplications per output instead of 16.
    F3x4,
}

impl Tiling {
    /// Output rows and columns per tile.
    pub fn size(self) -> usize {
        match self {
            Tiling::F2 => 2,
            Tiling::F4 => 4,
            Tiling::F3x4 => f3x4::SIZE,
        }
    }

    /// The window side it convolves with.
    pub fn window(self) -> usize {
        match self {
            Tiling::F2 | Tiling::F4 => 3,
            Tiling::F3x4 => f3x4::WINDOW,
        }
    }

    /// Transformed positions per tile (products per channel pair): (size + window - 1)^2.
    pub fn positions(self) -> usize {
        (self.size() + self.window() - 1).pow(2)
    }

    /// The tiling for a `kernel x kernel` window and an `ho x wo` output: F(3x3, 4x4) for 4x4
    /// windows, [`Tiling::for_output`] for 3x3 ones.
    pub fn for_window(kernel: usize, ho: usize, wo: usize) -> Tiling {
        if kernel == f3x4::WINDOW {
            Tiling::F3x4
        } else {
            Tiling::for_output(ho, wo)
        }
    }

    /// The faster tiling for an `ho x wo` output: F4 where, counting the part of the last
    /// tiles past the border, it needs at most 2/3 of F2's products (28 x 28, 12 x 12 or
    /// 7 x 7: 56%), else F2 (14 x 14: 73%; 9 x 9: 81%). F4's transforms cost more per output,
    /// so fewer products alone do not pay: a 40 -> 40 layer at batch 128 took 7.6 ms with F4
    /// against 10.7 ms with F2 at 28 x 28, but 2.7 against 2.5 ms at 14 x 14
    /// (`winograd_profile`, AMD EPYC Zen 4, 2 threads).
    pub fn for_output(ho: usize, wo: usize) -> Tiling {
        let products = |t: Tiling| ho.div_ceil(t.size()) * wo.div_ceil(t.size()) * t.positions();
        if 3 * products(Tiling::F4) <= 2 * products(Tiling::F2) {
            Tiling::F4
        } else {
            Tiling::F2
        }
    }
}

/// A filter bank `[out, in, k, k]` (k = 3 or 4), transformed once for each tiling it is used
/// with: `U[xi][out][in] = (G g G^T)[xi]`.
#[derive(Clone, Debug)]
pub struct WinogradFilter {
    pub c_out: usize,
    pub c_in: usize,
    /// The window side, 3 or 4.
    pub kernel: usize,
    weight: Vec<f32>,
    u2: OnceLock<Vec<f32>>,
    u4: OnceLock<Vec<f32>>,
    u3x4: OnceLock<Vec<f32>>,
}

/// Whether [`forward`] computes this geometry: a 3x3 or 4x4 window, stride 1, no dilation.
pub fn supports(s: &ConvShape) -> bool {
    (s.kernel == 3 || s.kernel == f3x4::WINDOW) && s.stride == 1 && s.dilation == 1
}

/// Input and output channels from which Winograd runs faster than im2col + GEMM here: with
/// fewer, the transforms (per input channel) or the small GEMMs cost more than the
/// multiplications they save (a lifting conv's input gradient, 40 -> 1, took twice as long).
pub const MIN_CHANNELS: usize = 8;

/// Whether a layer with this window and these channel counts is one Winograd speeds up
/// (given a batch it [`suits`]): a 3x3 or 4x4 window, stride 1, no dilation,
/// >= [`MIN_CHANNELS`] channels in and out.
pub fn suits_layer(
    kernel: usize,
    stride: usize,
    dilation: usize,
    c_in: usize,
    c_out: usize,
) -> bool {
    (kernel == 3 || kernel == f3x4::WINDOW)
        && stride == 1
        && dilation == 1
        && c_in.min(c_out) >= MIN_CHANNELS
}

/// Whether a convolution of this geometry runs faster as Winograd: a layer it
/// [`suits_layer`], at any batch (tasks take rows of tiles, so a single image is split across
/// threads too).
pub fn suits(s: &ConvShape) -> bool {
    suits_layer(s.kernel, s.stride, s.dilation, s.c_in, s.c_out)
}

/// Whether [`weight_grad`] computes this convolution's filter gradient faster: 3x3 windows
/// that [`suits`] (F2 only; see the module's notes).
pub fn weight_grad_suits(s: &ConvShape) -> bool {
    s.kernel == 3 && suits(s)
}

/// The input gradient of a k x k (k = 3 or 4), stride-1 convolution with padding <= k - 1,
/// `dx [B, in, H, W]`, from `dy [B, out, H', W']`: itself a k x k convolution of dy with the
/// filter turned by 180 degrees, in and out channels swapped, and padding k - 1 - p.
pub fn input_grad(s: &ConvShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    input_grad_tiled(
        s,
        weight,
        dy,
        Tiling::for_window(s.kernel, s.height, s.width),
    )
}

/// [`input_grad`] with a given tiling.
pub(crate) fn input_grad_tiled(
    s: &ConvShape,
    weight: &[f32],
    dy: &[f32],
    tiling: Tiling,
) -> Vec<f32> {
    assert!(
        supports(s) && s.padding < s.kernel,
        "a 3x3 or 4x4 stride-1 conv, padding < its window"
    );
    let taps = s.kernel * s.kernel;
    let mut turned = vec![0.0f32; weight.len()];
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            for k in 0..taps {
                turned[(ci * s.c_out + co) * taps + k] =
                    weight[(co * s.c_in + ci) * taps + taps - 1 - k];
            }
        }
    }
    let filter = WinogradFilter::new(&turned, s.c_in, s.c_out);
    forward_tiled(&adjoint(s), dy, &filter, &vec![0.0; s.c_in], |_| {}, tiling)
}

/// The convolution [`input_grad`] runs: dy's geometry, channels swapped, padding k - 1 - p.
fn adjoint(s: &ConvShape) -> ConvShape {
    ConvShape {
        c_in: s.c_out,
        c_out: s.c_in,
        height: s.out_height(),
        width: s.out_width(),
        padding: s.kernel - 1 - s.padding,
        ..*s
    }
}

/// Whether this convolution's input gradient runs faster with [`input_grad`]: padding below
/// the window and the adjoint convolution [`suits`] Winograd; for a 4x4 window (as
/// F(3x3, 4x4)), a batch of at least [`MIN_BATCH_4X4_INPUT_GRAD`].
pub fn input_grad_suits(s: &ConvShape) -> bool {
    let window = match s.kernel {
        3 => true,
        f3x4::WINDOW => s.batch >= MIN_BATCH_4X4_INPUT_GRAD,
        _ => false,
    };
    window && s.padding < s.kernel && suits(&adjoint(s))
}

/// The batch from which a 4x4 window's input gradient runs faster as F(3x3, 4x4) than as
/// im2col + GEMM. Below it, transforming the turned filter (36 positions per channel pair)
/// costs more than the products save. `abusing-p4`'s last conv (40 -> 40, 14 x 14 -> 11 x 11;
/// both gradients, AMD EPYC Zen 3, 2 threads, three runs): batch 8 1.2-2.2 ms as im2col
/// against 1.6-2.3, batch 16 3.2-4.0 against 3.8-3.9, batch 32 6.3-7.7 against 5.8-6.6,
/// batch 128 22-29 against 16-24 ms.
pub const MIN_BATCH_4X4_INPUT_GRAD: usize = 32;

/// The filter gradient of a 3x3, stride-1 convolution, `dW [out, in, 3, 3]`, from its input
/// `x [B, in, H, W]` and output gradient `dy [B, out, H', W']`. The forward is linear in the
/// transformed filter U, so per tile `dU = (A dY A^T) (.) V` (V = B^T d B as in the forward),
/// summed over tiles as 16 GEMMs `dU[xi] [out x in] += dM[xi] [out x tiles] . V[xi]^T`; then
/// `dW = G^T dU G`. Each thread sums its own share of the tiles.
pub fn weight_grad(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(
        supports(s) && s.kernel == 3,
        "Winograd F(2,3) needs a 3x3 window, stride 1, dilation 1"
    );
    assert_eq!(x.len(), s.input_len(), "x is [B, in, H, W]");
    assert_eq!(dy.len(), s.output_len(), "dy is [B, out, H', W']");
    // F2 only: summed over a batch's tiles, F4's filter gradient had 9e-6 of the largest
    // value's rounding error (F2: 1.6e-6), too close to the 1e-5 the tests allow.
    let tiles = TileGrid::new(s, Tiling::F2);
    let rows = s.batch * tiles.rows;
    let threads = rayon::current_num_threads();
    let rows_per_share = rows.div_ceil(threads).max(1);
    // Longer runs of tiles than the forward's: each (out, in) dot product ends in a
    // horizontal sum, paid once per task.
    let rows_per_task = (4 * TILES_PER_TASK / tiles.cols).clamp(1, rows_per_share);
    let stages = Stages::for_this_cpu();
    let du_len = 16 * s.c_out * s.c_in;
    let partials: Vec<Vec<f32>> = par_ranges(rows, rows_per_share)
        .map(|share| {
            let mut du = vec![0.0f32; du_len];
            for start in share.clone().step_by(rows_per_task) {
                let task = start..(start + rows_per_task).min(share.end);
                let n = tiles.stride(task.len());
                with_task_scratch(16 * s.c_in * n, 16 * s.c_out * n, |v, dm| {
                    // SAFETY (the three stage calls): chosen for this CPU (Stages::for_this_cpu).
                    unsafe { (stages.transform_input)(s, x, &tiles, task.clone(), v) };
                    unsafe { (stages.transform_output_grad)(s, dy, &tiles, task.clone(), dm) };
                    for xi in 0..16 {
                        unsafe {
                            (stages.multiply_transposed)(
                                (s.c_out, s.c_in, n, task.len() * tiles.cols),
                                &dm[xi * s.c_out * n..][..s.c_out * n],
                                &v[xi * s.c_in * n..][..s.c_in * n],
                                &mut du[xi * s.c_out * s.c_in..][..s.c_out * s.c_in],
                            )
                        };
                    }
                })
            }
            du
        })
        .collect();
    let mut du = vec![0.0f32; du_len];
    for part in &partials {
        du.iter_mut().zip(part).for_each(|(a, b)| *a += b);
    }
    filter_from_transformed(&du, s.c_out, s.c_in)
}

/// `dW = G^T dU G` per (out, in) pair: the adjoint of [`WinogradFilter::new`].
fn filter_from_transformed(du: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    // G^T [d0, d1, d2, d3]: the adjoint of `g_rows`.
    let gt = |d: [f32; 4]| {
        [
            d[0] + 0.5 * (d[1] + d[2]),
            0.5 * (d[1] - d[2]),
            0.5 * (d[1] + d[2]) + d[3],
        ]
    };
    let mut dw = vec![0.0f32; c_out * c_in * 9];
    for co in 0..c_out {
        for ci in 0..c_in {
            let at = |r: usize, c: usize| du[((r * 4 + c) * c_out + co) * c_in + ci];
            // Rows of dU G (4 x 3), then G^T (dU G) (3 x 3).
            let rows: Vec<[f32; 3]> = (0..4)
                .map(|r| gt([at(r, 0), at(r, 1), at(r, 2), at(r, 3)]))
                .collect();
            for kx in 0..3 {
                let col = gt([rows[0][kx], rows[1][kx], rows[2][kx], rows[3][kx]]);
                for (ky, value) in col.iter().enumerate() {
                    dw[(co * c_in + ci) * 9 + ky * 3 + kx] = *value;
                }
            }
        }
    }
    dw
}

/// `[g0, g1, g2] -> G [g0, g1, g2]`.
#[inline(always)]
fn g_rows(g: [f32; 3]) -> [f32; 4] {
    [
        g[0],
        0.5 * (g[0] + g[1] + g[2]),
        0.5 * (g[0] - g[1] + g[2]),
        g[2],
    ]
}

impl WinogradFilter {
    /// The filter `weight [c_out, c_in, k, k]` (k = 3 or 4, from its length), transformed
    /// when first used.
    pub fn new(weight: &[f32], c_out: usize, c_in: usize) -> Self {
        let taps = weight.len() / (c_out * c_in).max(1);
        assert!(
            (taps == 9 || taps == 16) && weight.len() == c_out * c_in * taps,
            "weight is [out, in, 3, 3] or [out, in, 4, 4]"
        );
        WinogradFilter {
            c_out,
            c_in,
            kernel: if taps == 9 { 3 } else { 4 },
            weight: weight.to_vec(),
            u2: OnceLock::new(),
            u4: OnceLock::new(),
            u3x4: OnceLock::new(),
        }
    }

    /// The transformed filter for `tiling`: `[positions][out][in]`.
    fn transformed(&self, tiling: Tiling) -> &[f32] {
        let (weight, c_out, c_in) = (&self.weight, self.c_out, self.c_in);
        assert_eq!(
            tiling.window(),
            self.kernel,
            "{tiling:?} for a {0}x{0} filter",
            self.kernel
        );
        match tiling {
            Tiling::F3x4 => self
                .u3x4
                .get_or_init(|| f3x4::transform_filter(weight, c_out, c_in)),
            Tiling::F2 => self
                .u2
                .get_or_init(|| transform_filter(weight, c_out, c_in)),
            Tiling::F4 => self
                .u4
                .get_or_init(|| f4::transform_filter(weight, c_out, c_in)),
        }
    }
}

/// F2's `U[xi][out][in] = (G g G^T)[xi]` for `weight [out, in, 3, 3]`.
fn transform_filter(weight: &[f32], c_out: usize, c_in: usize) -> Vec<f32> {
    let mut u = vec![0.0f32; 16 * c_out * c_in];
    for co in 0..c_out {
        for ci in 0..c_in {
            let g = &weight[(co * c_in + ci) * 9..][..9];
            // G g: 4 rows of 3, then (G g) G^T: 4 x 4.
            let cols: Vec<[f32; 4]> = (0..3)
                .map(|kx| g_rows([g[kx], g[3 + kx], g[6 + kx]]))
                .collect();
            for r in 0..4 {
                let row = g_rows([cols[0][r], cols[1][r], cols[2][r]]);
                for (c, v) in row.iter().enumerate() {
                    u[((r * 4 + c) * c_out + co) * c_in + ci] = *v;
                }
            }
        }
    }
    u
}

/// The convolution of `x [B, in, H, W]` with the transformed filter, plus `bias` per output
/// channel, then `epilogue` on the output (value by value; it may be given any part), with
/// the tiling [`Tiling::for_output`] picks.
pub fn forward(
    s: &ConvShape,
    x: &[f32],
    filter: &WinogradFilter,
    bias: &[f32],
    epilogue: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    let tiling = Tiling::for_window(s.kernel, s.out_height(), s.out_width());
    forward_tiled(s, x, filter, bias, epilogue, tiling)
}

/// [`forward`] with a given tiling.
///
/// Tasks take whole rows of tiles; each block of [`TB`] tiles reads its runs of input straight
/// from `x`, with zeros for the padding only at the borders ([`input_run`]).
pub fn forward_tiled(
    s: &ConvShape,
    x: &[f32],
    filter: &WinogradFilter,
    bias: &[f32],
    epilogue: impl Fn(&mut [f32]) + Sync,
    tiling: Tiling,
) -> Vec<f32> {
    assert!(
        supports(s) && s.kernel == tiling.window(),
        "Winograd {tiling:?} needs a {0}x{0} window, stride 1, dilation 1",
        tiling.window()
    );
    assert_eq!(
        (filter.c_in, filter.c_out),
        (s.c_in, s.c_out),
        "filter channels"
    );
    assert_eq!(x.len(), s.input_len(), "x is [B, in, H, W]");
    assert_eq!(bias.len(), s.c_out, "one bias per output channel");
    let (ho, wo) = (s.out_height(), s.out_width());
    let (size, positions) = (tiling.size(), tiling.positions());
    let tiles = TileGrid::new(s, tiling);
    let rows = s.batch * tiles.rows;
    let threads = rayon::current_num_threads();
    // As many tiles per task whatever the tiling: F4's V and M are 2.25x larger per tile, but
    // fewer tiles per task re-read U (36 x out x in) more often; with 16/36 as many tiles, a
    // 28 x 28 layer ran 40% slower.
    let rows_per_task = (TILES_PER_TASK / tiles.cols)
        .min(rows.div_ceil(threads))
        .max(1);
    let u = filter.transformed(tiling);
    // No zero fill: `transform_output` writes every output value (the tiles cover the
    // output), and a separate pass over it cost 3% of a frozen run.
    let mut out = Vec::with_capacity(s.output_len());
    let shared = SharedOut::spare(&mut out, s.output_len());
    let stages = Stages::for_this_cpu();
    let (transform_input, transform_output) = match tiling {
        Tiling::F2 => (stages.transform_input, stages.transform_output),
        Tiling::F4 => (stages.transform_input_f4, stages.transform_output_f4),
        Tiling::F3x4 => (stages.transform_input_f3x4, stages.transform_output_f3x4),
    };
    par_ranges(rows, rows_per_task).for_each(|rows| {
        // Rows of V and M hold the task's tiles plus at least TB of slack, so that every block
        // of TB tiles is read and written whole (see transform_input and TileGrid::stride).
        let n = tiles.stride(rows.len());
        with_task_scratch(positions * s.c_in * n, positions * s.c_out * n, |v, m| {
            // SAFETY (the three stage calls): chosen for this CPU (Stages::for_this_cpu).
            unsafe { transform_input(s, x, &tiles, rows.clone(), v) };
            for xi in 0..positions {
                unsafe {
                    (stages.multiply)(
                        (s.c_out, s.c_in, n, rows.len() * tiles.cols),
                        &u[xi * s.c_out * s.c_in..][..s.c_out * s.c_in],
                        &v[xi * s.c_in * n..][..s.c_in * n],
                        &mut m[xi * s.c_out * n..][..s.c_out * n],
                    )
                };
            }
            // SAFETY: this task writes only the output rows of its own rows of tiles.
            let out = unsafe { shared.slice() };
            unsafe { transform_output(s, m, bias, &tiles, rows.clone(), out) };
            // The epilogue on those rows while they are in cache.
            for row in rows {
                let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
                let lines = size * tile_row..(size * tile_row + size).min(ho);
                for co in 0..s.c_out {
                    let plane = (image * s.c_out + co) * ho * wo;
                    epilogue(&mut out[plane + lines.start * wo..plane + lines.end * wo]);
                }
            }
        })
    });
    // SAFETY: the tasks wrote every output value (above).
    unsafe { out.set_len(s.output_len()) };
    out
}

thread_local! {
    /// A task's transformed input and products (V and M, or V and dM in the filter gradient),
    /// kept per thread: a fresh, zero-filled pair per task cost 4% of a single image's frozen
    /// run.
    static TASK_SCRATCH: RefCell<(Vec<f32>, Vec<f32>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// `f` on this thread's V and M (or dM) scratch, `v_len` and `m_len` values long.
fn with_task_scratch<R>(
    v_len: usize,
    m_len: usize,
    f: impl FnOnce(&mut [f32], &mut [f32]) -> R,
) -> R {
    TASK_SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut pair) => {
            let (v, m) = &mut *pair;
            for (buf, len) in [(&mut *v, v_len), (&mut *m, m_len)] {
                if buf.len() < len {
                    buf.resize(len, 0.0);
                }
            }
            f(&mut v[..v_len], &mut m[..m_len])
        }
        // Only if a task ever ran inside another on this thread.
        Err(_) => f(&mut vec![0.0; v_len], &mut vec![0.0; m_len]),
    })
}

/// The output tiles of one image, and the channels of the layer's V and M.
struct TileGrid {
    rows: usize,
    cols: usize,
    channels: [usize; 2],
}

impl TileGrid {
    fn new(s: &ConvShape, tiling: Tiling) -> Self {
        TileGrid {
            rows: s.out_height().div_ceil(tiling.size()),
            cols: s.out_width().div_ceil(tiling.size()),
            channels: [s.c_in, s.c_out],
        }
    }

    /// `n`, the values per row of a task's V and M for `rows` rows of tiles: the tiles, [`TB`]
    /// of slack, and then the fewest more (under 64) for the rows of a plane (`n` apart) and
    /// the planes (`channels x n` apart) to spread over the sets of the L1 cache. At n = 512
    /// (the filter gradient of a 28 x 28 layer) all 16 planes began in one set, and the pass
    /// ran 17-30% slower for 16-64 channels (AMD Zen 3).
    fn stride(&self, rows: usize) -> usize {
        let least = rows * self.cols + TB;
        (least..least + 64)
            .find(|&n| spreads(n) && self.channels.iter().all(|&c| spreads(c * n)))
            .unwrap_or(least)
    }
}

/// Whether 16 rows `stride` floats apart start in at least 8 different sets of a 64-set L1
/// cache of 64-byte lines (x86 CPUs since Skylake and Zen: 32 KB of 8 ways, or 48 KB of 12):
/// at most two rows in a set, where rows a power of two apart would all fall in one or two.
fn spreads(stride: usize) -> bool {
    const SETS: usize = 64;
    const FLOATS_PER_LINE: usize = 16;
    let mut sets = 0u64;
    for k in 0..16 {
        sets |= 1 << (k * stride / FLOATS_PER_LINE % SETS);
    }
    sets.count_ones() >= 8
}

/// Values of one input row a block of [`TB`] tiles reads: tile `c0 + l` reads padded columns
/// `2 (c0 + l) .. 2 (c0 + l) + 4`.
const RUN: usize = 2 * TB + 2;

/// The `LEN` values from padded column `x0` of an input row `row` (`W` values, padded by
/// `padding` zeros on each side), in `buf`. Reading the input in place saves a padded copy of
/// it, a pass over memory that cost 9% of a frozen run.
#[inline(always)]
fn input_run<'a, const LEN: usize>(
    s: &ConvShape,
    row: &[f32],
    x0: usize,
    buf: &'a mut [f32; LEN],
) -> &'a [f32; LEN] {
    let (w, p) = (s.width, s.padding);
    buf.fill(0.0);
    // Padded columns start..end hold the image's columns start - p..end - p.
    let (start, end) = (x0.max(p), (x0 + LEN).min(p + w));
    if start < end {
        buf[start - x0..end - x0].copy_from_slice(&row[start - p..end - p]);
    }
    buf
}

/// Tiles transformed together, one per lane of the [`Lanes`] arrays the arithmetic runs on.
const TB: usize = 8;
type Lanes = [f32; TB];

#[inline(always)]
fn lanes(f: impl Fn(usize) -> f32) -> Lanes {
    std::array::from_fn(f)
}

/// B^T applied to four rows of lanes.
#[inline(always)]
fn bt_lanes(d: [&Lanes; 4]) -> [Lanes; 4] {
    [
        lanes(|l| d[0][l] - d[2][l]),
        lanes(|l| d[1][l] + d[2][l]),
        lanes(|l| d[2][l] - d[1][l]),
        lanes(|l| d[1][l] - d[3][l]),
    ]
}

/// A^T applied to four rows of lanes.
#[inline(always)]
fn at_lanes(m: [&Lanes; 4]) -> [Lanes; 2] {
    [
        lanes(|l| m[0][l] + m[1][l] + m[2][l]),
        lanes(|l| m[1][l] - m[2][l] - m[3][l]),
    ]
}

/// `V[xi][ci][t] = (B^T d B)[xi]` for the 4x4 input patch d of each tile t in the rows of
/// tiles `rows` (tile t = (row - rows.start) * cols + column), [`TB`] tiles at a time, so that
/// each of the 16 rows of V is written in runs.
fn transform_input(
    s: &ConvShape,
    x: &[f32],
    tiles: &TileGrid,
    rows: std::ops::Range<usize>,
    v: &mut [f32],
) {
    let n = tiles.stride(rows.len());
    let plane_len = s.height * s.width;
    let mut buf = [0.0f32; RUN];
    for ci in 0..s.c_in {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = &x[(image * s.c_in + ci) * plane_len..][..plane_len];
            for c0 in (0..tiles.cols).step_by(TB) {
                // d[a * 4 + b][lane]: the patches of TB tiles side by side; tile c0 + l reads
                // run[2 l + b] of padded row 2 tile_row + a.
                let mut d = [[0.0f32; TB]; 16];
                for a in 0..4 {
                    // Padded rows outside the image stay zero.
                    let Some(y) = (2 * tile_row + a).checked_sub(s.padding) else {
                        continue;
                    };
                    if y < s.height {
                        let run = input_run(s, &plane[y * s.width..][..s.width], 2 * c0, &mut buf);
                        for b in 0..4 {
                            d[a * 4 + b] = lanes(|l| run[2 * l + b]);
                        }
                    }
                }
                // B^T d: combine rows, per column b; then (B^T d) B: columns, per row a.
                let mut half = [[0.0f32; TB]; 16];
                for b in 0..4 {
                    let out = bt_lanes([&d[b], &d[4 + b], &d[8 + b], &d[12 + b]]);
                    for (a, lanes) in out.iter().enumerate() {
                        half[a * 4 + b] = *lanes;
                    }
                }
                let t0 = r * tiles.cols + c0;
                for a in 0..4 {
                    let h = &half[a * 4..a * 4 + 4];
                    let out = bt_lanes([&h[0], &h[1], &h[2], &h[3]]);
                    for (b, lanes) in out.iter().enumerate() {
                        // All TB lanes, as one fixed-length (inlined) copy: past the row's last
                        // tile they land on the next row's first tiles, written after this
                        // one, or in the slack after the task's last tile.
                        let dst = &mut v[((a * 4 + b) * s.c_in + ci) * n + t0..][..TB];
                        let dst: &mut Lanes = dst.try_into().expect("TB values");
                        *dst = *lanes;
                    }
                }
            }
        }
    }
}

/// `Y = A^T M A + bias` for each tile in the rows of tiles `rows`, written where it lies inside
/// the output, [`TB`] tiles at a time, reading the 16 rows of M in runs.
fn transform_output(
    s: &ConvShape,
    m: &[f32],
    bias: &[f32],
    tiles: &TileGrid,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = tiles.stride(rows.len());
    for co in 0..s.c_out {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = &mut out[(image * s.c_out + co) * ho * wo..][..ho * wo];
            for c0 in (0..tiles.cols).step_by(TB) {
                let count = (tiles.cols - c0).min(TB);
                let t0 = r * tiles.cols + c0;
                let mut mm = [[0.0f32; TB]; 16];
                for (xi, lanes) in mm.iter_mut().enumerate() {
                    // All TB lanes (only `count` are used): see the slack in `forward`.
                    *lanes = m[(xi * s.c_out + co) * n + t0..][..TB]
                        .try_into()
                        .expect("TB values");
                }
                // A^T M: combine rows, per column b; then (A^T M) A per output row i.
                let mut half = [[[0.0f32; TB]; 4]; 2];
                for b in 0..4 {
                    let y = at_lanes([&mm[b], &mm[4 + b], &mm[8 + b], &mm[12 + b]]);
                    half[0][b] = y[0];
                    half[1][b] = y[1];
                }
                let x0 = 2 * c0;
                for (i, h) in half.iter().enumerate() {
                    let oy = 2 * tile_row + i;
                    if oy >= ho {
                        continue;
                    }
                    let y = at_lanes([&h[0], &h[1], &h[2], &h[3]]);
                    let dst = &mut plane[oy * wo..][..wo];
                    if x0 + 2 * TB <= wo {
                        let dst: &mut [f32; 2 * TB] =
                            (&mut dst[x0..x0 + 2 * TB]).try_into().expect("2 TB values");
                        for l in 0..TB {
                            dst[2 * l] = y[0][l] + bias[co];
                            dst[2 * l + 1] = y[1][l] + bias[co];
                        }
                    } else {
                        for l in 0..count {
                            for (j, yj) in y.iter().enumerate() {
                                if x0 + 2 * l + j < wo {
                                    dst[x0 + 2 * l + j] = yj[l] + bias[co];
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

/// `dM[xi][co][t] = (A dY A^T)[xi]` for the 2x2 output-gradient tile dY of each tile t in
/// the rows of tiles `rows` (as in [`transform_input`]); outputs past the border count as 0.
fn transform_output_grad(
    s: &ConvShape,
    dy: &[f32],
    tiles: &TileGrid,
    rows: std::ops::Range<usize>,
    dm: &mut [f32],
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = tiles.stride(rows.len());
    // A [p, q] for lanes of p and q: [p, p + q, p - q, -q].
    let a_lanes = |p: &Lanes, q: &Lanes| -> [Lanes; 4] {
        [
            *p,
            lanes(|l| p[l] + q[l]),
            lanes(|l| p[l] - q[l]),
            lanes(|l| -q[l]),
        ]
    };
    for co in 0..s.c_out {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = &dy[(image * s.c_out + co) * ho * wo..][..ho * wo];
            for c0 in (0..tiles.cols).step_by(TB) {
                let x0 = 2 * c0;
                // g[i][j][lane]: output row 2 tile_row + i, column x0 + 2 lane + j.
                let mut g = [[[0.0f32; TB]; 2]; 2];
                for (i, gi) in g.iter_mut().enumerate() {
                    let oy = 2 * tile_row + i;
                    if oy >= ho {
                        continue;
                    }
                    let src = &plane[oy * wo..][..wo];
                    if x0 + 2 * TB <= wo {
                        let run: &[f32; 2 * TB] =
                            src[x0..x0 + 2 * TB].try_into().expect("2 TB values");
                        gi[0] = lanes(|l| run[2 * l]);
                        gi[1] = lanes(|l| run[2 * l + 1]);
                    } else {
                        for (j, gij) in gi.iter_mut().enumerate() {
                            *gij = lanes(|l| src.get(x0 + 2 * l + j).copied().unwrap_or(0.0));
                        }
                    }
                }
                // A dY: rows of the 4 x 2 result, per column j; then (A dY) A^T per row a.
                let cols = [a_lanes(&g[0][0], &g[1][0]), a_lanes(&g[0][1], &g[1][1])];
                let t0 = r * tiles.cols + c0;
                for a in 0..4 {
                    let out = a_lanes(&cols[0][a], &cols[1][a]);
                    for (b, lanes) in out.iter().enumerate() {
                        // All TB lanes, as in transform_input: past the row's last tile they
                        // are zeros that the next row overwrites, or land in the slack.
                        let dst = &mut dm[((a * 4 + b) * s.c_out + co) * n + t0..][..TB];
                        let dst: &mut Lanes = dst.try_into().expect("TB values");
                        *dst = *lanes;
                    }
                }
            }
        }
    }
}

/// `m [out x n] = u [out x in] . v [in x n]` or `du [out x in] += dm [out x n] . v [in x n]^T`
/// over the first `tiles` columns, `(c_out, c_in, n, tiles)`.
type Product = unsafe fn((usize, usize, usize, usize), &[f32], &[f32], &mut [f32]);

/// A transform of rows of tiles: `(shape, source, tiles, rows, destination)`.
type Transform = unsafe fn(&ConvShape, &[f32], &TileGrid, Range<usize>, &mut [f32]);

/// The output transform, which also adds the bias: `(shape, M, bias, tiles, rows, out)`.
type OutputTransform = unsafe fn(&ConvShape, &[f32], &[f32], &TileGrid, Range<usize>, &mut [f32]);

/// The stages of a Winograd pass on this CPU, chosen in one place by [`Isa::detect`]: the
/// AVX-512 products of [`avx512`] with the AVX2 transforms, the AVX2 builds of [`avx2`], or
/// the plain versions (their reference).
struct Stages {
    transform_input: Transform,
    transform_output: OutputTransform,
    transform_output_grad: Transform,
    transform_input_f4: Transform,
    transform_output_f4: OutputTransform,
    transform_input_f3x4: Transform,
    transform_output_f3x4: OutputTransform,
    multiply: Product,
    multiply_transposed: Product,
}

impl Stages {
    /// The stages this CPU runs: calling them is sound wherever the plain versions' slice
    /// arguments are, as the AVX2 builds are only chosen on a CPU with AVX2 and FMA.
    fn for_this_cpu() -> &'static Stages {
        static PLAIN: Stages = Stages {
            transform_input,
            transform_output,
            transform_output_grad,
            transform_input_f4: f4::transform_input,
            transform_output_f4: f4::transform_output,
            transform_input_f3x4: f3x4::transform_input,
            transform_output_f3x4: f3x4::transform_output,
            multiply: multiply_by_gemm,
            multiply_transposed: multiply_transposed_by_gemm,
        };
        #[cfg(target_arch = "x86_64")]
        static AVX2: Stages = Stages {
            transform_input: avx2::transform_input,
            transform_output: avx2::transform_output,
            transform_output_grad: avx2::transform_output_grad,
            transform_input_f4: f4::avx2::transform_input,
            transform_output_f4: f4::avx2::transform_output,
            transform_input_f3x4: f3x4::avx2::transform_input,
            transform_output_f3x4: f3x4::avx2::transform_output,
            multiply: avx2::multiply,
            multiply_transposed: avx2::multiply_transposed,
        };
        // The AVX-512 products with the 8-lane transforms (a few adds per value moved).
        #[cfg(target_arch = "x86_64")]
        static AVX512: Stages = Stages {
            transform_input: avx2::transform_input,
            transform_output: avx2::transform_output,
            transform_output_grad: avx2::transform_output_grad,
            transform_input_f4: f4::avx2::transform_input,
            transform_output_f4: f4::avx2::transform_output,
            transform_input_f3x4: f3x4::avx2::transform_input,
            transform_output_f3x4: f3x4::avx2::transform_output,
            multiply: avx512::multiply,
            multiply_transposed: avx512::multiply_transposed,
        };
        #[cfg(target_arch = "x86_64")]
        {
            let isa = Isa::detect();
            if isa.uses_avx512() {
                return &AVX512;
            }
            if isa.uses_avx2() {
                return &AVX2;
            }
        }
        &PLAIN
    }
}

/// `du [out x in] +=` the sums `block(co, ci, rows, cols)` returns for each block of at most
/// R x C (out, in) pairs from (co, ci): the outer loops of the filter gradient's products.
#[cfg(target_arch = "x86_64")]
#[inline(always)]
fn add_pair_blocks<const R: usize, const C: usize>(
    (c_out, c_in): (usize, usize),
    du: &mut [f32],
    mut block: impl FnMut(usize, usize, usize, usize) -> [[f32; C]; R],
) {
    for co in (0..c_out).step_by(R) {
        let rows = (c_out - co).min(R);
        for ci in (0..c_in).step_by(C) {
            let cols = (c_in - ci).min(C);
            let sums = block(co, ci, rows, cols);
            for (r, sums_r) in sums.iter().enumerate().take(rows) {
                for (c, sum) in sums_r.iter().enumerate().take(cols) {
                    du[(co + r) * c_in + ci + c] += sum;
                }
            }
        }
    }
}

/// The plain [`Stages::multiply`]: a GEMM.
fn multiply_by_gemm(
    (c_out, c_in, n, tiles): (usize, usize, usize, usize),
    u: &[f32],
    v: &[f32],
    m: &mut [f32],
) {
    sgemm(
        (c_out, tiles, c_in),
        m,
        n,
        false,
        (u, c_in, 1),
        (v, n, 1),
        Parallelism::None,
    );
}

/// The plain [`Stages::multiply_transposed`]: a GEMM, v^T element (tile t, in ci) at
/// ci * n + t.
fn multiply_transposed_by_gemm(
    (c_out, c_in, n, tiles): (usize, usize, usize, usize),
    dm: &[f32],
    v: &[f32],
    du: &mut [f32],
) {
    sgemm(
        (c_out, c_in, tiles),
        du,
        c_in,
        true,
        (dm, n, 1),
        (v, 1, n),
        Parallelism::None,
    );
}

#[cfg(test)]
mod tests;
