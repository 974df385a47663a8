//! DISCO's sparse contraction on the CPU, plane by plane (a plane is one channel of one
//! image), rayon over the planes.
//!
//! - [`gather`]: `y[k, t, p] = sum_(i, j) psi[t, k, (i, j)] x[i, (j + p s) mod nlon_in]`, a
//!   column-grid plane `[nlat_in, nlon_in]` to K row-grid planes `[K, nlat_out, nlon_out]`.
//! - [`scatter`]: its adjoint, K row-grid planes to one column-grid plane.
//!
//! - [`conv_forward`] / [`conv_backward`]: a whole DISCO convolution, fused ring by ring.
//!   The forward and the weight gradient run over output rings in parallel chunks; each
//!   chunk keeps the input rings it reads in a small window (`DoubledRings`), gathers one
//!   ring's in * K rows and mixes them with the `[out, in * K]` weight (or multiplies them with
//!   `dout`) while they are in cache. The input gradient runs over input rings, mixing `W^T
//!   dout` for the few output rings each reads (`RingWindow`) and scattering it. Nothing of
//!   size in * K * pixels is ever stored, so memory stays that of the tensors themselves.
//! - [`transpose_forward`] / [`transpose_backward`] for the transposed convolution (GEMM,
//!   then scatter).
//!
//! Each output row is built in blocks of `LANES` longitudes held in registers while all of
//! its psi entries stream past, reading the input rows from a copy laid twice end to end, so
//! the wrap-around of the longitude shift needs no branch and every read is contiguous.

use std::cell::RefCell;

use gemm::Parallelism;
use rayon::prelude::*;

use crate::conv::sgemm;
use crate::{Isa, SharedOut, par_ranges};

mod psi;

pub use psi::{PsiColumnEntry, PsiEntry, Rings, SparsePsi};

/// Longitudes per register block: 8 AVX2 registers of f32, enough independent FMA chains
/// to hide the FMA latency (a chain per register would wait ~4 cycles per entry); rows
/// whose length is not a multiple go on in blocks of [`SMALL_LANES`], then one by one.
const LANES: usize = 64;
const SMALL_LANES: usize = 16;

/// A zeroed buffer of `len` floats. Buffers of megabytes are asked to be backed by
/// transparent huge pages (Linux, where enabled for madvise): their first touch then faults
/// once per 2 MB instead of once per 4 KB, which for the large planes of sphere grids cost
/// more than the kernels themselves.
pub fn zeroed(len: usize) -> Vec<f32> {
    let mut v: Vec<f32> = Vec::with_capacity(len);
    crate::huge_pages::advise_huge_pages(v.as_mut_ptr().cast(), len * 4);
    v.resize(len, 0.0);
    v
}

thread_local! {
    static DOUBLED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
    /// One image's gathered planes (or their gradient), kept between calls.
    static IMAGE_SCRATCH: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Runs `f` on this thread's image scratch buffer of `len` floats (contents arbitrary).
fn with_image_scratch<R>(len: usize, f: impl FnOnce(&mut [f32]) -> R) -> R {
    IMAGE_SCRATCH.with_borrow_mut(|buffer| {
        if buffer.len() < len {
            *buffer = zeroed(len);
        }
        f(&mut buffer[..len])
    })
}

/// `rows` rows of length `n` each copied twice end to end into `out` (`rows * 2n`),
/// deinterleaved into `stride` phases (see [`double_row`]).
fn double_rows(src: &[f32], n: usize, stride: usize, out: &mut Vec<f32>) {
    out.resize(2 * src.len(), 0.0);
    for (row, d) in src.chunks_exact(n).zip(out.chunks_exact_mut(2 * n)) {
        double_row(row, stride, d);
    }
}

/// One row of `n` values into `2n`: for each phase r < stride, the values at r, r + stride,
/// ... (m = n / stride of them) laid twice end to end. With stride 1 the row twice. Reading
/// `j + p * stride` for p = 0.. of the original row is then reading the contiguous run at
/// `phase_offset(j, n, stride) + p`, across the wrap-around.
fn double_row(row: &[f32], stride: usize, out: &mut [f32]) {
    if stride == 1 {
        let (first, second) = out.split_at_mut(row.len());
        first.copy_from_slice(row);
        second.copy_from_slice(row);
        return;
    }
    let m = row.len() / stride;
    for r in 0..stride {
        let phase = &mut out[r * 2 * m..][..2 * m];
        for (q, v) in row.iter().skip(r).step_by(stride).enumerate() {
            phase[q] = *v;
            phase[q + m] = *v;
        }
    }
}

/// Where column `j` of a row starts in its [`double_row`] layout.
#[inline(always)]
fn phase_offset(j: usize, n: usize, stride: usize) -> usize {
    let m = n / stride;
    (j % stride) * 2 * m + j / stride
}

/// `out[0..W] = sum_e value_e * doubled[offset_e + p0 ..][..W]`, the W sums in registers.
#[inline(always)]
fn accumulate_block<const W: usize, const FMA: bool>(
    out: &mut [f32],
    p0: usize,
    terms: impl Iterator<Item = (usize, f32)>,
    doubled: &[f32],
) {
    let mut acc = [0.0f32; W];
    for (offset, v) in terms {
        let src: &[f32; W] = doubled[offset + p0..offset + p0 + W]
            .try_into()
            .expect("W values");
        for l in 0..W {
            // mul_add is one instruction only where FMA is enabled (else a libm call).
            acc[l] = if FMA {
                v.mul_add(src[l], acc[l])
            } else {
                acc[l] + v * src[l]
            };
        }
    }
    out[p0..p0 + W].copy_from_slice(&acc);
}

/// `out[l] = sum_e value_e * doubled[offset_e + l]` for every l.
#[inline(always)]
fn accumulate_row<const FMA: bool>(
    out: &mut [f32],
    terms: impl Iterator<Item = (usize, f32)> + Clone,
    doubled: &[f32],
) {
    let n = out.len();
    let mut p0 = 0;
    while p0 + LANES <= n {
        accumulate_block::<LANES, FMA>(out, p0, terms.clone(), doubled);
        p0 += LANES;
    }
    while p0 + SMALL_LANES <= n {
        accumulate_block::<SMALL_LANES, FMA>(out, p0, terms.clone(), doubled);
        p0 += SMALL_LANES;
    }
    for (p, o) in out.iter_mut().enumerate().skip(p0) {
        *o = terms
            .clone()
            .map(|(offset, v)| v * doubled[offset + p])
            .sum();
    }
}

/// `x [planes, nlat_in, nlon_in]` to `y [planes, K, nlat_out, nlon_out]`.
pub fn gather(psi: &SparsePsi, x: &[f32]) -> Vec<f32> {
    let planes = x.len() / psi.columns.points();
    let mut y = zeroed(planes * psi.kernel_size() * psi.rows.points());
    gather_into(psi, x, &mut y);
    y
}

/// [`gather`] into `y`, every value of which is overwritten.
pub fn gather_into(psi: &SparsePsi, x: &[f32], y: &mut [f32]) {
    let plane_in = psi.columns.points();
    let k_size = psi.kernel_size();
    let plane_out = k_size * psi.rows.points();
    assert_eq!(x.len() % plane_in, 0, "x is [planes, nlat_in, nlon_in]");
    assert_eq!(
        y.len(),
        x.len() / plane_in * plane_out,
        "y is [planes, K, nlat, nlon]"
    );
    y.par_chunks_mut(plane_out)
        .zip(x.par_chunks(plane_in))
        .for_each(|(y, x)| {
            DOUBLED.with_borrow_mut(|doubled| {
                double_rows(x, psi.columns.nlon, psi.stride, doubled);
                gather_plane_built(Isa::for_autovectorized(), psi, doubled, y)
            })
        });
}

/// One plane of [`gather`], row by output ring so that the few input rings it reads stay in
/// L1 across the K basis functions.
#[inline(always)]
fn gather_plane<const FMA: bool>(psi: &SparsePsi, doubled: &[f32], y: &mut [f32]) {
    let (n_in, n_out) = (psi.columns.nlon, psi.rows.nlon);
    for t in 0..psi.rows.nlat {
        for k in 0..psi.kernel_size() {
            let out = &mut y[(k * psi.rows.nlat + t) * n_out..][..n_out];
            let terms = psi.row(t, k).iter().map(|e| {
                let lon = phase_offset(e.lon as usize, n_in, psi.stride);
                (e.ring as usize * 2 * n_in + lon, e.value)
            });
            accumulate_row::<FMA>(out, terms, doubled);
        }
    }
}

isa_builds! {
    fn gather_plane_built(psi: &SparsePsi, doubled: &[f32], y: &mut [f32]) = gather_plane::<FMA>
}

/// The adjoint of [`gather`]: `y [planes, K, nlat_out, nlon_out]` to `x [planes, nlat_in,
/// nlon_in]`, `x[i, (j + p s) mod nlon_in] += psi[t, k, (i, j)] y[k, t, p]`.
pub fn scatter(psi: &SparsePsi, y: &[f32]) -> Vec<f32> {
    let planes = y.len() / (psi.kernel_size() * psi.rows.points());
    let mut x = zeroed(planes * psi.columns.points());
    scatter_into(psi, y, &mut x);
    x
}

/// [`scatter`] into `x`, every value of which is overwritten.
pub fn scatter_into(psi: &SparsePsi, y: &[f32], x: &mut [f32]) {
    let plane_in = psi.columns.points();
    let plane_out = psi.kernel_size() * psi.rows.points();
    assert_eq!(
        y.len() % plane_out,
        0,
        "y is [planes, K, nlat_out, nlon_out]"
    );
    assert_eq!(
        x.len(),
        y.len() / plane_out * plane_in,
        "x is [planes, nlat, nlon]"
    );
    x.par_chunks_mut(plane_in)
        .zip(y.par_chunks(plane_out))
        .for_each(|(x, y)| {
            DOUBLED.with_borrow_mut(|doubled| {
                double_rows(y, psi.rows.nlon, 1, doubled);
                scatter_plane_built(Isa::for_autovectorized(), psi, doubled, x)
            })
        });
}

/// One plane of [`scatter`].
#[inline(always)]
fn scatter_plane<const FMA: bool>(psi: &SparsePsi, doubled: &[f32], x: &mut [f32]) {
    let (n_in, n_out, s) = (psi.columns.nlon, psi.rows.nlon, psi.stride);
    for i in 0..psi.columns.nlat {
        let out = &mut x[i * n_in..][..n_in];
        let entries = psi.ring(i);
        if s == 1 {
            // x[i, q] = sum_e v_e y[row_e, q - j_e]: row q - j + n of the doubled copy.
            let terms = entries
                .iter()
                .map(|e| (e.row as usize * 2 * n_out + n_out - e.lon as usize, e.value));
            accumulate_row::<FMA>(out, terms, doubled);
        } else {
            // Phase r of the ring, x[i, r + m s], receives from the entries with j = r mod s:
            // x_r[m] = sum_e v_e y[row_e, m - j_e / s], a run of the doubled row as above.
            let mut phase = vec![0.0f32; n_out];
            for r in 0..s {
                let terms = entries.iter().filter(|e| e.lon as usize % s == r).map(|e| {
                    (
                        e.row as usize * 2 * n_out + n_out - e.lon as usize / s,
                        e.value,
                    )
                });
                accumulate_row::<FMA>(&mut phase, terms, doubled);
                for (m, v) in phase.iter().enumerate() {
                    out[r + m * s] = *v;
                }
            }
        }
    }
}

isa_builds! {
    fn scatter_plane_built(psi: &SparsePsi, doubled: &[f32], x: &mut [f32]) = scatter_plane::<FMA>
}

/// Pixels per block of [`mix_rows`]: two AVX2 registers.
const MIX_LANES: usize = 16;
/// Output rows per block of [`mix_rows`]: 4 x 2 accumulator registers, enough independent
/// FMA chains, with room left for the loads.
const MIX_ROWS: usize = 4;

/// `dst[o][..n] = sum_j w[o, j] src[j][..n]` for o < m, with `src` rows `src_stride` apart
/// and `dst` rows `dst_stride` apart: channel mixing of one ring, whose j source rows are hot
/// in cache. (A GEMM library packs the long pixel operand for such shapes and runs far
/// below peak.) Blocks of MIX_ROWS outputs x MIX_LANES pixels accumulate in registers.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn mix_rows<const FMA: bool>(
    w: &[f32],
    m: usize,
    j: usize,
    src: &[f32],
    src_stride: usize,
    dst: &mut [f32],
    dst_stride: usize,
    n: usize,
) {
    let mut p0 = 0;
    while p0 + MIX_LANES <= n {
        let mut o0 = 0;
        while o0 + MIX_ROWS <= m {
            let mut acc = [[0.0f32; MIX_LANES]; MIX_ROWS];
            for jj in 0..j {
                let s: &[f32; MIX_LANES] = src[jj * src_stride + p0..][..MIX_LANES]
                    .try_into()
                    .expect("MIX_LANES values");
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let wv = w[(o0 + r) * j + jj];
                    for l in 0..MIX_LANES {
                        acc_r[l] = if FMA {
                            wv.mul_add(s[l], acc_r[l])
                        } else {
                            acc_r[l] + wv * s[l]
                        };
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                dst[(o0 + r) * dst_stride + p0..][..MIX_LANES].copy_from_slice(acc_r);
            }
            o0 += MIX_ROWS;
        }
        for o in o0..m {
            for l in 0..MIX_LANES {
                dst[o * dst_stride + p0 + l] = (0..j)
                    .map(|jj| w[o * j + jj] * src[jj * src_stride + p0 + l])
                    .sum();
            }
        }
        p0 += MIX_LANES;
    }
    for p in p0..n {
        for o in 0..m {
            dst[o * dst_stride + p] = (0..j)
                .map(|jj| w[o * j + jj] * src[jj * src_stride + p])
                .sum();
        }
    }
}

/// `dw[o, j] += sum_p a[o][p] b[j][p]` over one ring's pixels (rows `a_stride`, `b_stride`
/// apart): for each j, blocks of MIX_ROWS o keep MIX_ROWS x MIX_LANES partial sums in
/// registers (the shape of [`mix_rows`]'s accumulators) while the pixels stream past.
#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn accumulate_outer<const FMA: bool>(
    dw: &mut [f32],
    m: usize,
    j: usize,
    a: &[f32],
    b: &[f32],
    a_stride: usize,
    b_stride: usize,
    n: usize,
) {
    let blocks = n / MIX_LANES;
    let dot = |o: usize, jj: usize, from: usize| -> f32 {
        (from..n)
            .map(|p| a[o * a_stride + p] * b[jj * b_stride + p])
            .sum()
    };
    for jj in 0..j {
        let b_row = &b[jj * b_stride..][..n];
        let mut o0 = 0;
        while o0 + MIX_ROWS <= m {
            let mut acc = [[0.0f32; MIX_LANES]; MIX_ROWS];
            for blk in 0..blocks {
                let p = blk * MIX_LANES;
                let bv: &[f32; MIX_LANES] = b_row[p..][..MIX_LANES].try_into().expect("lanes");
                for (r, acc_r) in acc.iter_mut().enumerate() {
                    let av: &[f32; MIX_LANES] = a[(o0 + r) * a_stride + p..][..MIX_LANES]
                        .try_into()
                        .expect("lanes");
                    for l in 0..MIX_LANES {
                        acc_r[l] = if FMA {
                            av[l].mul_add(bv[l], acc_r[l])
                        } else {
                            acc_r[l] + av[l] * bv[l]
                        };
                    }
                }
            }
            for (r, acc_r) in acc.iter().enumerate() {
                dw[(o0 + r) * j + jj] +=
                    acc_r.iter().sum::<f32>() + dot(o0 + r, jj, blocks * MIX_LANES);
            }
            o0 += MIX_ROWS;
        }
        for o in o0..m {
            dw[o * j + jj] += dot(o, jj, 0);
        }
    }
}

/// For each ring of one grid, the span `lo..=hi` of the rings of the other grid that its psi
/// entries read (None: no entries), and the widest span: the slots of a window of them, in
/// which ring r sits in slot `r mod slots` and the rings of one span never collide.
struct RingSpans {
    reads: Vec<Option<(usize, usize)>>,
    slots: usize,
}

impl RingSpans {
    fn new<I: Iterator<Item = usize> + Clone>(
        count: usize,
        rings_read: impl Fn(usize) -> I,
    ) -> Self {
        let reads: Vec<Option<(usize, usize)>> = (0..count)
            .map(|r| {
                let rings = rings_read(r);
                Some((rings.clone().min()?, rings.max().expect("not empty")))
            })
            .collect();
        let slots = reads
            .iter()
            .flatten()
            .map(|(lo, hi)| hi - lo + 1)
            .max()
            .unwrap_or(1);
        RingSpans { reads, slots }
    }
}

/// The input rings each output ring reads, for the fused convolution's passes over output
/// rings: each task takes a chunk of consecutive output rings and keeps the input rings they
/// read, doubled, in a window (`DoubledRings`) instead of doubling whole images up front.
struct InputRings {
    spans: RingSpans,
    /// Output rings per parallel task.
    chunk: usize,
}

impl InputRings {
    fn new(psi: &SparsePsi) -> Self {
        let spans = RingSpans::new(psi.rows.nlat, |t| {
            (0..psi.kernel_size())
                .flat_map(move |k| psi.row(t, k))
                .map(|e| e.ring as usize)
        });
        // Many small tasks: rings near the poles cost more than the rest.
        let tasks = 8 * rayon::current_num_threads();
        let chunk = psi.rows.nlat.div_ceil(tasks).max(spans.slots);
        InputRings { spans, chunk }
    }
}

/// A task's window of input rings for every channel of one image, each row laid twice end to
/// end (see [`double_row`]): input ring i in slot `i mod slots`, channel c at `c * 2 nlon` in
/// its slot.
struct DoubledRings {
    data: Vec<f32>,
    held: Vec<Option<usize>>,
    slot_len: usize,
}

impl DoubledRings {
    fn new(psi: &SparsePsi, rings: &InputRings, channels: usize) -> Self {
        let slot_len = channels * 2 * psi.columns.nlon;
        DoubledRings {
            data: vec![0.0; rings.spans.slots * slot_len],
            held: vec![None; rings.spans.slots],
            slot_len,
        }
    }

    /// Makes sure input rings `lo..=hi` of `x_b [channels, nlat, nlon]` are in the window.
    fn hold(&mut self, psi: &SparsePsi, x_b: &[f32], (lo, hi): (usize, usize)) {
        let (nlon, nlat) = (psi.columns.nlon, psi.columns.nlat);
        let slots = self.held.len();
        for i in lo..=hi {
            if self.held[i % slots] == Some(i) {
                continue;
            }
            self.held[i % slots] = Some(i);
            let slot = &mut self.data[(i % slots) * self.slot_len..][..self.slot_len];
            for (c, dst) in slot.chunks_exact_mut(2 * nlon).enumerate() {
                double_row(&x_b[(c * nlat + i) * nlon..][..nlon], psi.stride, dst);
            }
        }
    }

    /// Where column `lon` of input ring `ring`, channel 0, starts.
    fn offset(&self, psi: &SparsePsi, ring: usize, lon: usize) -> usize {
        (ring % self.held.len()) * self.slot_len + phase_offset(lon, psi.columns.nlon, psi.stride)
    }
}

/// The gathered rows `y[c, k][..nlon_out]` of output ring `t` for all channels of one image,
/// from the window holding the input rings it reads. `terms` is scratch, one list per basis
/// function; channels go outermost, so the K rows of a channel read its input rows while hot.
#[inline(always)]
fn gather_ring<const FMA: bool>(
    psi: &SparsePsi,
    window: &DoubledRings,
    channels: usize,
    t: usize,
    terms: &mut Vec<Vec<(usize, f32)>>,
    y: &mut [f32],
) {
    let (n_in, n_out, k_size) = (psi.columns.nlon, psi.rows.nlon, psi.kernel_size());
    let stride = ring_stride(n_out);
    terms.resize_with(k_size, Vec::new);
    for (k, terms) in terms.iter_mut().enumerate() {
        terms.clear();
        terms.extend(
            psi.row(t, k)
                .iter()
                .map(|e| (window.offset(psi, e.ring as usize, e.lon as usize), e.value)),
        );
    }
    for c in 0..channels {
        let channel = c * 2 * n_in;
        for (k, terms) in terms.iter().enumerate() {
            let terms = terms.iter().map(|&(o, v)| (o + channel, v));
            let out = &mut y[(c * k_size + k) * stride..][..n_out];
            accumulate_row::<FMA>(out, terms, &window.data);
        }
    }
}

/// Adds `bias[o]` to every pixel of channel o of `out [B, out, pixels]`.
pub fn add_bias(out: &mut [f32], bias: &[f32], batch: usize) {
    let plane = out.len() / (batch * bias.len()).max(1);
    if plane == 0 || bias.iter().all(|b| *b == 0.0) {
        return;
    }
    out.par_chunks_mut(plane).enumerate().for_each(|(i, p)| {
        let b = bias[i % bias.len()];
        p.iter_mut().for_each(|v| *v += b);
    });
}

/// The bias gradient: per channel o, the sum of `dout [B, out, pixels]` over images and pixels.
pub fn bias_grad(dout: &[f32], batch: usize, channels: usize) -> Vec<f32> {
    let plane = dout.len() / (batch * channels).max(1);
    let sums: Vec<f64> = dout
        .par_chunks(plane.max(1))
        .map(|p| p.iter().map(|v| *v as f64).sum())
        .collect();
    (0..channels)
        .map(|o| (0..batch).map(|b| sums[b * channels + o]).sum::<f64>() as f32)
        .collect()
}

/// Batch and channels of a fused DISCO convolution.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DiscoShape {
    pub batch: usize,
    pub c_in: usize,
    pub c_out: usize,
}

fn gemm_threads() -> Parallelism {
    match rayon::current_num_threads() {
        1 => Parallelism::None,
        n => Parallelism::Rayon(n),
    }
}

/// `out [B, out, nlat_r, nlon_r] = weight [out, in * K] . gather(x_b [in, nlat_c, nlon_c])`
/// per image b (no bias). Fused per output ring: the ring's gathered rows for all channels
/// (in * K rows of nlon_r, cache-resident) are mixed as soon as they are made; each task
/// takes a chunk of output rings and doubles only the input rings they read.
pub fn conv_forward(psi: &SparsePsi, s: DiscoShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    assert_eq!(x.len(), s.batch * s.c_in * cols, "x is [B, in, nlat, nlon]");
    assert_eq!(weight.len(), s.c_out * s.c_in * k, "weight is [out, in, K]");
    let rings = InputRings::new(psi);
    let isa = Isa::for_autovectorized();
    let mut out = zeroed(s.batch * s.c_out * rows);
    for b in 0..s.batch {
        let x_b = &x[b * s.c_in * cols..][..s.c_in * cols];
        let out_b = SharedOut::new(&mut out[b * s.c_out * rows..][..s.c_out * rows]);
        par_ranges(psi.rows.nlat, rings.chunk).for_each(|chunk| {
            // SAFETY: this task writes only its chunk's rings of every output channel.
            let dst = unsafe { out_b.slice() };
            forward_rings(psi, &rings, s, x_b, weight, chunk, dst, isa);
        });
    }
    out
}

/// Output rings `chunk` of one image's [`conv_forward`] into `dst [out, nlat_r, nlon_r]`.
#[allow(clippy::too_many_arguments)]
fn forward_rings(
    psi: &SparsePsi,
    rings: &InputRings,
    s: DiscoShape,
    x_b: &[f32],
    weight: &[f32],
    chunk: std::ops::Range<usize>,
    dst: &mut [f32],
    isa: Isa,
) {
    let (n_out, ck) = (psi.rows.nlon, s.c_in * psi.kernel_size());
    let mut window = DoubledRings::new(psi, rings, s.c_in);
    let mut ring = RingScratch::new(ck * ring_stride(n_out));
    for t in chunk {
        let dst = &mut dst[t * n_out..];
        let Some(read) = rings.spans.reads[t] else {
            for o in 0..s.c_out {
                dst[o * psi.rows.points()..][..n_out].fill(0.0);
            }
            continue;
        };
        window.hold(psi, x_b, read);
        forward_ring_built(isa, psi, &window, s, weight, t, &mut ring, dst);
    }
}

/// The distance between a ring's gathered rows in [`RingScratch`]: the ring's length plus 16
/// values, so that rows of a power-of-two length do not all fall in the same cache sets
/// (at 512x1024, 64 rows 4 KB apart thrashed L1 in the channel mixing that reads them
/// together).
fn ring_stride(n_out: usize) -> usize {
    n_out + 16
}

/// A task's scratch for one output ring: its gathered rows and the psi terms per basis
/// function.
struct RingScratch {
    y: Vec<f32>,
    terms: Vec<Vec<(usize, f32)>>,
}

impl RingScratch {
    fn new(len: usize) -> Self {
        RingScratch {
            y: vec![0.0; len],
            terms: Vec::new(),
        }
    }
}

#[inline(always)]
fn forward_ring<const FMA: bool>(
    psi: &SparsePsi,
    window: &DoubledRings,
    s: DiscoShape,
    weight: &[f32],
    t: usize,
    ring: &mut RingScratch,
    dst: &mut [f32],
) {
    let (n_out, ck) = (psi.rows.nlon, s.c_in * psi.kernel_size());
    gather_ring::<FMA>(psi, window, s.c_in, t, &mut ring.terms, &mut ring.y);
    mix_rows::<FMA>(
        weight,
        s.c_out,
        ck,
        &ring.y,
        ring_stride(n_out),
        dst,
        psi.rows.points(),
        n_out,
    );
}

isa_builds! {
    fn forward_ring_built(
        psi: &SparsePsi,
        window: &DoubledRings,
        s: DiscoShape,
        weight: &[f32],
        t: usize,
        ring: &mut RingScratch,
        dst: &mut [f32],
    ) = forward_ring::<FMA>
}

/// Gradients of [`conv_forward`] for x and the weight, each only if wanted, image by image.
/// The weight gradient recomputes each output ring's gathered rows and multiplies them with
/// the ring's `dout`; the input gradient (`input_grad_image`) scatters `W^T dout`, mixed
/// ring by ring in cache.
pub fn conv_backward(
    psi: &SparsePsi,
    s: DiscoShape,
    x: &[f32],
    weight: &[f32],
    dout: &[f32],
    (want_x, want_weight): (bool, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    let ck = s.c_in * k;
    let mut dx = want_x.then(|| zeroed(s.batch * s.c_in * cols));
    let mut dw = want_weight.then(|| vec![0.0f32; s.c_out * ck]);
    // W^T [in K, out] for the input gradient's mixing.
    let w_t: Vec<f32> = (0..ck)
        .flat_map(|j| (0..s.c_out).map(move |o| (o, j)))
        .map(|(o, j)| weight[o * ck + j])
        .collect();
    let window = RingWindow::new(psi, s.c_in);
    let rings = InputRings::new(psi);
    let isa = Isa::for_autovectorized();
    for b in 0..s.batch {
        let dout_b = &dout[b * s.c_out * rows..][..s.c_out * rows];
        if let Some(dw) = dw.as_mut() {
            let x_b = &x[b * s.c_in * cols..][..s.c_in * cols];
            let partial = par_ranges(psi.rows.nlat, rings.chunk)
                .map(|chunk| {
                    let mut acc = vec![0.0f32; s.c_out * ck];
                    weight_grad_rings(psi, &rings, s, x_b, dout_b, chunk, &mut acc, isa);
                    acc
                })
                .reduce(
                    || vec![0.0f32; s.c_out * ck],
                    |mut a, b| {
                        a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                        a
                    },
                );
            dw.iter_mut().zip(&partial).for_each(|(x, y)| *x += y);
        }
        if let Some(dx) = dx.as_mut() {
            let dx_b = &mut dx[b * s.c_in * cols..][..s.c_in * cols];
            input_grad_image(psi, s, &w_t, &window, dout_b, dx_b);
        }
    }
    (dx, dw)
}

/// How [`input_grad_image`] walks the input rings: in chunks (the parallel tasks) and, within
/// a chunk, in groups of channels, keeping the mixed rows `W^T dout` of the output rings that
/// the current input ring reads in a window of `slots` rings. Output ring t lives in slot
/// `t mod slots`; since the rings one input ring reads are consecutive and at most `slots`,
/// they never share a slot, and as the input ring moves down the sphere each output ring is
/// mixed about once per chunk.
struct RingWindow {
    /// Per input ring, the output rings it reads.
    spans: RingSpans,
    /// Input channels per group, so the window of one group stays in the L2 cache.
    group: usize,
    /// Input rings per parallel task.
    chunk: usize,
}

/// Bytes the window of one channel group may take: about half an L2 cache.
const WINDOW_BYTES: usize = 256 << 10;

impl RingWindow {
    fn new(psi: &SparsePsi, c_in: usize) -> Self {
        let nlat_r = psi.rows.nlat;
        let spans = RingSpans::new(psi.columns.nlat, |i| {
            psi.ring(i).iter().map(move |e| e.row as usize % nlat_r)
        });
        let channel_bytes = spans.slots * psi.kernel_size() * 2 * psi.rows.nlon * 4;
        let group = (WINDOW_BYTES / channel_bytes).clamp(1, c_in.max(1));
        let tasks = 4 * rayon::current_num_threads();
        let chunk = psi.columns.nlat.div_ceil(tasks).max(4 * spans.slots);
        RingWindow {
            spans,
            group,
            chunk,
        }
    }
}

/// The input gradient of one image, `dx_b [in, nlat_c, nlon_c]`: for each input ring i,
/// `dx[c, i, q] = sum_e v_e dy[c, k_e, t_e, q - j_e]` over ring i's psi entries, where
/// `dy[c, k, t] = sum_o W[o, c, k] dout[o, t]` is mixed for the few output rings t that ring i
/// reads, while they are in cache, instead of for the whole image first.
fn input_grad_image(
    psi: &SparsePsi,
    s: DiscoShape,
    w_t: &[f32],
    window: &RingWindow,
    dout_b: &[f32],
    dx_b: &mut [f32],
) {
    let isa = Isa::for_autovectorized();
    let nlat_c = psi.columns.nlat;
    let dx_out = SharedOut::new(dx_b);
    par_ranges(nlat_c, window.chunk).for_each(|rings| {
        // SAFETY: this task writes only the input rings of its chunk, in every channel.
        let dx_b = unsafe { dx_out.slice() };
        input_grad_rings_built(isa, psi, s, w_t, window, dout_b, rings, dx_b)
    });
}

/// [`input_grad_image`] for the input rings `rings`, writing only those rings of `dx_b`.
#[inline(always)]
fn input_grad_rings<const FMA: bool>(
    psi: &SparsePsi,
    s: DiscoShape,
    w_t: &[f32],
    window: &RingWindow,
    dout_b: &[f32],
    rings: std::ops::Range<usize>,
    dx_b: &mut [f32],
) {
    let (n_in, n_out, stride) = (psi.columns.nlon, psi.rows.nlon, psi.stride);
    let (nlat_r, k_size) = (psi.rows.nlat, psi.kernel_size());
    let row_len = 2 * n_out;
    let slot_len = window.group * k_size * row_len;
    let mut mixed = vec![0.0f32; window.spans.slots * slot_len];
    let mut phase = vec![0.0f32; n_out];
    // Per psi entry of the current input ring: its phase and its offset in the window for
    // the group's first channel.
    let mut terms: Vec<(usize, usize, f32)> = Vec::new();
    for c0 in (0..s.c_in).step_by(window.group) {
        let group = window.group.min(s.c_in - c0);
        let mut held: Vec<Option<usize>> = vec![None; window.spans.slots];
        for i in rings.clone() {
            let Some((lo, hi)) = window.spans.reads[i] else {
                for c in c0..c0 + group {
                    dx_b[(c * psi.columns.nlat + i) * n_in..][..n_in].fill(0.0);
                }
                continue;
            };
            for t in lo..=hi {
                let slot = t % window.spans.slots;
                if held[slot] == Some(t) {
                    continue;
                }
                held[slot] = Some(t);
                // Rows (c, k) for c in the group: sum_o W^T[(c, k), o] dout[o, t], laid twice.
                let dst = &mut mixed[slot * slot_len..][..slot_len];
                let w = &w_t[c0 * k_size * s.c_out..];
                let src = &dout_b[t * n_out..];
                let m = group * k_size;
                mix_rows::<FMA>(w, m, s.c_out, src, psi.rows.points(), dst, row_len, n_out);
                for row in dst.chunks_exact_mut(row_len).take(m) {
                    row.copy_within(..n_out, n_out);
                }
            }
            terms.clear();
            terms.extend(psi.ring(i).iter().map(|e| {
                let (k, t) = (e.row as usize / nlat_r, e.row as usize % nlat_r);
                let (lon, r) = (e.lon as usize / stride, e.lon as usize % stride);
                let offset = (t % window.spans.slots) * slot_len + k * row_len + n_out - lon;
                (r, offset, e.value)
            }));
            for c in 0..group {
                let out = &mut dx_b[((c0 + c) * psi.columns.nlat + i) * n_in..][..n_in];
                let channel = c * k_size * row_len;
                if stride == 1 {
                    // dx[c, i, q] = sum_e v_e dy[row_e, q - j_e]: a run of the doubled row.
                    let terms = terms.iter().map(|&(_, o, v)| (o + channel, v));
                    accumulate_row::<FMA>(out, terms, &mixed);
                } else {
                    // Phase r, dx[c, i, r + m s], receives from the entries with j = r mod s:
                    // sum_e v_e dy[row_e, m - j_e / s].
                    for r in 0..stride {
                        let terms = terms
                            .iter()
                            .filter(|e| e.0 == r)
                            .map(|&(_, o, v)| (o + channel, v));
                        accumulate_row::<FMA>(&mut phase, terms, &mixed);
                        for (m, v) in phase.iter().enumerate() {
                            out[r + m * stride] = *v;
                        }
                    }
                }
            }
        }
    }
}

isa_builds! {
    fn input_grad_rings_built(
        psi: &SparsePsi,
        s: DiscoShape,
        w_t: &[f32],
        window: &RingWindow,
        dout_b: &[f32],
        rings: std::ops::Range<usize>,
        dx_b: &mut [f32],
    ) = input_grad_rings::<FMA>
}

/// The weight gradient's share of output rings `chunk` of one image, added to `acc [out, in
/// K]`: the rings' gathered rows, recomputed, times their `dout`.
#[allow(clippy::too_many_arguments)]
fn weight_grad_rings(
    psi: &SparsePsi,
    rings: &InputRings,
    s: DiscoShape,
    x_b: &[f32],
    dout_b: &[f32],
    chunk: std::ops::Range<usize>,
    acc: &mut [f32],
    isa: Isa,
) {
    let mut window = DoubledRings::new(psi, rings, s.c_in);
    let mut ring = RingScratch::new(s.c_in * psi.kernel_size() * ring_stride(psi.rows.nlon));
    for t in chunk {
        let Some(read) = rings.spans.reads[t] else {
            continue;
        };
        window.hold(psi, x_b, read);
        let dout_t = &dout_b[t * psi.rows.nlon..];
        weight_grad_ring_built(isa, psi, &window, s, dout_t, t, &mut ring, acc);
    }
}

#[inline(always)]
fn weight_grad_ring<const FMA: bool>(
    psi: &SparsePsi,
    window: &DoubledRings,
    s: DiscoShape,
    dout_t: &[f32],
    t: usize,
    ring: &mut RingScratch,
    acc: &mut [f32],
) {
    let (n_out, ck) = (psi.rows.nlon, s.c_in * psi.kernel_size());
    gather_ring::<FMA>(psi, window, s.c_in, t, &mut ring.terms, &mut ring.y);
    let (y, rows) = (&ring.y, psi.rows.points());
    if FMA {
        // A call of its own: inlined into this larger function, LLVM left it scalar.
        accumulate_outer_built(
            Isa::for_autovectorized(),
            acc,
            s.c_out,
            ck,
            dout_t,
            y,
            rows,
            ring_stride(n_out),
            n_out,
        )
    } else {
        accumulate_outer::<false>(acc, s.c_out, ck, dout_t, y, rows, ring_stride(n_out), n_out)
    }
}

isa_builds! {
    #[inline(never)]
    #[allow(clippy::too_many_arguments)]
    fn accumulate_outer_built(
        dw: &mut [f32],
        m: usize,
        j: usize,
        a: &[f32],
        b: &[f32],
        a_stride: usize,
        b_stride: usize,
        n: usize,
    ) = accumulate_outer::<FMA>
}

isa_builds! {
    fn weight_grad_ring_built(
        psi: &SparsePsi,
        window: &DoubledRings,
        s: DiscoShape,
        dout_t: &[f32],
        t: usize,
        ring: &mut RingScratch,
        acc: &mut [f32],
    ) = weight_grad_ring::<FMA>
}

/// `weight [out, in, K]` as `[out, K, in]`: the transposed convolution mixes channels first.
fn out_k_in(weight: &[f32], s: DiscoShape, k: usize) -> Vec<f32> {
    let mut w = vec![0.0f32; weight.len()];
    for o in 0..s.c_out {
        for c in 0..s.c_in {
            for kk in 0..k {
                w[(o * k + kk) * s.c_in + c] = weight[(o * s.c_in + c) * k + kk];
            }
        }
    }
    w
}

/// The transposed convolution: `mixed_b [out * K, rows] = weight' [out K, in] . x_b [in,
/// rows]`, then `out_b = scatter(mixed_b)` onto the column grid (no bias).
pub fn transpose_forward(psi: &SparsePsi, s: DiscoShape, x: &[f32], weight: &[f32]) -> Vec<f32> {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    assert_eq!(x.len(), s.batch * s.c_in * rows, "x is [B, in, nlat, nlon]");
    assert_eq!(weight.len(), s.c_out * s.c_in * k, "weight is [out, in, K]");
    let w = out_k_in(weight, s, k);
    let mut out = zeroed(s.batch * s.c_out * cols);
    with_image_scratch(s.c_out * k * rows, |mixed| {
        for b in 0..s.batch {
            sgemm(
                (s.c_out * k, rows, s.c_in),
                mixed,
                rows,
                false,
                (&w, s.c_in, 1),
                (&x[b * s.c_in * rows..][..s.c_in * rows], rows, 1),
                gemm_threads(),
            );
            scatter_into(psi, mixed, &mut out[b * s.c_out * cols..][..s.c_out * cols]);
        }
    });
    out
}

/// Gradients of [`transpose_forward`] for x and the weight, each only if wanted.
pub fn transpose_backward(
    psi: &SparsePsi,
    s: DiscoShape,
    x: &[f32],
    weight: &[f32],
    dout: &[f32],
    (want_x, want_weight): (bool, bool),
) -> (Option<Vec<f32>>, Option<Vec<f32>>) {
    let (k, rows, cols) = (psi.kernel_size(), psi.rows.points(), psi.columns.points());
    let ok = s.c_out * k;
    let w = out_k_in(weight, s, k);
    let mut dx = want_x.then(|| zeroed(s.batch * s.c_in * rows));
    let mut dw_oki = want_weight.then(|| vec![0.0f32; ok * s.c_in]);
    with_image_scratch(ok * rows, |dmixed| {
        for b in 0..s.batch {
            gather_into(psi, &dout[b * s.c_out * cols..][..s.c_out * cols], dmixed);
            let x_b = &x[b * s.c_in * rows..][..s.c_in * rows];
            if let Some(dw) = dw_oki.as_mut() {
                // dW' [out K, in] += dmixed [out K, rows] . x_b^T [rows, in].
                sgemm(
                    (ok, s.c_in, rows),
                    dw,
                    s.c_in,
                    b > 0,
                    (dmixed, rows, 1),
                    (x_b, 1, rows),
                    gemm_threads(),
                );
            }
            if let Some(dx) = dx.as_mut() {
                // dx_b [in, rows] = W'^T [in, out K] . dmixed.
                sgemm(
                    (s.c_in, rows, ok),
                    &mut dx[b * s.c_in * rows..][..s.c_in * rows],
                    rows,
                    false,
                    (&w, 1, s.c_in),
                    (dmixed, rows, 1),
                    gemm_threads(),
                );
            }
        }
    });
    let dw = dw_oki.map(|d| {
        let mut out = vec![0.0f32; d.len()];
        for o in 0..s.c_out {
            for c in 0..s.c_in {
                for kk in 0..k {
                    out[(o * s.c_in + c) * k + kk] = d[(o * k + kk) * s.c_in + c];
                }
            }
        }
        out
    });
    (dx, dw)
}

#[cfg(test)]
pub(crate) mod reference;
#[cfg(test)]
mod tests;
