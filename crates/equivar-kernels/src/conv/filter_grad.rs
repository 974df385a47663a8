//! The filter gradient of a stride-1 convolution without im2col:
//!
//! ```text
//! dW[co][ci][ky][kx] = sum_b sum_(oy, ox) dy[b][co][oy][ox] x_pad[b][ci][oy + ky][ox + kx]
//! ```
//!
//! as sums of outer products: per output pixel, dy's column of output channels (vectors of
//! [`LANES`], from a per-image transpose of dy) times each input value the window puts on that
//! pixel (a broadcast). A block of up to 2 vectors of output channels x 4 window columns keeps
//! 8 accumulators in registers over a whole image, reading 2 vectors and 4 input values from
//! L1 per 8 FMAs: no packing, no horizontal sums, no lanes wasted on rows shorter than a
//! register. (3 vectors, 12 accumulators, left the compiler short of registers: 5-10%
//! slower.) im2col + GEMM wrote and re-packed 16 values per pixel and channel for a 4x4
//! window and ran at about a third of the FMA peak on `abusing-p4`'s last conv.

use rayon::prelude::*;

use super::ConvShape;
use crate::Isa;

/// Output channels per vector.
const LANES: usize = 8;
/// Vectors of output channels per block.
const VECTORS: usize = 2;
/// Window columns per block.
const COLUMNS: usize = 4;

/// Whether [`compute`] takes this convolution's filter gradient, faster than im2col + GEMM:
/// stride 1, no dilation, a window of at least 4 x 4 over at least [`MIN_CHANNELS`] input
/// channels, on a CPU with AVX2 and FMA (the plain build multiplies and adds apart, at SSE2's
/// 4 lanes). Measured at batch 128 on 14 x 14 inputs (AMD EPYC Zen 3, 2 threads, runs of each
/// alternating): a 4x4 window, 40 -> 40 channels, took 9.1-9.6 ms here against 13.8-14.9 ms
/// as im2col + GEMM; 16 -> 16 channels 1.0-2.1 against 2.6-4.9; a 5x5 window 13.4-14.5
/// against 12.7-18.8; a 7x7 window 10.4-14.2 against 17.4-23.8. But a 3x3 window over 8
/// channels (28 x 28, 40 out) took 9.8-13.3 against 8.3-12.6 ms, and over 1 channel (the
/// lifting conv) 2.9-4.3 against 2.2-2.5 ms: with few products per pixel, the transpose of dy
/// costs more than the GEMM's packing.
pub fn suits(s: &ConvShape) -> bool {
    suits_geometry(s) && s.kernel >= 4 && s.c_in >= MIN_CHANNELS && Isa::detect().uses_avx2()
}

/// Input channels from which [`suits`] takes a convolution.
pub const MIN_CHANNELS: usize = 8;

fn suits_geometry(s: &ConvShape) -> bool {
    s.stride == 1 && s.dilation == 1 && s.kernel > 1
}

/// `dW [out, in, k, k]` of a stride-1 convolution without dilation, from its input
/// `x [B, in, H, W]` and output gradient `dy [B, out, H', W']`; each thread sums its own run of
/// images. Any window and channel count ([`suits`] says where it is the faster way).
pub fn compute(s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    compute_with(Isa::detect(), s, x, dy)
}

/// [`compute`] with a given build of the kernel.
pub(crate) fn compute_with(isa: Isa, s: &ConvShape, x: &[f32], dy: &[f32]) -> Vec<f32> {
    assert!(
        suits_geometry(s),
        "stride 1, no dilation, a window over one pixel"
    );
    // A window larger than the padded input would leave no output pixels.
    s.validate().unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(x.len(), s.input_len(), "x is [B, in, H, W]");
    assert_eq!(dy.len(), s.output_len(), "dy is [B, out, H', W']");
    let k = s.kernel;
    let padded = Padded::of(s);
    let co_pad = s.c_out.next_multiple_of(LANES);
    let threads = rayon::current_num_threads().max(1);
    let per_share = s.batch.div_ceil(threads).max(1);
    let starts: Vec<usize> = (0..s.batch).step_by(per_share).collect();
    // Partials [in][ky][kx][out padded to LANES]: one vector per window position.
    let partials: Vec<Vec<f32>> = starts
        .into_par_iter()
        .map(|start| {
            let mut dwt = vec![0.0f32; s.c_in * k * k * co_pad];
            let mut dyt = vec![0.0f32; s.out_pixels() * co_pad];
            let mut image = vec![0.0f32; padded.image_len(s.c_in)];
            for b in start..(start + per_share).min(s.batch) {
                let dy_b = &dy[b * s.out_image_len()..][..s.out_image_len()];
                for (co, plane) in dy_b.chunks_exact(s.out_pixels()).enumerate() {
                    for (p, &g) in plane.iter().enumerate() {
                        dyt[p * co_pad + co] = g;
                    }
                }
                let x_b = &x[b * s.image_len()..][..s.image_len()];
                let x_b = padded.copy(s, x_b, &mut image);
                image_built(isa, s, (x_b, &dyt), &mut dwt);
            }
            dwt
        })
        .collect();
    let mut dw = vec![0.0f32; s.weight_len()];
    for dwt in &partials {
        for (position, column) in dwt.chunks_exact(co_pad).enumerate() {
            for (co, &value) in column[..s.c_out].iter().enumerate() {
                dw[co * s.c_in * k * k + position] += value;
            }
        }
    }
    dw
}

/// The input's rows as the window reads them: zero-padded copies where the convolution pads.
struct Padded {
    padding: usize,
    height: usize,
    width: usize,
}

impl Padded {
    fn of(s: &ConvShape) -> Padded {
        Padded {
            padding: s.padding,
            height: s.height + 2 * s.padding,
            width: s.width + 2 * s.padding,
        }
    }

    fn image_len(&self, channels: usize) -> usize {
        if self.padding == 0 {
            0
        } else {
            channels * self.height * self.width
        }
    }

    /// The image `x_b [in, H, W]` as `[in, H + 2p, W + 2p]`: itself without padding, else
    /// copied into `image` (whose borders stay zero).
    fn copy<'a>(&self, s: &ConvShape, x_b: &'a [f32], image: &'a mut [f32]) -> &'a [f32] {
        if self.padding == 0 {
            return x_b;
        }
        let p = self.padding;
        for (plane, padded) in x_b
            .chunks_exact(s.height * s.width)
            .zip(image.chunks_exact_mut(self.height * self.width))
        {
            for (row, padded_row) in plane
                .chunks_exact(s.width)
                .zip(padded.chunks_exact_mut(self.width).skip(p))
            {
                padded_row[p..p + s.width].copy_from_slice(row);
            }
        }
        image
    }
}

/// One block's sums over an image: `acc[c][r] = sum_(oy, ox) x[oy + ky][ox + kx + c]
/// dyt[oy W' + ox][vector v + r]` for R vectors of output channels and C window columns.
trait Blocks {
    fn block<const R: usize, const C: usize>(
        w: &Window,
        dyt: (&[f32], usize, usize),
    ) -> [[[f32; LANES]; R]; C];
}

/// Where a block reads its input values: window row `ky`, columns from `kx`, of one padded
/// input plane `wp` values wide, for an `out` (H' x W') output.
struct Window<'a> {
    plane: &'a [f32],
    wp: usize,
    out: (usize, usize),
    ky: usize,
    kx: usize,
}

impl Window<'_> {
    /// Input row `oy + ky` from column `kx`: the `W' + C - 1` values C window columns read.
    fn row<const C: usize>(&self, oy: usize) -> &[f32] {
        &self.plane[(oy + self.ky) * self.wp + self.kx..][..self.out.1 + C - 1]
    }
}

/// The output gradient of output row `oy`, `[W'][out padded]`, from vector `v` on.
fn grads_of_row(dyt: &[f32], co_pad: usize, wo: usize, oy: usize, v: usize) -> &[f32] {
    &dyt[oy * wo * co_pad + v * LANES..(oy + 1) * wo * co_pad]
}

/// The reference blocks: plain loops, multiplications and additions apart (any CPU).
struct Plain;

impl Blocks for Plain {
    fn block<const R: usize, const C: usize>(
        w: &Window,
        (dyt, co_pad, v): (&[f32], usize, usize),
    ) -> [[[f32; LANES]; R]; C] {
        let mut acc = [[[0.0f32; LANES]; R]; C];
        let (ho, wo) = w.out;
        for oy in 0..ho {
            let grads = grads_of_row(dyt, co_pad, wo, oy, v);
            for (ox, values) in w.row::<C>(oy).windows(C).enumerate() {
                let g = &grads[ox * co_pad..][..R * LANES];
                for (acc_c, &value) in acc.iter_mut().zip(values) {
                    for (a, &g) in acc_c.as_flattened_mut().iter_mut().zip(g) {
                        *a += value * g;
                    }
                }
            }
        }
        acc
    }
}

/// Adds one image's outer products to `dwt [in][ky][kx][out padded]`, from its padded input
/// `x_b [in, H + 2p, W + 2p]` and transposed output gradient `dyt [H' W'][out padded]`.
#[inline(always)]
fn image<B: Blocks>(s: &ConvShape, (x_b, dyt): (&[f32], &[f32]), dwt: &mut [f32]) {
    let k = s.kernel;
    let (hp, wp) = (s.height + 2 * s.padding, s.width + 2 * s.padding);
    let co_pad = s.c_out.next_multiple_of(LANES);
    let vectors = co_pad / LANES;
    for (ci, plane) in x_b.chunks_exact(hp * wp).enumerate() {
        for ky in 0..k {
            for kx in (0..k).step_by(COLUMNS) {
                let columns = (k - kx).min(COLUMNS);
                let window = Window {
                    plane,
                    wp,
                    out: (s.out_height(), s.out_width()),
                    ky,
                    kx,
                };
                for v in (0..vectors).step_by(VECTORS) {
                    let rows = (vectors - v).min(VECTORS);
                    let at = |column: usize| ((ci * k + ky) * k + kx + column) * co_pad + v * LANES;
                    macro_rules! run {
                        ($r:literal, $c:literal) => {{
                            let acc = B::block::<$r, $c>(&window, (dyt, co_pad, v));
                            for (column, acc_c) in acc.iter().enumerate() {
                                let out = &mut dwt[at(column)..][..$r * LANES];
                                for (o, a) in out.iter_mut().zip(acc_c.as_flattened()) {
                                    *o += a;
                                }
                            }
                        }};
                    }
                    match (rows, columns) {
                        (2, 4) => run!(2, 4),
                        (2, 3) => run!(2, 3),
                        (2, 2) => run!(2, 2),
                        (2, _) => run!(2, 1),
                        (_, 4) => run!(1, 4),
                        (_, 3) => run!(1, 3),
                        (_, 2) => run!(1, 2),
                        (_, _) => run!(1, 1),
                    }
                }
            }
        }
    }
}

/// [`image`] with the blocks of this build.
fn image_built(isa: Isa, s: &ConvShape, operands: (&[f32], &[f32]), dwt: &mut [f32]) {
    #[cfg(target_arch = "x86_64")]
    if isa.uses_avx2() {
        // SAFETY: the CPU has AVX2 and FMA (Isa::uses_avx2).
        return unsafe { avx2::image(s, operands, dwt) };
    }
    let _ = isa;
    image::<Plain>(s, operands, dwt)
}

/// The blocks with AVX2 intrinsics: 8-lane registers of output channels, FMAs. (Plain loops
/// built for AVX2 kept the larger blocks' sums in memory, a value at a time.)
#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::*;

    /// See [`super::image`].
    ///
    /// # Safety
    /// The CPU must have AVX2 and FMA.
    #[target_feature(enable = "avx2,fma")]
    pub(super) unsafe fn image(s: &ConvShape, operands: (&[f32], &[f32]), dwt: &mut [f32]) {
        super::image::<Avx2>(s, operands, dwt)
    }

    struct Avx2;

    impl Blocks for Avx2 {
        #[inline(always)]
        fn block<const R: usize, const C: usize>(
            w: &Window,
            (dyt, co_pad, v): (&[f32], usize, usize),
        ) -> [[[f32; LANES]; R]; C] {
            let (ho, wo) = w.out;
            // SAFETY: AVX2 and FMA are enabled by `image`'s target features, the only caller;
            // the row holds W' + C - 1 values and the gradients W' pixels of co_pad values
            // from vector v, of which R vectors lie within co_pad (image's blocks).
            unsafe {
                let mut acc = [[_mm256_setzero_ps(); R]; C];
                for oy in 0..ho {
                    let row = w.row::<C>(oy).as_ptr();
                    let grads = grads_of_row(dyt, co_pad, wo, oy, v).as_ptr();
                    for ox in 0..wo {
                        let pixel = grads.add(ox * co_pad);
                        let g: [__m256; R] =
                            std::array::from_fn(|r| _mm256_loadu_ps(pixel.add(r * LANES)));
                        for (c, acc_c) in acc.iter_mut().enumerate() {
                            let value = _mm256_broadcast_ss(&*row.add(ox + c));
                            for (a, &g) in acc_c.iter_mut().zip(&g) {
                                *a = _mm256_fmadd_ps(value, g, *a);
                            }
                        }
                    }
                }
                let mut sums = [[[0.0f32; LANES]; R]; C];
                for (sums_c, acc_c) in sums.iter_mut().zip(&acc) {
                    for (sum, a) in sums_c.iter_mut().zip(acc_c) {
                        _mm256_storeu_ps(sum.as_mut_ptr(), *a);
                    }
                }
                sums
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conv::{Wanted, reference};
    use crate::test_util::{as_f64, on_each_shape, relative_error, values};

    /// Each build against the f64 loops: windows 2-5, padding 0 to k - 1 and beyond,
    /// channel counts off the vector width, non-square images, 1-3 threads.
    #[test]
    fn filter_grad_matches_the_reference_loops() {
        // Per window: (batch, in, out, h, w, padding).
        let shapes: [(usize, &[_]); 4] = [
            (2, &[(2, 5, 24, 8, 11, 0)]),
            (3, &[(2, 3, 13, 9, 7, 1), (2, 1, 40, 12, 12, 1)]),
            (
                4,
                &[
                    (1, 1, 1, 4, 4, 0),
                    (3, 40, 40, 14, 14, 0),
                    (4, 7, 17, 10, 5, 3),
                ],
            ),
            (5, &[(1, 2, 9, 6, 6, 2)]),
        ];
        for (kernel, shapes) in shapes {
            on_each_shape(kernel, shapes, |pool, s| {
                let threads = pool.current_num_threads();
                let x = values(s.input_len(), 31);
                let w = values(s.weight_len(), 32);
                let dy = values(s.output_len(), 33);
                let wanted = Wanted {
                    input: false,
                    weight: true,
                    bias: false,
                };
                let want = reference::backward(s, &x, &w, &dy, wanted).weight.unwrap();
                for isa in Isa::ALL.into_iter().filter(|isa| isa.is_supported()) {
                    let got = pool.install(|| compute_with(isa, s, &x, &dy));
                    let e = relative_error(&got, &as_f64(&want), 1.0);
                    assert!(e <= 1e-5, "{isa:?}, {threads} threads, {s:?}: {e:.2e}");
                }
            });
        }
    }

    #[test]
    #[should_panic(expected = "needs at least 5 pixels after padding")]
    fn a_window_larger_than_the_input_is_refused() {
        let s = ConvShape {
            batch: 1,
            c_in: 1,
            height: 3,
            width: 3,
            c_out: 1,
            kernel: 5,
            stride: 1,
            padding: 0,
            dilation: 1,
        };
        compute(&s, &[0.0; 9], &[]);
    }

    #[test]
    fn small_strided_dilated_and_pointwise_convolutions_are_left_to_the_gemm() {
        let s = ConvShape {
            batch: 1,
            c_in: 2,
            height: 8,
            width: 8,
            c_out: 3,
            kernel: 3,
            stride: 1,
            padding: 1,
            dilation: 1,
        };
        assert!(suits_geometry(&s));
        assert!(!suits_geometry(&ConvShape { stride: 2, ..s }));
        assert!(!suits_geometry(&ConvShape { dilation: 2, ..s }));
        assert!(!suits_geometry(&ConvShape { kernel: 1, ..s }));
        // abusing-p4's last conv, not its 3x3 or lifting ones.
        let last = ConvShape {
            c_in: 40,
            c_out: 40,
            kernel: 4,
            padding: 0,
            ..s
        };
        assert_eq!(suits(&last), Isa::detect().uses_avx2());
        assert!(!suits(&ConvShape { kernel: 3, ..last }));
        assert!(!suits(&ConvShape {
            c_in: MIN_CHANNELS - 1,
            ..last
        }));
    }
}
