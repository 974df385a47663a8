//! Winograd F(2x2, 3x3) for 3x3 convolutions with stride 1 and no dilation (Lavin and Gray
//! 2016), forward only, for the frozen inference model. Each 2x2 output tile comes from a
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
//! This is the cross-correlation that conv layers compute, as [`super::conv_cpu`] does; the
//! tests compare the two.

use gemm::Parallelism;
use rayon::prelude::*;

use super::conv_cpu::{ConvShape, sgemm};
use super::{SharedOut, has_avx2_fma, par_ranges};

/// Tiles per task: the chunk's transformed input and products (16 x channels x tiles each)
/// stay within the L2 cache for tens of channels.
const TILES_PER_TASK: usize = 128;

/// A filter bank `[out, in, 3, 3]` transformed once: `U[xi][out][in] = (G g G^T)[xi]`.
#[derive(Clone, Debug)]
pub struct WinogradFilter {
    pub c_out: usize,
    pub c_in: usize,
    u: Vec<f32>,
}

/// Whether [`forward`] computes this geometry.
pub fn supports(s: &ConvShape) -> bool {
    s.kernel == 3 && s.stride == 1 && s.dilation == 1
}

/// Whether equivar's convolution kernels use Winograd where it pays: `EQUIVAR_WINOGRAD=0` in
/// the environment switches it off (read once), e.g. to compare.
pub fn enabled() -> bool {
    static ENABLED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *ENABLED.get_or_init(|| std::env::var("EQUIVAR_WINOGRAD").as_deref() != Ok("0"))
}

/// Input and output channels from which Winograd runs faster than im2col + GEMM here: with
/// fewer, the transforms (per input channel) or the small GEMMs cost more than the
/// multiplications they save (a lifting conv's input gradient, 40 -> 1, took twice as long).
pub const MIN_CHANNELS: usize = 8;

/// Whether a layer with this window and these channel counts is one Winograd speeds up
/// (given a batch it [`suits`]): a 3x3 window, stride 1, no dilation, >= [`MIN_CHANNELS`]
/// channels in and out.
pub fn suits_layer(
    kernel: usize,
    stride: usize,
    dilation: usize,
    c_in: usize,
    c_out: usize,
) -> bool {
    kernel == 3 && stride == 1 && dilation == 1 && c_in.min(c_out) >= MIN_CHANNELS
}

/// Whether a convolution of this geometry runs faster as Winograd F(2x2, 3x3): a layer it
/// [`suits_layer`], over at least one image per thread (a single image is faster in im2col
/// bands, see `conv_cpu::forward_then`).
pub fn suits(s: &ConvShape) -> bool {
    suits_layer(s.kernel, s.stride, s.dilation, s.c_in, s.c_out)
        && s.batch >= rayon::current_num_threads()
}

/// Whether equivar's kernels run this convolution as Winograd: it [`suits`] and Winograd is
/// [`enabled`].
pub fn pays(s: &ConvShape) -> bool {
    suits(s) && enabled()
}

/// The input gradient of a 3x3, stride-1 convolution with padding <= 2, `dx [B, in, H, W]`,
/// from `dy [B, out, H', W']`: itself a 3x3 convolution of dy with the filter turned by 180
/// degrees, in and out channels swapped, and padding 2 - p.
pub fn input_grad(s: &ConvShape, weight: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(
        supports(s) && s.padding <= 2,
        "a 3x3 stride-1 conv, padding <= 2"
    );
    let mut turned = vec![0.0f32; weight.len()];
    for co in 0..s.c_out {
        for ci in 0..s.c_in {
            for k in 0..9 {
                turned[(ci * s.c_out + co) * 9 + k] = weight[(co * s.c_in + ci) * 9 + 8 - k];
            }
        }
    }
    let filter = WinogradFilter::new(&turned, s.c_in, s.c_out);
    forward(&adjoint(s), dy, &filter, &vec![0.0; s.c_in], |_| {})
}

/// The convolution [`input_grad`] runs: dy's geometry, channels swapped, padding 2 - p.
fn adjoint(s: &ConvShape) -> ConvShape {
    ConvShape {
        c_in: s.c_out,
        c_out: s.c_in,
        height: s.out_height(),
        width: s.out_width(),
        padding: 2 - s.padding,
        ..*s
    }
}

/// Whether equivar's kernels compute this convolution's input gradient with [`input_grad`]:
/// padding <= 2 and the adjoint convolution [`pays`].
pub fn input_grad_pays(s: &ConvShape) -> bool {
    s.padding <= 2 && pays(&adjoint(s))
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
    /// Transforms `weight [c_out, c_in, 3, 3]`.
    pub fn new(weight: &[f32], c_out: usize, c_in: usize) -> Self {
        assert_eq!(weight.len(), c_out * c_in * 9, "weight is [out, in, 3, 3]");
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
        WinogradFilter { c_out, c_in, u }
    }
}

/// The convolution of `x [B, in, H, W]` with the transformed filter, plus `bias` per output
/// channel, then `epilogue` on the output (value by value; it may be given any part).
///
/// The input is first copied into zero-padded planes wide enough that every block of [`TB`]
/// tiles reads four whole runs of `2 TB + 2` values; tasks then take whole rows of tiles.
pub fn forward(
    s: &ConvShape,
    x: &[f32],
    filter: &WinogradFilter,
    bias: &[f32],
    epilogue: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    assert!(
        supports(s),
        "Winograd F(2,3) needs a 3x3 window, stride 1, dilation 1"
    );
    assert_eq!(
        (filter.c_in, filter.c_out),
        (s.c_in, s.c_out),
        "filter channels"
    );
    assert_eq!(x.len(), s.input_len(), "x is [B, in, H, W]");
    assert_eq!(bias.len(), s.c_out, "one bias per output channel");
    let (ho, wo) = (s.out_height(), s.out_width());
    let tiles = TileGrid::new(s);
    let padded = pad(s, x, &tiles);
    let rows = s.batch * tiles.rows;
    let threads = rayon::current_num_threads();
    let rows_per_task = (TILES_PER_TASK / tiles.cols)
        .min(rows.div_ceil(threads))
        .max(1);
    let mut out = vec![0.0f32; s.output_len()];
    let shared = SharedOut::new(&mut out);
    let fma = has_avx2_fma();
    par_ranges(rows, rows_per_task).for_each_init(
        || (Vec::new(), Vec::new()),
        |(v, m), rows| {
            // Rows of V and M hold the task's n tiles plus TB of slack, so that every
            // block of TB tiles is read and written whole (see transform_input).
            let n = rows.len() * tiles.cols + TB;
            v.resize(16 * s.c_in * n, 0.0);
            m.resize(16 * s.c_out * n, 0.0);
            if fma {
                // SAFETY: the CPU has AVX2 and FMA (checked at run time).
                unsafe { transform_input_avx2(s, &padded, &tiles, rows.clone(), v) }
            } else {
                transform_input(s, &padded, &tiles, rows.clone(), v)
            }
            for xi in 0..16 {
                sgemm(
                    (s.c_out, n - TB, s.c_in),
                    &mut m[xi * s.c_out * n..][..s.c_out * n],
                    n,
                    false,
                    (
                        &filter.u[xi * s.c_out * s.c_in..][..s.c_out * s.c_in],
                        s.c_in,
                        1,
                    ),
                    (&v[xi * s.c_in * n..][..s.c_in * n], n, 1),
                    Parallelism::None,
                );
            }
            // SAFETY: this task writes only the output rows of its own rows of tiles.
            let out = unsafe { shared.slice() };
            if fma {
                // SAFETY: as above.
                unsafe { transform_output_avx2(s, m, bias, &tiles, rows, out) }
            } else {
                transform_output(s, m, bias, &tiles, rows, out)
            }
        },
    );
    let plane = (ho * wo).max(1);
    out.par_chunks_mut(plane).for_each(&epilogue);
    out
}

/// The 2x2 output tiles of one image, and the padded input planes they read.
struct TileGrid {
    rows: usize,
    cols: usize,
    /// Padded plane height and width.
    height: usize,
    width: usize,
}

impl TileGrid {
    fn new(s: &ConvShape) -> Self {
        let (rows, cols) = (s.out_height().div_ceil(2), s.out_width().div_ceil(2));
        TileGrid {
            rows,
            cols,
            // Tile row r reads padded rows 2r..2r + 4; a block of TB tiles from column c
            // reads padded columns 2c..2c + 2 TB + 2, even past the last tile.
            height: 2 * rows + 2,
            width: 2 * cols.div_ceil(TB) * TB + 2,
        }
    }
}

/// `x` in zero-padded planes `[B, in, height, width]`, the image at (padding, padding).
fn pad(s: &ConvShape, x: &[f32], tiles: &TileGrid) -> Vec<f32> {
    let (h, w, p) = (s.height, s.width, s.padding);
    let plane = tiles.height * tiles.width;
    let mut padded = vec![0.0f32; s.batch * s.c_in * plane];
    padded
        .par_chunks_mut(plane)
        .zip(x.par_chunks(h * w))
        .for_each(|(dst, src)| {
            for (y, row) in src.chunks_exact(w).enumerate() {
                dst[(y + p) * tiles.width + p..][..w].copy_from_slice(row);
            }
        });
    padded
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
#[inline(always)]
fn transform_input(
    s: &ConvShape,
    padded: &[f32],
    tiles: &TileGrid,
    rows: std::ops::Range<usize>,
    v: &mut [f32],
) {
    let n = rows.len() * tiles.cols + TB;
    let plane_len = tiles.height * tiles.width;
    for ci in 0..s.c_in {
        for (r, row) in rows.clone().enumerate() {
            let (image, tile_row) = (row / tiles.rows, row % tiles.rows);
            let plane = &padded[(image * s.c_in + ci) * plane_len..][..plane_len];
            for c0 in (0..tiles.cols).step_by(TB) {
                // d[a * 4 + b][lane]: the patches of TB tiles side by side.
                let mut d = [[0.0f32; TB]; 16];
                for a in 0..4 {
                    let run: &[f32; 2 * TB + 2] = plane
                        [(2 * tile_row + a) * tiles.width + 2 * c0..][..2 * TB + 2]
                        .try_into()
                        .expect("padded rows hold whole runs");
                    for b in 0..4 {
                        d[a * 4 + b] = lanes(|l| run[b + 2 * l]);
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
#[inline(always)]
fn transform_output(
    s: &ConvShape,
    m: &[f32],
    bias: &[f32],
    tiles: &TileGrid,
    rows: std::ops::Range<usize>,
    out: &mut [f32],
) {
    let (ho, wo) = (s.out_height(), s.out_width());
    let n = rows.len() * tiles.cols + TB;
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

avx2_fma_build! {
    fn transform_input_avx2(
        s: &ConvShape,
        padded: &[f32],
        tiles: &TileGrid,
        rows: std::ops::Range<usize>,
        v: &mut [f32],
    ) = transform_input
}

avx2_fma_build! {
    fn transform_output_avx2(
        s: &ConvShape,
        m: &[f32],
        bias: &[f32],
        tiles: &TileGrid,
        rows: std::ops::Range<usize>,
        out: &mut [f32],
    ) = transform_output
}
