//! Our own kernels where burn is slow, each with a plain reference the tests compare against.
//!
//! [`conv2d`] is the one entry point the layers call: on burn's `Flex` CPU backend (with or
//! without autodiff) it runs [`conv_cpu`]'s im2col + GEMM kernels; on every other backend, or
//! when [`set_kernels`] chose [`Kernels::Burn`], it runs burn's own `conv2d`. Likewise
//! [`batch_norm_train`] runs [`batch_norm_cpu`] in place of burn's training-mode batch norm,
//! and [`disco_conv`] / [`disco_conv_transpose`] run [`disco_cpu`]'s fused sphere kernels in
//! place of a select, a scatter-add and a batched matmul.

/// Defines `unsafe fn $name(args)` running `$f` built for AVX2 + FMA on x86_64 (callers check
/// [`has_avx2_fma`] first), and a plain build elsewhere: `= f::<FMA>` for kernels generic over
/// whether FMA is available, `= f` for code that only needs the wider registers.
macro_rules! avx2_fma_build {
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $f:ident::<FMA>) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f::<true>($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f::<false>($($arg),*)
        }
    };
    ($(#[$attr:meta])* fn $name:ident($($arg:ident: $ty:ty),* $(,)?) = $f:ident) => {
        #[cfg(target_arch = "x86_64")]
        #[target_feature(enable = "avx2,fma")]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f($($arg),*)
        }

        #[cfg(not(target_arch = "x86_64"))]
        $(#[$attr])*
        unsafe fn $name($($arg: $ty),*) {
            $f($($arg),*)
        }
    };
}

pub mod batch_norm_cpu;
pub mod conv_cpu;
pub mod disco_cpu;
mod flex;
mod huge_pages;
pub mod pool_cpu;
pub mod winograd_cpu;

use std::sync::Arc;
use std::sync::atomic::{AtomicU8, AtomicU64, Ordering};

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::kernels::DiscoPsi;

pub use flex::GConvBackend;
pub use huge_pages::{HugePageAllocator, set_block_reuse, set_huge_pages};

/// Which conv implementation [`conv2d`] uses on the CPU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kernels {
    /// equivar's kernels on the Flex backend, burn's elsewhere (the default).
    Equivar,
    /// burn's conv2d everywhere: the reference path, and the baseline benchmarks compare with.
    Burn,
}

static KERNELS: AtomicU8 = AtomicU8::new(0);

/// Chooses the conv implementation for the whole process. `EQUIVAR_KERNELS=burn` in the
/// environment sets [`Kernels::Burn`] before the first call.
pub fn set_kernels(kernels: Kernels) {
    KERNELS.store(
        match kernels {
            Kernels::Equivar => 1,
            Kernels::Burn => 2,
        },
        Ordering::Relaxed,
    );
}

/// The conv implementation in use.
pub fn kernels() -> Kernels {
    match KERNELS.load(Ordering::Relaxed) {
        1 => Kernels::Equivar,
        2 => Kernels::Burn,
        _ => {
            let from_env = match std::env::var("EQUIVAR_KERNELS").as_deref() {
                Ok("burn") => Kernels::Burn,
                _ => Kernels::Equivar,
            };
            set_kernels(from_env);
            from_env
        }
    }
}

static CONV_FLOPS: AtomicU64 = AtomicU64::new(0);

/// Forward conv FLOPs (2 x multiply-adds) run through [`conv2d`] since the process started,
/// on any route: benchmarks read it around one forward pass to know a model's conv work.
pub fn conv_flops() -> u64 {
    CONV_FLOPS.load(Ordering::Relaxed)
}

/// Whether `device` is burn's Flex CPU backend, with or without autodiff.
pub fn is_flex(device: &Device) -> bool {
    matches!(
        device.as_dispatch().clone().inner(),
        DispatchDevice::Flex(_)
    )
}

/// The machine's fp32 GEMM rate in GFLOP/s: the median of three `size x size x size`
/// products on all rayon threads, the reference "peak" benchmarks report shares of.
pub fn sgemm_gflops(size: usize) -> f64 {
    conv_cpu::sgemm_gflops(size)
}

/// Square-window conv2d, `x [B, C_in, H, W]`, `weight [C_out, C_in, k, k]`, one bias per
/// output channel; stride, padding and dilation symmetric.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Tensor<4> {
    let shape = conv_cpu::ConvShape::of(&x.dims(), &weight.dims(), stride, padding, dilation);
    if let Err(e) = shape.validate() {
        panic!("{e}");
    }
    CONV_FLOPS.fetch_add(shape.forward_flops() as u64, Ordering::Relaxed);
    let device = x.device();
    let fast = fast_path(&x) && weight.dims()[2] == weight.dims()[3];
    if !fast {
        let options = ConvOptions::new([stride; 2], [padding; 2], [dilation; 2], 1);
        return burn_conv2d(x, weight, bias, options);
    }
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &device));
    Tensor::from_dispatch(Dispatch::equivar_conv2d(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        stride,
        padding,
        dilation,
    ))
}

/// Whether equivar's CPU kernels serve `x`.
fn fast_path<const D: usize>(x: &Tensor<D>) -> bool {
    kernels() == Kernels::Equivar && is_flex(&x.device()) && x.dtype() == DType::F32
}

/// Training-mode batch norm over the channels of `x [B, C, H, W]`: the normalised output
/// and the batch's per-channel mean and biased variance (detached), as burn's
/// `batch_norm_train` returns them.
pub fn batch_norm_train(
    x: Tensor<4>,
    gamma: Tensor<1>,
    beta: Tensor<1>,
    epsilon: f64,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    if !fast_path(&x) {
        let r = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        return (r.output, r.mean, r.variance);
    }
    let channels = x.dims()[1];
    let stats = Tensor::<2>::from_dispatch(Dispatch::equivar_batch_norm_stats(
        x.clone().into_dispatch(),
    ));
    let y = Tensor::from_dispatch(Dispatch::equivar_batch_norm(
        x.into_dispatch(),
        gamma.into_dispatch(),
        beta.into_dispatch(),
        stats.clone().into_dispatch(),
        epsilon,
    ));
    let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let variance = stats.slice([1..2, 0..channels]).reshape([channels]);
    (y, mean, variance)
}

/// Max pooling of `x [B, C, H, W]` with a square window, symmetric stride, padding and
/// dilation: equivar's kernel ([`pool_cpu`]) for the common 2x2, stride-2 window on Flex,
/// burn's pool otherwise.
pub fn max_pool2d(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
) -> Tensor<4> {
    if (kernel, stride, padding, dilation) == (2, 2, 0, 1) && fast_path(&x) {
        return Tensor::from_dispatch(Dispatch::equivar_max_pool_2x2(x.into_dispatch()));
    }
    burn::tensor::module::max_pool2d(
        x,
        MaxPoolOptions::new([kernel; 2])
            .with_stride([stride; 2])
            .with_padding([padding; 2])
            .with_dilation([dilation; 2]),
    )
}

/// DISCO's sparse contraction: `x [planes, nlat_in, nlon_in]` on `psi`'s column grid to
/// `[planes, K, nlat_out, nlon_out]` on its row grid. On Flex it runs [`disco_cpu::gather`]
/// (backward: [`disco_cpu::scatter`]); elsewhere a select and a scatter-add of burn's, which
/// autodiff differentiates (memory grows with nnz * nlon_out: for small grids and GPUs).
pub fn disco_gather(x: Tensor<3>, psi: &Arc<DiscoPsi>) -> Tensor<4> {
    let [_, nlat, nlon] = x.dims();
    assert_eq!(
        [nlat, nlon],
        [psi.columns.nlat, psi.columns.nlon],
        "disco_gather: x is on the {}x{} grid",
        psi.columns.nlat,
        psi.columns.nlon
    );
    if fast_path(&x) {
        return Tensor::from_dispatch(Dispatch::equivar_disco_gather(
            x.into_dispatch(),
            psi.clone(),
        ));
    }
    disco_gather_generic(x, psi)
}

/// [`disco_gather`] with burn's select and scatter-add, on any backend.
pub fn disco_gather_generic(x: Tensor<3>, psi: &DiscoPsi) -> Tensor<4> {
    let [planes, nlat, nlon] = x.dims();
    let out = [planes, psi.kernel_size(), psi.rows.nlat, psi.rows.nlon];
    let (columns, rows, values) = disco_index(psi, &x.device());
    let picked = x.reshape([planes, nlat * nlon]).select(1, columns) * values.unsqueeze::<2>();
    Tensor::<2>::zeros([planes, out[1] * out[2] * out[3]], &picked.device())
        .select_assign(1, rows, picked, IndexingUpdateOp::Add)
        .reshape(out)
}

/// The adjoint of [`disco_gather`]: `[planes, K, nlat_out, nlon_out]` to `[planes, nlat_in,
/// nlon_in]`.
pub fn disco_scatter(y: Tensor<4>, psi: &Arc<DiscoPsi>) -> Tensor<3> {
    let [_, k, nlat, nlon] = y.dims();
    assert_eq!(
        [k, nlat, nlon],
        [psi.kernel_size(), psi.rows.nlat, psi.rows.nlon],
        "disco_scatter: y is [planes, K, nlat, nlon] on the {}x{} grid",
        psi.rows.nlat,
        psi.rows.nlon
    );
    if fast_path(&y) {
        return Tensor::from_dispatch(Dispatch::equivar_disco_scatter(
            y.into_dispatch(),
            psi.clone(),
        ));
    }
    disco_scatter_generic(y, psi)
}

/// [`disco_scatter`] with burn's select and scatter-add, on any backend.
pub fn disco_scatter_generic(y: Tensor<4>, psi: &DiscoPsi) -> Tensor<3> {
    let [planes, k, nlat, nlon] = y.dims();
    let out = [planes, psi.columns.nlat, psi.columns.nlon];
    let (columns, rows, values) = disco_index(psi, &y.device());
    let picked = y.reshape([planes, k * nlat * nlon]).select(1, rows) * values.unsqueeze::<2>();
    Tensor::<2>::zeros([planes, out[1] * out[2]], &picked.device())
        .select_assign(1, columns, picked, IndexingUpdateOp::Add)
        .reshape(out)
}

/// psi unrolled over the output longitudes: for every entry and p, the flat input index,
/// the flat output index and the value (the generic path's select / scatter-add operands).
fn disco_index(psi: &DiscoPsi, device: &Device) -> (Tensor<1, Int>, Tensor<1, Int>, Tensor<1>) {
    let (n_in, n_out) = (psi.columns.nlon, psi.rows.nlon);
    let len = psi.nnz() * n_out;
    let (mut columns, mut rows, mut values) = (
        Vec::with_capacity(len),
        Vec::with_capacity(len),
        Vec::with_capacity(len),
    );
    for t in 0..psi.rows.nlat {
        for k in 0..psi.kernel_size() {
            for e in psi.row(t, k) {
                for p in 0..n_out {
                    let j = (e.lon as usize + p * psi.stride) % n_in;
                    columns.push((e.ring as usize * n_in + j) as i64);
                    rows.push(((k * psi.rows.nlat + t) * n_out + p) as i64);
                    values.push(e.value);
                }
            }
        }
    }
    let int = |v: Vec<i64>| Tensor::from_data(TensorData::new(v, [len]), device);
    (
        int(columns),
        int(rows),
        Tensor::from_data(TensorData::new(values, [len]), device),
    )
}

/// A DISCO convolution, `x [B, in, nlat, nlon]` on psi's column grid, `weight [out, in, K]`
/// and one bias per output channel, to `[B, out, nlat, nlon]` on its row grid: equivar's
/// fused kernel on Flex ([`disco_cpu::conv_forward`]), [`disco_gather`] and a batched matmul
/// elsewhere.
pub fn disco_conv(
    x: Tensor<4>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    psi: &Arc<DiscoPsi>,
) -> Tensor<4> {
    let [b, c, nlat, nlon] = x.dims();
    let [o, _, k] = weight.dims();
    if fast_path(&x) {
        return fused_disco_conv(x, weight, bias, psi, false);
    }
    let (t, p) = (psi.rows.nlat, psi.rows.nlon);
    let y = disco_gather(x.reshape([b * c, nlat, nlon]), psi).reshape([b, c * k, t * p]);
    let w = weight.reshape([1, o, c * k]).expand([b, o, c * k]);
    with_bias(w.matmul(y).reshape([b, o, t, p]), bias)
}

/// equivar's fused DISCO kernel (Flex only), a missing bias as zeros.
fn fused_disco_conv(
    x: Tensor<4>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    psi: &Arc<DiscoPsi>,
    transpose: bool,
) -> Tensor<4> {
    let bias = bias.unwrap_or_else(|| Tensor::zeros([weight.dims()[0]], &x.device()));
    Tensor::from_dispatch(Dispatch::equivar_disco_conv(
        x.into_dispatch(),
        weight.into_dispatch(),
        bias.into_dispatch(),
        psi.clone(),
        transpose,
    ))
}

fn with_bias(y: Tensor<4>, bias: Option<Tensor<1>>) -> Tensor<4> {
    match bias {
        Some(b) => {
            let channels = y.dims()[1];
            y + b.reshape([1, channels, 1, 1])
        }
        None => y,
    }
}

/// The transposed DISCO convolution, `x [B, in, nlat, nlon]` on psi's row grid to `[B, out,
/// nlat, nlon]` on its column grid: channels mixed first, then scattered, then the bias.
pub fn disco_conv_transpose(
    x: Tensor<4>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    psi: &Arc<DiscoPsi>,
) -> Tensor<4> {
    let [b, c, nlat, nlon] = x.dims();
    let [o, _, k] = weight.dims();
    if fast_path(&x) {
        return fused_disco_conv(x, weight, bias, psi, true);
    }
    let w = weight
        .swap_dims(1, 2)
        .reshape([1, o * k, c])
        .expand([b, o * k, c]);
    let mixed = w
        .matmul(x.reshape([b, c, nlat * nlon]))
        .reshape([b * o, k, nlat, nlon]);
    let (t, p) = (psi.columns.nlat, psi.columns.nlon);
    with_bias(disco_scatter(mixed, psi).reshape([b, o, t, p]), bias)
}

/// A `&mut [f32]` that parallel tasks write disjoint parts of.
#[derive(Clone, Copy)]
pub(crate) struct SharedOut {
    ptr: usize,
    len: usize,
}

impl SharedOut {
    pub(crate) fn new(v: &mut [f32]) -> Self {
        SharedOut {
            ptr: v.as_mut_ptr() as usize,
            len: v.len(),
        }
    }

    /// SAFETY: callers must write only elements no other task touches, and the slice `new`
    /// was made from must outlive every task.
    #[allow(clippy::mut_from_ref)]
    pub(crate) unsafe fn slice(&self) -> &mut [f32] {
        // SAFETY: as the caller promises above.
        unsafe { std::slice::from_raw_parts_mut(self.ptr as *mut f32, self.len) }
    }
}

/// Whether this CPU runs the AVX2 + FMA builds of our kernels (checked at run time).
pub(crate) fn has_avx2_fma() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// Runs `f` on one of the compute threads (rayon's pool) and waits for it. A step made of many
/// parallel kernels (a training step, an inference) then starts each kernel's tasks as local
/// jobs that the other threads steal, instead of injecting every one from outside the pool
/// and sleeping until it is done.
pub fn on_compute_threads<R: Send>(f: impl FnOnce() -> R + Send) -> R {
    rayon::scope(|_| f())
}

/// Independent partial sums in [`sum_of`] and [`sum_of_pairs`].
const PARTIAL_SUMS: usize = 16;

/// `sum f(v)` over `values`, in [`PARTIAL_SUMS`] partial sums: a plain `iter().sum()` is one
/// chain of dependent adds (one add per 3-4 cycles, not vectorized, as float addition is not
/// reassociated), which made batch-norm and bias-gradient reductions cost as much as their
/// passes over memory several times over.
#[inline]
pub(crate) fn sum_of(values: &[f32], f: impl Fn(f32) -> f32) -> f32 {
    let mut partial = [0.0f32; PARTIAL_SUMS];
    let chunks = values.chunks_exact(PARTIAL_SUMS);
    let rest: f32 = chunks.remainder().iter().map(|&v| f(v)).sum();
    for chunk in chunks {
        for (p, &v) in partial.iter_mut().zip(chunk) {
            *p += f(v);
        }
    }
    partial.iter().sum::<f32>() + rest
}

/// `sum f(a_i, b_i)` over two runs of equal length, as [`sum_of`].
#[inline]
pub(crate) fn sum_of_pairs(a: &[f32], b: &[f32], f: impl Fn(f32, f32) -> f32) -> f32 {
    assert_eq!(a.len(), b.len(), "runs of equal length");
    let mut partial = [0.0f32; PARTIAL_SUMS];
    let (chunks_a, chunks_b) = (a.chunks_exact(PARTIAL_SUMS), b.chunks_exact(PARTIAL_SUMS));
    let rest: f32 = (chunks_a.remainder().iter().zip(chunks_b.remainder()))
        .map(|(&x, &y)| f(x, y))
        .sum();
    for (ca, cb) in chunks_a.zip(chunks_b) {
        for ((p, &x), &y) in partial.iter_mut().zip(ca).zip(cb) {
            *p += f(x, y);
        }
    }
    partial.iter().sum::<f32>() + rest
}

/// `0..len` in consecutive ranges of `chunk` (the last may be shorter), as parallel tasks.
pub(crate) fn par_ranges(
    len: usize,
    chunk: usize,
) -> impl rayon::iter::IndexedParallelIterator<Item = std::ops::Range<usize>> {
    use rayon::prelude::*;
    let chunk = chunk.max(1);
    (0..len.div_ceil(chunk))
        .into_par_iter()
        .map(move |c| c * chunk..((c + 1) * chunk).min(len))
}

#[cfg(test)]
mod tests {
    use super::{sum_of, sum_of_pairs};

    /// The partial sums against f64 sums, for lengths around the partial-sum count.
    #[test]
    fn partial_sums_match_the_plain_sums() {
        for len in [0, 1, 15, 16, 17, 33, 784] {
            let a: Vec<f32> = (0..len)
                .map(|i| ((i * 7) % 11) as f32 * 0.3 - 1.1)
                .collect();
            let b: Vec<f32> = (0..len)
                .map(|i| ((i * 5) % 13) as f32 * 0.2 - 0.9)
                .collect();
            let want: f64 = a.iter().map(|&v| (v as f64 - 0.5).powi(2)).sum();
            let got = sum_of(&a, |v| (v - 0.5) * (v - 0.5)) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{len}: {got} vs {want}"
            );
            let want: f64 = a.iter().zip(&b).map(|(&x, &y)| x as f64 * y as f64).sum();
            let got = sum_of_pairs(&a, &b, |x, y| x * y) as f64;
            assert!(
                (got - want).abs() <= 1e-5 * (1.0 + want.abs()),
                "{len}: {got} vs {want}"
            );
        }
    }
}
