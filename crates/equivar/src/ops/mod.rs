//! The tensor ops the layers call where equivar has its own CPU kernels: convolutions,
//! training-mode batch norm, 2x2 max pooling and DISCO's sphere contractions. Each takes a
//! [`Kernels`] value, the layer's choice: [`Kernels::Equivar`] runs the slice kernels of the
//! `equivar-kernels` crate (registered as a burn backend extension for `Flex`, with or
//! without autodiff, in `flex`) when the tensor lives on Flex in float32; otherwise, and for
//! [`Kernels::Burn`], burn's own ops run, on any backend.

mod flex;
mod o3;
mod o3_flex;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use burn::backend::{Dispatch, DispatchDevice};
use burn::tensor::module::conv2d as burn_conv2d;
use burn::tensor::ops::{ConvOptions, MaxPoolOptions};
use burn::tensor::{DType, Device, IndexingUpdateOp, Int, Tensor, TensorData};

use crate::kernels::DiscoPsi;

use equivar_kernels::conv::ConvShape;
pub use equivar_kernels::peak::fma_peak_gflops;
pub use equivar_kernels::{
    HugePageAllocator, ISA_VARIABLE, Isa, set_block_reuse, set_huge_pages, sgemm_gflops,
};
pub use flex::GConvBackend;
pub use o3::{TpWeights, gate, spherical_harmonics, tensor_product};
pub use o3_flex::O3Backend;

/// Which implementation runs a layer's heavy ops (convolutions, training-mode batch norm, 2x2
/// max pooling, DISCO contractions). A value a model or a layer carries (see
/// `Net::with_kernels`), passed to every op here; nothing is read from the environment.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum Kernels {
    /// equivar's CPU kernels on burn's Flex backend, with the fast transforms for the
    /// convolutions they speed up (Winograd F(2x2, 3x3) for 3x3 windows, an FFT grid for 5x5
    /// and larger); burn's ops on every other backend (the default).
    #[default]
    Equivar,
    /// equivar's CPU kernels with im2col + GEMM for every convolution: the fast transforms'
    /// comparison.
    Direct,
    /// burn's ops everywhere: the reference path, and the baseline benchmarks compare with.
    Burn,
}

impl Kernels {
    /// Every choice, in the order `equivar bench --kernels` lists them.
    pub const ALL: [Kernels; 3] = [Kernels::Equivar, Kernels::Direct, Kernels::Burn];

    /// The name the text form uses: `equivar`, `direct`, `burn`.
    pub fn name(self) -> &'static str {
        match self {
            Kernels::Equivar => "equivar",
            Kernels::Direct => "direct",
            Kernels::Burn => "burn",
        }
    }

    /// Whether equivar's kernels serve `x`: not [`Kernels::Burn`], Flex, float32.
    fn serve<const D: usize>(self, x: &Tensor<D>) -> bool {
        self != Kernels::Burn && is_flex(&x.device()) && x.dtype() == DType::F32
    }

    /// Whether convolutions may run on the fast transforms (Winograd, FFT) where they pay.
    pub fn fast(self) -> bool {
        self == Kernels::Equivar
    }
}

impl std::fmt::Display for Kernels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

impl std::str::FromStr for Kernels {
    type Err = crate::error::EquivarError;

    fn from_str(s: &str) -> crate::error::Result<Self> {
        // `no-winograd`: the name `direct` had before the FFT path, in older saved models.
        let s = if s == "no-winograd" { "direct" } else { s };
        Kernels::ALL
            .into_iter()
            .find(|k| k.name() == s)
            .ok_or_else(|| crate::error::EquivarError::UnknownKernels(s.to_string()))
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

/// Square-window conv2d, `x [B, C_in, H, W]`, `weight [C_out, C_in, k, k]`, one bias per
/// output channel; stride, padding and dilation symmetric; run by `kernels`.
pub fn conv2d(
    x: Tensor<4>,
    weight: Tensor<4>,
    bias: Option<Tensor<1>>,
    stride: usize,
    padding: usize,
    dilation: usize,
    kernels: Kernels,
) -> Tensor<4> {
    let shape = ConvShape::of(&x.dims(), &weight.dims(), stride, padding, dilation);
    if let Err(e) = shape.validate() {
        panic!("{e}");
    }
    CONV_FLOPS.fetch_add(shape.forward_flops() as u64, Ordering::Relaxed);
    let device = x.device();
    let ours = kernels.serve(&x) && weight.dims()[2] == weight.dims()[3];
    if !ours {
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
        kernels.fast(),
    ))
}

/// Training-mode batch norm over the channels of `x [B, C, H, W]`: the normalised output
/// (with `relu`, its ReLU) and the batch's per-channel mean and biased variance (detached),
/// as burn's `batch_norm_train` returns them. Where `kernels` serve `x` the ReLU runs in the
/// same passes, forward and backward; otherwise it is burn's batch norm then burn's ReLU.
pub fn batch_norm_train(
    x: Tensor<4>,
    (gamma, beta): (Tensor<1>, Tensor<1>),
    epsilon: f64,
    relu: bool,
    kernels: Kernels,
) -> (Tensor<4>, Tensor<1>, Tensor<1>) {
    if !kernels.serve(&x) {
        let r = burn::tensor::module::batch_norm_train(x, gamma, beta, epsilon);
        let y = if relu {
            burn::tensor::activation::relu(r.output)
        } else {
            r.output
        };
        return (y, r.mean, r.variance);
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
        relu,
    ));
    let mean = stats.clone().slice([0..1, 0..channels]).reshape([channels]);
    let variance = stats.slice([1..2, 0..channels]).reshape([channels]);
    (y, mean, variance)
}

/// ReLU: equivar's kernel, split over the threads ([`equivar_kernels::activation`]), where
/// `kernels` serve `x`; burn's (one thread) otherwise. The same function either way.
pub fn relu<const D: usize>(x: Tensor<D>, kernels: Kernels) -> Tensor<D> {
    if !kernels.serve(&x) {
        return burn::tensor::activation::relu(x);
    }
    Tensor::from_dispatch(Dispatch::equivar_relu(x.into_dispatch()))
}

/// Max pooling of `x [B, C, H, W]` with a square window, symmetric stride, padding and
/// dilation: equivar's kernel ([`equivar_kernels::pool`]) for the common 2x2, stride-2 window
/// where `kernels` serve `x`, burn's pool otherwise.
pub fn max_pool2d(
    x: Tensor<4>,
    kernel: usize,
    stride: usize,
    padding: usize,
    dilation: usize,
    kernels: Kernels,
) -> Tensor<4> {
    if (kernel, stride, padding, dilation) == (2, 2, 0, 1) && kernels.serve(&x) {
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
/// `[planes, K, nlat_out, nlon_out]` on its row grid. Where `kernels` serve `x` it runs
/// [`equivar_kernels::disco::gather`] (backward: its scatter); elsewhere a select and a
/// scatter-add of burn's, which autodiff differentiates (memory grows with nnz * nlon_out: for
/// small grids and GPUs).
pub fn disco_gather(x: Tensor<3>, psi: &Arc<DiscoPsi>, kernels: Kernels) -> Tensor<4> {
    let [_, nlat, nlon] = x.dims();
    assert_eq!(
        [nlat, nlon],
        [psi.columns.nlat, psi.columns.nlon],
        "disco_gather: x is on the {}x{} grid",
        psi.columns.nlat,
        psi.columns.nlon
    );
    if kernels.serve(&x) {
        return Tensor::from_dispatch(Dispatch::equivar_disco_gather(
            x.into_dispatch(),
            psi.clone(),
        ));
    }
    disco_gather_generic(x, psi)
}

/// [`disco_gather`] with burn's select and scatter-add, on any backend.
fn disco_gather_generic(x: Tensor<3>, psi: &DiscoPsi) -> Tensor<4> {
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
pub fn disco_scatter(y: Tensor<4>, psi: &Arc<DiscoPsi>, kernels: Kernels) -> Tensor<3> {
    let [_, k, nlat, nlon] = y.dims();
    assert_eq!(
        [k, nlat, nlon],
        [psi.kernel_size(), psi.rows.nlat, psi.rows.nlon],
        "disco_scatter: y is [planes, K, nlat, nlon] on the {}x{} grid",
        psi.rows.nlat,
        psi.rows.nlon
    );
    if kernels.serve(&y) {
        return Tensor::from_dispatch(Dispatch::equivar_disco_scatter(
            y.into_dispatch(),
            psi.clone(),
        ));
    }
    disco_scatter_generic(y, psi)
}

/// [`disco_scatter`] with burn's select and scatter-add, on any backend.
fn disco_scatter_generic(y: Tensor<4>, psi: &DiscoPsi) -> Tensor<3> {
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
            for e in psi.sparse.row(t, k) {
                for p in 0..n_out {
                    let j = (e.lon as usize + p * psi.sparse.stride) % n_in;
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
/// fused kernel where `kernels` serve `x` ([`equivar_kernels::disco::conv_forward`]), burn's
/// select, scatter-add and a batched matmul elsewhere.
pub fn disco_conv(
    x: Tensor<4>,
    weight: Tensor<3>,
    bias: Option<Tensor<1>>,
    psi: &Arc<DiscoPsi>,
    kernels: Kernels,
) -> Tensor<4> {
    let [b, c, nlat, nlon] = x.dims();
    let [o, _, k] = weight.dims();
    if kernels.serve(&x) {
        return fused_disco_conv(x, weight, bias, psi, false);
    }
    let (t, p) = (psi.rows.nlat, psi.rows.nlon);
    let y = disco_gather_generic(x.reshape([b * c, nlat, nlon]), psi).reshape([b, c * k, t * p]);
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
    kernels: Kernels,
) -> Tensor<4> {
    let [b, c, nlat, nlon] = x.dims();
    let [o, _, k] = weight.dims();
    if kernels.serve(&x) {
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
    with_bias(
        disco_scatter_generic(mixed, psi).reshape([b, o, t, p]),
        bias,
    )
}
