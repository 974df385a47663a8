//! CPU kernels for the 2-D convolutions of G-CNNs (NCHW, f32): per image an im2col into a
//! thread-local scratch buffer, then one GEMM; rayon over the batch. Forward, input gradient
//! and filter gradient are the three products of the same patch matrix:
//!
//! ```text
//! forward      y_b  [Co x N]  = W [Co x K] . col(x_b) [K x N]        (+ bias per row)
//! input grad   dx_b           = col2im( W^T [K x Co] . dy_b [Co x N] )
//! filter grad  dW   [Co x K]  = sum_b dy_b [Co x N] . col(x_b)^T [N x K]
//! ```
//!
//! with K = C_in * k * k and N = H_out * W_out. burn's own conv path converts to NHWC and back
//! and expresses the backward as a transposed conv; this layout keeps every operand in place
//! and reuses its scratch between calls (no page faults per step). `reference` holds the plain
//! loops the tests compare against.

use std::cell::RefCell;
use std::fmt;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::init_rows;

/// The geometry of one conv2d call: square kernel, symmetric stride, padding and dilation
/// (all equivar windows are square and symmetric).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ConvShape {
    pub batch: usize,
    pub c_in: usize,
    pub height: usize,
    pub width: usize,
    pub c_out: usize,
    pub kernel: usize,
    pub stride: usize,
    pub padding: usize,
    pub dilation: usize,
}

/// Why a conv geometry cannot run.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConvShapeError(String);

impl fmt::Display for ConvShapeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for ConvShapeError {}

impl ConvShape {
    /// The geometry of a conv of `x [B, C_in, H, W]` with `weight [C_out, C_in, k, k]`.
    pub fn of(
        x: &[usize],
        weight: &[usize],
        stride: usize,
        padding: usize,
        dilation: usize,
    ) -> ConvShape {
        ConvShape {
            batch: x[0],
            c_in: x[1],
            height: x[2],
            width: x[3],
            c_out: weight[0],
            kernel: weight[2],
            stride,
            padding,
            dilation,
        }
    }

    /// Checks that the window fits and every size is positive.
    pub fn validate(&self) -> Result<(), ConvShapeError> {
        let s = self;
        if s.kernel == 0 || s.stride == 0 || s.dilation == 0 {
            return Err(ConvShapeError(format!(
                "conv2d: kernel {}, stride {} and dilation {} must all be >= 1",
                s.kernel, s.stride, s.dilation
            )));
        }
        let reach = s.dilation * (s.kernel - 1) + 1;
        if s.height + 2 * s.padding < reach || s.width + 2 * s.padding < reach {
            return Err(ConvShapeError(format!(
                "conv2d: a {k}x{k} window (dilation {d}) needs at least {reach} pixels after \
                 padding, but the input is {h}x{w} with padding {p}; use a larger input or \
                 more padding",
                k = s.kernel,
                d = s.dilation,
                h = s.height,
                w = s.width,
                p = s.padding,
            )));
        }
        Ok(())
    }

    pub fn out_height(&self) -> usize {
        (self.height + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }

    pub fn out_width(&self) -> usize {
        (self.width + 2 * self.padding - self.dilation * (self.kernel - 1) - 1) / self.stride + 1
    }

    /// Rows of the patch matrix: `C_in * k * k`.
    pub fn patch_len(&self) -> usize {
        self.c_in * self.kernel * self.kernel
    }

    /// Columns of the patch matrix: output pixels per image.
    pub fn out_pixels(&self) -> usize {
        self.out_height() * self.out_width()
    }

    fn image_len(&self) -> usize {
        self.c_in * self.height * self.width
    }

    fn out_image_len(&self) -> usize {
        self.c_out * self.out_pixels()
    }

    pub fn input_len(&self) -> usize {
        self.batch * self.image_len()
    }

    pub fn weight_len(&self) -> usize {
        self.c_out * self.patch_len()
    }

    pub fn output_len(&self) -> usize {
        self.batch * self.out_image_len()
    }

    /// A 1x1 stride-1 unpadded conv: the image itself is the patch matrix.
    fn is_pointwise(&self) -> bool {
        self.kernel == 1 && self.stride == 1 && self.padding == 0
    }

    /// Multiply-adds of the forward pass, times two: its FLOPs.
    pub fn forward_flops(&self) -> f64 {
        2.0 * (self.batch * self.c_out * self.out_pixels() * self.patch_len()) as f64
    }
}

/// Which gradients a backward call computes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Wanted {
    pub input: bool,
    pub weight: bool,
    pub bias: bool,
}

/// The gradients asked for in [`Wanted`].
#[derive(Clone, Debug, Default)]
pub struct ConvGrads {
    pub input: Option<Vec<f32>>,
    pub weight: Option<Vec<f32>>,
    pub bias: Option<Vec<f32>>,
}

thread_local! {
    /// Patch-matrix scratch, kept per thread so a training loop allocates it once.
    static SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

fn with_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    SCRATCH.with(|cell| {
        let mut buf = cell.borrow_mut();
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        f(&mut buf[..len])
    })
}

/// `c[m x n] (row stride c_rs) = (accumulate ? c : 0) + a[m x k] . b[k x n]`, with `a` and `b`
/// given by their row and column strides.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm(
    (m, n, k): (usize, usize, usize),
    c: &mut [f32],
    c_rs: usize,
    accumulate: bool,
    a: (&[f32], usize, usize),
    b: (&[f32], usize, usize),
    parallelism: Parallelism,
) {
    sgemm_strided((m, n, k), (c, c_rs, 1), accumulate, a, b, parallelism)
}

/// [`sgemm`] with the destination given by its row and column strides too. Bounds are
/// checked here, once, so the unsafe call below only ever sees in-range operands.
#[allow(clippy::too_many_arguments)]
pub(crate) fn sgemm_strided(
    (m, n, k): (usize, usize, usize),
    (c, c_rs, c_cs): (&mut [f32], usize, usize),
    accumulate: bool,
    (a, a_rs, a_cs): (&[f32], usize, usize),
    (b, b_rs, b_cs): (&[f32], usize, usize),
    parallelism: Parallelism,
) {
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            for row in 0..m {
                for col in 0..n {
                    c[row * c_rs + col * c_cs] = 0.0;
                }
            }
        }
        return;
    }
    assert!(
        (m - 1) * c_rs + (n - 1) * c_cs < c.len(),
        "gemm: destination too small"
    );
    assert!(
        (m - 1) * a_rs + (k - 1) * a_cs < a.len(),
        "gemm: lhs too small"
    );
    assert!(
        (k - 1) * b_rs + (n - 1) * b_cs < b.len(),
        "gemm: rhs too small"
    );
    // SAFETY: the three asserts above bound every index the product touches; the slices
    // are distinct borrows, so the destination aliases neither operand.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            c.as_mut_ptr(),
            c_cs as isize,
            c_rs as isize,
            accumulate,
            a.as_ptr(),
            a_cs as isize,
            a_rs as isize,
            b.as_ptr(),
            b_cs as isize,
            b_rs as isize,
            1.0,
            1.0,
            false,
            false,
            false,
            parallelism,
        );
    }
}

/// The machine's fp32 GEMM rate in GFLOP/s: the median of three `size x size x size`
/// products on all rayon threads, the reference "peak" benchmarks report shares of.
pub fn sgemm_gflops(size: usize) -> f64 {
    let a: Vec<f32> = (0..size * size).map(|i| (i % 7) as f32 * 0.1).collect();
    let mut c = vec![0.0f32; size * size];
    let threads = rayon::current_num_threads();
    let mut rates: Vec<f64> = (0..4)
        .map(|_| {
            let start = std::time::Instant::now();
            sgemm(
                (size, size, size),
                &mut c,
                size,
                false,
                (&a, size, 1),
                (&a, size, 1),
                Parallelism::Rayon(threads),
            );
            2.0 * (size as f64).powi(3) / start.elapsed().as_secs_f64() / 1e9
        })
        .skip(1) // the first run pays for page faults and thread start-up
        .collect();
    rates.sort_by(f64::total_cmp);
    rates[rates.len() / 2]
}

/// The output columns `ox` whose input column `ox * stride + offset` lies inside `0..width`.
fn valid_columns(offset: isize, stride: usize, width: usize, out_width: usize) -> (usize, usize) {
    let s = stride as isize;
    let lo = if offset >= 0 {
        0
    } else {
        ((-offset + s - 1) / s) as usize
    };
    let room = width as isize - offset;
    let hi = if room <= 0 {
        0
    } else {
        ((room + s - 1) / s) as usize
    };
    let hi = hi.min(out_width);
    (lo.min(hi), hi)
}

/// Calls `f(patch_row, oy, input_row_index, (lo, hi), column_offset)` for every patch row and
/// output row `oy` in `out_rows`: the shared walk of im2col and col2im. `input_row_index` is
/// `None` where the window row lies in the padding.
fn for_each_patch_row(
    s: &ConvShape,
    out_rows: std::ops::Range<usize>,
    mut f: impl FnMut(usize, usize, Option<usize>, (usize, usize), isize),
) {
    let wo = s.out_width();
    let k = s.kernel;
    for ci in 0..s.c_in {
        for ky in 0..k {
            for kx in 0..k {
                let row = (ci * k + ky) * k + kx;
                let x_off = (kx * s.dilation) as isize - s.padding as isize;
                let cols = valid_columns(x_off, s.stride, s.width, wo);
                for oy in out_rows.clone() {
                    let iy = (oy * s.stride + ky * s.dilation) as isize - s.padding as isize;
                    let input_row =
                        (iy >= 0 && iy < s.height as isize).then(|| ci * s.height + iy as usize);
                    f(row, oy, input_row, cols, x_off);
                }
            }
        }
    }
}

/// Writes the patch matrix `[K x N]` of one image.
fn im2col(s: &ConvShape, image: &[f32], col: &mut [f32]) {
    im2col_rows(s, image, 0..s.out_height(), col)
}

/// The patch matrix of one image's output rows `out_rows` only, `[K x rows * W_out]`.
fn im2col_rows(s: &ConvShape, image: &[f32], out_rows: std::ops::Range<usize>, col: &mut [f32]) {
    let (wo, w, stride) = (s.out_width(), s.width, s.stride);
    let (first, n) = (out_rows.start, out_rows.len() * wo);
    for_each_patch_row(s, out_rows, |row, oy, input_row, (lo, hi), x_off| {
        let dst = &mut col[row * n + (oy - first) * wo..][..wo];
        let Some(iy) = input_row else {
            dst.fill(0.0);
            return;
        };
        let src = &image[iy * w..(iy + 1) * w];
        dst[..lo].fill(0.0);
        dst[hi..].fill(0.0);
        if lo >= hi {
            return;
        }
        let start = (lo as isize * stride as isize + x_off) as usize;
        if stride == 1 {
            dst[lo..hi].copy_from_slice(&src[start..start + (hi - lo)]);
        } else {
            for (d, x) in dst[lo..hi]
                .iter_mut()
                .zip(src[start..].iter().step_by(stride))
            {
                *d = *x;
            }
        }
    });
}

/// Adds the patch-matrix gradient `[K x N]` back onto one image's gradient (the adjoint of
/// [`im2col`]).
fn col2im_add(s: &ConvShape, col: &[f32], image: &mut [f32]) {
    let (n, wo, w, stride) = (s.out_pixels(), s.out_width(), s.width, s.stride);
    for_each_patch_row(
        s,
        0..s.out_height(),
        |row, oy, input_row, (lo, hi), x_off| {
            let Some(iy) = input_row else { return };
            if lo >= hi {
                return;
            }
            let src = &col[row * n + oy * wo + lo..row * n + oy * wo + hi];
            let dst = &mut image[iy * w..(iy + 1) * w];
            let start = (lo as isize * stride as isize + x_off) as usize;
            if stride == 1 {
                // contiguous on both sides: a plain vectorised add
                for (d, g) in dst[start..start + src.len()].iter_mut().zip(src) {
                    *d += g;
                }
            } else {
                for (d, g) in dst[start..].iter_mut().step_by(stride).zip(src) {
                    *d += g;
                }
            }
        },
    );
}

/// How to spread one call over the machine: rayon over images when the batch can feed every
/// thread, else GEMM's own threads inside each image.
fn gemm_parallelism(batch: usize) -> Parallelism {
    let threads = rayon::current_num_threads();
    if batch >= threads {
        Parallelism::None
    } else {
        Parallelism::Rayon(threads)
    }
}

fn check_lengths(s: &ConvShape, x: &[f32], weight: &[f32]) {
    assert_eq!(x.len(), s.input_len(), "conv2d: input length for {s:?}");
    assert_eq!(
        weight.len(),
        s.weight_len(),
        "conv2d: filter length for {s:?}"
    );
}

/// The forward pass: `[B, C_out, H_out, W_out]`, NCHW, contiguous.
pub fn forward(s: &ConvShape, x: &[f32], weight: &[f32], bias: Option<&[f32]>) -> Vec<f32> {
    forward_then(s, x, weight, bias, |_| {})
}

/// [`forward`], then `epilogue` on the output while it is still in cache (an inference model's
/// activation). It must act value by value: it may be given any part of the output.
pub fn forward_then(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    epilogue: impl Fn(&mut [f32]) + Sync,
) -> Vec<f32> {
    check_lengths(s, x, weight);
    if let Some(b) = bias {
        assert_eq!(b.len(), s.c_out, "conv2d: bias length");
    }
    let threads = rayon::current_num_threads();
    if s.batch < threads && !s.is_pointwise() && s.out_height() >= 2 * threads {
        return forward_in_bands(s, x, weight, bias, &epilogue, threads);
    }
    let (k, n) = (s.patch_len(), s.out_pixels());
    let parallelism = gemm_parallelism(s.batch);
    // No zero fill first: each image's rows are written (bias or zeros) just before its
    // product, while in cache; a separate pass over the whole output cost 3% of a frozen run.
    let mut out = Vec::with_capacity(s.output_len());
    out.spare_capacity_mut()[..s.output_len()]
        .par_chunks_mut(s.out_image_len())
        .zip(x.par_chunks(s.image_len()))
        .for_each(|(y, image)| {
            let y = init_rows(y, n, |row| bias.map_or(0.0, |b| b[row]));
            let product = |col: &[f32], y: &mut [f32]| {
                sgemm(
                    (s.c_out, n, k),
                    y,
                    n,
                    bias.is_some(),
                    (weight, k, 1),
                    (col, n, 1),
                    parallelism,
                )
            };
            if s.is_pointwise() {
                product(image, y);
            } else {
                with_scratch(k * n, |col| {
                    im2col(s, image, col);
                    product(col, y);
                });
            }
            epilogue(y);
        });
    // SAFETY: every image's part was written by `init_rows` above.
    unsafe { out.set_len(s.output_len()) };
    out
}

/// [`forward_then`] for fewer images than threads (latency): each image's output rows are
/// split into bands, one task per band doing its own im2col and a single-threaded GEMM. (The
/// GEMM's own threading leaves im2col serial and, at these sizes, waits on its workers.)
fn forward_in_bands(
    s: &ConvShape,
    x: &[f32],
    weight: &[f32],
    bias: Option<&[f32]>,
    epilogue: &(impl Fn(&mut [f32]) + Sync),
    threads: usize,
) -> Vec<f32> {
    let (k, n, wo) = (s.patch_len(), s.out_pixels(), s.out_width());
    let rows_per_band = s.out_height().div_ceil(threads);
    let bands: Vec<std::ops::Range<usize>> = (0..s.out_height())
        .step_by(rows_per_band)
        .map(|r| r..(r + rows_per_band).min(s.out_height()))
        .collect();
    // No zero fills (they took 5% of a single image's frozen run): each band's part is set
    // to the bias (or zeros) just before its product, and the parts cover the output.
    let mut out = Vec::with_capacity(s.output_len());
    for (y, image) in out.spare_capacity_mut()[..s.output_len()]
        .chunks_mut(s.out_image_len())
        .zip(x.chunks(s.image_len()))
    {
        let parts: Vec<Vec<f32>> = bands
            .par_iter()
            .map(|rows| {
                let nb = rows.len() * wo;
                let mut part = Vec::with_capacity(s.c_out * nb);
                init_rows(&mut part.spare_capacity_mut()[..s.c_out * nb], nb, |row| {
                    bias.map_or(0.0, |b| b[row])
                });
                // SAFETY: `init_rows` wrote all c_out * nb values.
                unsafe { part.set_len(s.c_out * nb) };
                with_scratch(k * nb, |col| {
                    im2col_rows(s, image, rows.clone(), col);
                    sgemm(
                        (s.c_out, nb, k),
                        &mut part,
                        nb,
                        bias.is_some(),
                        (weight, k, 1),
                        (col, nb, 1),
                        Parallelism::None,
                    );
                });
                epilogue(&mut part);
                part
            })
            .collect();
        for (rows, part) in bands.iter().zip(&parts) {
            let nb = rows.len() * wo;
            for (dst, src) in y.chunks_mut(n).zip(part.chunks(nb)) {
                for (d, &v) in dst[rows.start * wo..][..nb].iter_mut().zip(src) {
                    d.write(v);
                }
            }
        }
    }
    // SAFETY: the bands cover every output row of every image, written just above.
    unsafe { out.set_len(s.output_len()) };
    out
}

/// One thread's partial filter and bias gradients.
type ParamGrads = (Option<Vec<f32>>, Option<Vec<f32>>);

/// One thread's share of the batch: its images and, when asked, their input gradients.
struct Share<'a> {
    images: std::ops::Range<usize>,
    input_grad: Option<&'a mut [f32]>,
}

/// The backward pass for the gradients in `wanted`, from the output gradient `dy`.
pub fn backward(s: &ConvShape, x: &[f32], weight: &[f32], dy: &[f32], wanted: Wanted) -> ConvGrads {
    check_lengths(s, x, weight);
    assert_eq!(dy.len(), s.output_len(), "conv2d: output-gradient length");
    let (k, n) = (s.patch_len(), s.out_pixels());
    let parallelism = gemm_parallelism(s.batch);
    let mut input_grad = wanted.input.then(|| vec![0.0f32; s.input_len()]);

    // Contiguous runs of images, one per thread, so each keeps one filter-gradient partial.
    let threads = rayon::current_num_threads().max(1);
    let per_share = s.batch.div_ceil(threads).max(1);
    let ranges: Vec<_> = (0..s.batch)
        .step_by(per_share)
        .map(|start| start..(start + per_share).min(s.batch))
        .collect();
    let shares: Vec<Share> = match input_grad.as_mut() {
        Some(dx) => ranges
            .into_iter()
            .zip(dx.chunks_mut(per_share * s.image_len()))
            .map(|(images, chunk)| Share {
                images,
                input_grad: Some(chunk),
            })
            .collect(),
        None => ranges
            .into_iter()
            .map(|images| Share {
                images,
                input_grad: None,
            })
            .collect(),
    };

    let partials: Vec<ParamGrads> = shares
        .into_par_iter()
        .map(|share| {
            let mut dw = wanted.weight.then(|| vec![0.0f32; s.weight_len()]);
            let mut db = wanted.bias.then(|| vec![0.0f32; s.c_out]);
            let mut dx = share.input_grad;
            for (slot, b) in share.images.enumerate() {
                let dy_b = &dy[b * s.out_image_len()..(b + 1) * s.out_image_len()];
                let x_b = &x[b * s.image_len()..(b + 1) * s.image_len()];
                if let Some(db) = db.as_mut() {
                    for (acc, row) in db.iter_mut().zip(dy_b.chunks(n)) {
                        *acc += crate::sum_of(row, |v| v);
                    }
                }
                with_scratch(k * n, |col| {
                    if let Some(dw) = dw.as_mut() {
                        let patches: &[f32] = if s.is_pointwise() {
                            x_b
                        } else {
                            im2col(s, x_b, col);
                            col
                        };
                        // dW += dy_b . col^T; col^T element (pixel, row) sits at row * n + pixel.
                        sgemm(
                            (s.c_out, k, n),
                            dw,
                            k,
                            true,
                            (dy_b, n, 1),
                            (patches, 1, n),
                            parallelism,
                        );
                    }
                    if let Some(dx) = dx.as_mut() {
                        let dx_b = &mut dx[slot * s.image_len()..(slot + 1) * s.image_len()];
                        // W^T element (row, c) sits at c * k + row.
                        let lhs = (weight, 1, k);
                        if s.is_pointwise() {
                            sgemm(
                                (k, n, s.c_out),
                                dx_b,
                                n,
                                false,
                                lhs,
                                (dy_b, n, 1),
                                parallelism,
                            );
                        } else {
                            sgemm(
                                (k, n, s.c_out),
                                col,
                                n,
                                false,
                                lhs,
                                (dy_b, n, 1),
                                parallelism,
                            );
                            col2im_add(s, col, dx_b);
                        }
                    }
                });
            }
            (dw, db)
        })
        .collect();

    let mut grads = ConvGrads {
        input: input_grad,
        ..ConvGrads::default()
    };
    for (dw, db) in partials {
        grads.weight = sum_into(grads.weight, dw);
        grads.bias = sum_into(grads.bias, db);
    }
    if wanted.weight && grads.weight.is_none() {
        grads.weight = Some(vec![0.0; s.weight_len()]);
    }
    if wanted.bias && grads.bias.is_none() {
        grads.bias = Some(vec![0.0; s.c_out]);
    }
    grads
}

fn sum_into(total: Option<Vec<f32>>, part: Option<Vec<f32>>) -> Option<Vec<f32>> {
    match (total, part) {
        (Some(mut t), Some(p)) => {
            t.iter_mut().zip(&p).for_each(|(a, b)| *a += b);
            Some(t)
        }
        (t, p) => t.or(p),
    }
}

pub mod filter_grad;
#[cfg(test)]
pub(crate) mod reference;
#[cfg(test)]
mod tests;
