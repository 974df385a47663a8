//! equivar's slice kernels (the `equivar-kernels` crate) registered as a burn backend extension: a plain
//! implementation for the `Flex` CPU backend and a hand-written backward for
//! `Autodiff<Flex>`, so layers stay written against burn's `Tensor` and train as before.

use std::borrow::Cow;
use std::sync::Arc;

use burn::backend::autodiff::NodeId;

use burn::backend::autodiff::checkpoint::base::Checkpointer;
use burn::backend::autodiff::checkpoint::strategy::CheckpointStrategy;
use burn::backend::autodiff::grads::Gradients;
use burn::backend::autodiff::ops::{Backward, Ops, OpsKind};
use burn::backend::flex::{Flex, FlexTensor};
use burn::backend::tensor::FloatTensor;
use burn::backend::{Autodiff, Backend, TensorMetadata, backend_extension};
use burn::tensor::{DType, TensorData};

use equivar_kernels::activation;
use equivar_kernels::batch_norm::{self, NormShape};
use equivar_kernels::conv::{self, ConvShape, Wanted};
use equivar_kernels::disco;
use equivar_kernels::fft_conv::{self, FftFilter, Pass};
use equivar_kernels::pool::{self, PoolShape};
use equivar_kernels::winograd;

use crate::kernels::DiscoPsi;

#[backend_extension(Flex, Autodiff)]
pub trait GConvBackend: Backend {
    /// `conv2d(x, weight) + bias` with a square `kernel`, and symmetric stride, padding and
    /// dilation; where `fast` allows it and it pays, 3x3 windows run as Winograd F(2x2, 3x3)
    /// and large ones on an FFT grid.
    fn equivar_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        dilation: usize,
        fast: bool,
    ) -> FloatTensor<Self>;

    /// Per-channel mean and biased variance of `x [B, C, ...]` as `[2, C]`; a constant for
    /// autodiff (it feeds [`Self::equivar_batch_norm`], whose backward accounts for it).
    fn equivar_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// Training-mode batch norm of `x [B, C, ...]` with `stats = equivar_batch_norm_stats(x)`,
    /// with `relu` followed by its ReLU in the same pass (and the same backward).
    fn equivar_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self>;

    /// ReLU of `x` value by value, as burn's (see [`activation`]), on all threads.
    fn equivar_relu(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// 2x2, stride-2 max pooling of `x [B, C, H, W]` (see [`pool_cpu`]).
    fn equivar_max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self>;

    /// DISCO's sparse contraction, `x [planes, nlat_in, nlon_in]` to `[planes, K, nlat_out,
    /// nlon_out]` (see [`disco::gather`]).
    fn equivar_disco_gather(x: FloatTensor<Self>, psi: Arc<DiscoPsi>) -> FloatTensor<Self>;

    /// Its adjoint, `[planes, K, nlat_out, nlon_out]` to `[planes, nlat_in, nlon_in]`.
    fn equivar_disco_scatter(y: FloatTensor<Self>, psi: Arc<DiscoPsi>) -> FloatTensor<Self>;

    /// A whole DISCO convolution plus bias, `x [B, in, ...]`, `weight [out, in, K]`, `bias
    /// [out]`: from psi's column grid to its row grid, or (`transpose`) from its row grid to
    /// its columns.
    fn equivar_disco_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        psi: Arc<DiscoPsi>,
        transpose: bool,
    ) -> FloatTensor<Self>;
}

fn disco_shape(x: &FlexTensor, weight: &FlexTensor) -> disco::DiscoShape {
    let (x, w) = (dims(x), dims(weight));
    disco::DiscoShape {
        batch: x[0],
        c_in: w[1],
        c_out: w[0],
    }
}

fn gather_shape(psi: &DiscoPsi, planes: usize) -> Vec<usize> {
    vec![planes, psi.kernel_size(), psi.rows.nlat, psi.rows.nlon]
}

fn scatter_shape(psi: &DiscoPsi, planes: usize) -> Vec<usize> {
    vec![planes, psi.columns.nlat, psi.columns.nlon]
}

fn norm_shape(x: &FlexTensor) -> NormShape {
    let d = dims(x);
    NormShape {
        batch: d[0],
        channels: d[1],
        pixels: d[2..].iter().product(),
    }
}

/// [`pool::max_2x2`] of `x [B, C, H, W]`: the pooled tensor, the planes' shape and each
/// output's winner (which the backward needs).
fn max_pool_2x2(x: &FlexTensor) -> (FlexTensor, PoolShape, Vec<u8>) {
    assert_eq!(x.dtype(), DType::F32, "equivar pooling runs in f32");
    let d: [usize; 4] = dims(x).try_into().expect("max pool input is [B, C, H, W]");
    let s = PoolShape {
        planes: d[0] * d[1],
        height: d[2],
        width: d[3],
    };
    let (y, won) = pool::max_2x2(&s, &f32s(x));
    let y = flex_tensor(y, vec![d[0], d[1], s.out_height(), s.out_width()]);
    (y, s, won)
}

/// The f32 values of a Flex tensor in row-major order: borrowed when its layout is
/// contiguous, copied when it is strided.
pub(super) fn f32s(t: &FlexTensor) -> Cow<'_, [f32]> {
    match t.as_slice::<f32>() {
        Some(values) => Cow::Borrowed(values),
        None => Cow::Owned(
            t.to_contiguous()
                .as_slice::<f32>()
                .expect("a contiguous copy has a slice")
                .to_vec(),
        ),
    }
}

pub(super) fn flex_tensor(values: Vec<f32>, shape: Vec<usize>) -> FlexTensor {
    FlexTensor::from_data(TensorData::new(values, shape))
}

pub(super) fn dims(t: &FlexTensor) -> Vec<usize> {
    t.shape().to_vec()
}

fn conv_output(s: &ConvShape, y: Vec<f32>) -> FlexTensor {
    flex_tensor(y, vec![s.batch, s.c_out, s.out_height(), s.out_width()])
}

impl GConvBackend for Flex {
    fn equivar_conv2d(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        stride: usize,
        padding: usize,
        dilation: usize,
        fast: bool,
    ) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "equivar conv kernels run in f32");
        let s = ConvShape::of(&dims(&x), &dims(&weight), stride, padding, dilation);
        let (x, weight, bias) = (f32s(&x), f32s(&weight), f32s(&bias));
        let y = if fast && winograd::suits(&s) {
            let filter = winograd::WinogradFilter::new(&weight, s.c_out, s.c_in);
            winograd::forward(&s, &x, &filter, &bias, |_| {})
        } else if fast && fft_conv::suits(&s, Pass::Forward) {
            fft_conv::forward(&s, &x, &FftFilter::new(&s, &weight), &bias, |_| {})
        } else {
            conv::forward(&s, &x, &weight, Some(&bias))
        };
        conv_output(&s, y)
    }

    fn equivar_batch_norm_stats(x: FlexTensor) -> FlexTensor {
        let s = norm_shape(&x);
        let stats = batch_norm::stats(&s, &f32s(&x));
        flex_tensor(stats, vec![2, s.channels])
    }

    fn equivar_batch_norm(
        x: FlexTensor,
        gamma: FlexTensor,
        beta: FlexTensor,
        stats: FlexTensor,
        epsilon: f64,
        relu: bool,
    ) -> FlexTensor {
        let s = norm_shape(&x);
        let shape = dims(&x);
        let (x, gamma, beta, stats) = (f32s(&x), f32s(&gamma), f32s(&beta), f32s(&stats));
        let y = batch_norm::apply(&s, &x, (&gamma, &beta), &stats, epsilon, relu);
        flex_tensor(y, shape)
    }

    fn equivar_relu(x: FlexTensor) -> FlexTensor {
        let shape = dims(&x);
        flex_tensor(activation::relu(&f32s(&x)), shape)
    }

    fn equivar_max_pool_2x2(x: FlexTensor) -> FlexTensor {
        max_pool_2x2(&x).0
    }

    fn equivar_disco_gather(x: FlexTensor, psi: Arc<DiscoPsi>) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "equivar DISCO kernels run in f32");
        let planes = dims(&x)[0];
        flex_tensor(
            disco::gather(&psi.sparse, &f32s(&x)),
            gather_shape(&psi, planes),
        )
    }

    fn equivar_disco_scatter(y: FlexTensor, psi: Arc<DiscoPsi>) -> FlexTensor {
        assert_eq!(y.dtype(), DType::F32, "equivar DISCO kernels run in f32");
        let planes = dims(&y)[0];
        flex_tensor(
            disco::scatter(&psi.sparse, &f32s(&y)),
            scatter_shape(&psi, planes),
        )
    }

    fn equivar_disco_conv(
        x: FlexTensor,
        weight: FlexTensor,
        bias: FlexTensor,
        psi: Arc<DiscoPsi>,
        transpose: bool,
    ) -> FlexTensor {
        assert_eq!(x.dtype(), DType::F32, "equivar DISCO kernels run in f32");
        let s = disco_shape(&x, &weight);
        let (x, weight) = (f32s(&x), f32s(&weight));
        let (mut out, grid) = if transpose {
            let out = disco::transpose_forward(&psi.sparse, s, &x, &weight);
            (out, &psi.columns)
        } else {
            (disco::conv_forward(&psi.sparse, s, &x, &weight), &psi.rows)
        };
        disco::add_bias(&mut out, &f32s(&bias), s.batch);
        flex_tensor(out, vec![s.batch, s.c_out, grid.nlat, grid.nlon])
    }
}

#[derive(Debug)]
struct DiscoConvBackward;

impl Backward<Flex, 3> for DiscoConvBackward {
    type State = (NodeId, NodeId, Arc<DiscoPsi>, bool);

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dout: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (x_state, weight_state, psi, transpose) = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(x_state);
        let weight: FlexTensor = checkpointer.retrieve_node_output(weight_state);
        let s = disco_shape(&x, &weight);
        let (x_shape, w_shape) = (dims(&x), dims(&weight));
        let wanted = (node_x.is_some(), node_weight.is_some());
        let (x, weight, dout) = (f32s(&x), f32s(&weight), f32s(&dout));
        let (dx, dw) = if transpose {
            disco::transpose_backward(&psi.sparse, s, &x, &weight, &dout, wanted)
        } else {
            disco::conv_backward(&psi.sparse, s, &x, &weight, &dout, wanted)
        };
        if let (Some(node), Some(dx)) = (node_x, dx) {
            grads.register::<Flex>(node.id, flex_tensor(dx, x_shape));
        }
        if let (Some(node), Some(dw)) = (node_weight, dw) {
            grads.register::<Flex>(node.id, flex_tensor(dw, w_shape));
        }
        if let Some(node) = node_bias {
            let db = disco::bias_grad(&dout, s.batch, s.c_out);
            grads.register::<Flex>(node.id, flex_tensor(db, vec![s.c_out]));
        }
    }
}

/// The backward of a gather is a scatter of the output gradient, and vice versa: psi is a
/// constant, so nothing else is needed.
#[derive(Debug)]
struct DiscoBackward {
    gather: bool,
}

impl Backward<Flex, 1> for DiscoBackward {
    type State = Arc<DiscoPsi>;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let psi = ops.state;
        if let Some(node) = node {
            let dx = if self.gather {
                Flex::equivar_disco_scatter(dy, psi)
            } else {
                Flex::equivar_disco_gather(dy, psi)
            };
            grads.register::<Flex>(node.id, dx);
        }
    }
}

/// The max pool's backward routes each output gradient to the value that won, recorded by
/// the forward.
#[derive(Debug)]
struct MaxPoolBackward;

impl Backward<Flex, 1> for MaxPoolBackward {
    type State = (PoolShape, Arc<Vec<u8>>);

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let (s, won) = ops.state;
        if let Some(node) = node {
            let d = dims(&dy);
            let (b, c) = (d[0], d[1]);
            let dx = pool::max_2x2_backward(&s, &f32s(&dy), &won);
            grads.register::<Flex>(node.id, flex_tensor(dx, vec![b, c, s.height, s.width]));
        }
    }
}

#[derive(Debug)]
struct ReluBackward;

impl Backward<Flex, 1> for ReluBackward {
    /// The forward's output.
    type State = FlexTensor;

    fn backward(
        self,
        ops: Ops<Self::State, 1>,
        grads: &mut Gradients,
        _checkpointer: &mut Checkpointer,
    ) {
        let [node] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        if let Some(node) = node {
            let dx = activation::relu_backward(&f32s(&ops.state), &f32s(&dy));
            grads.register::<Flex>(node.id, flex_tensor(dx, dims(&dy)));
        }
    }
}

#[derive(Debug)]
struct BatchNormBackward;

/// What the batch norm's backward needs besides its inputs.
#[derive(Clone, Debug)]
struct BatchNormState {
    x: NodeId,
    gamma: NodeId,
    stats: FlexTensor,
    epsilon: f64,
    /// `beta` where a ReLU followed in the same op: its mask is recomputed from `x`.
    relu_beta: Option<FlexTensor>,
}

impl Backward<Flex, 3> for BatchNormBackward {
    type State = BatchNormState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_gamma, node_beta] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let x: FlexTensor = checkpointer.retrieve_node_output(state.x);
        let gamma: FlexTensor = checkpointer.retrieve_node_output(state.gamma);
        let s = norm_shape(&x);
        let shape = dims(&x);
        let (x, gamma, stats, dy) = (f32s(&x), f32s(&gamma), f32s(&state.stats), f32s(&dy));
        let relu_beta = state.relu_beta.as_ref().map(f32s);
        let (dx, dgamma, dbeta) = batch_norm::backward(
            &s,
            &x,
            &gamma,
            &stats,
            state.epsilon,
            &dy,
            relu_beta.as_deref(),
        );
        if let Some(node) = node_x {
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
        if let Some(node) = node_gamma {
            grads.register::<Flex>(node.id, flex_tensor(dgamma, vec![s.channels]));
        }
        if let Some(node) = node_beta {
            grads.register::<Flex>(node.id, flex_tensor(dbeta, vec![s.channels]));
        }
    }
}

#[derive(Debug)]
struct ConvBackward;

/// What the convolution's backward needs besides its inputs.
#[derive(Clone, Debug)]
struct ConvState {
    x: NodeId,
    weight: NodeId,
    shape: ConvShape,
    /// Whether the fast transforms may run.
    fast: bool,
    /// The filter's spectra where the forward ran on the FFT grid: its gradients do too.
    fft: Option<Arc<FftFilter>>,
}

impl Backward<Flex, 3> for ConvBackward {
    type State = ConvState;

    fn backward(
        self,
        ops: Ops<Self::State, 3>,
        grads: &mut Gradients,
        checkpointer: &mut Checkpointer,
    ) {
        let [node_x, node_weight, node_bias] = ops.parents;
        let dy: FlexTensor = grads.consume::<Flex>(&ops.node);
        let state = ops.state;
        let s = state.shape;
        let x: FlexTensor = checkpointer.retrieve_node_output(state.x);
        let weight: FlexTensor = checkpointer.retrieve_node_output(state.weight);
        let wanted = Wanted {
            input: node_x.is_some(),
            weight: node_weight.is_some(),
            bias: node_bias.is_some(),
        };
        let (x, weight, dy) = (f32s(&x), f32s(&weight), f32s(&dy));
        let g = match &state.fft {
            Some(filter) => fft_conv::backward(&s, &x, filter, &dy, wanted),
            None => direct_or_winograd_backward(&s, (&x, &weight, &dy), wanted, state.fast),
        };
        let k = s.kernel;
        if let (Some(node), Some(dx)) = (node_x, g.input) {
            let shape = vec![s.batch, s.c_in, s.height, s.width];
            grads.register::<Flex>(node.id, flex_tensor(dx, shape));
        }
        if let (Some(node), Some(dw)) = (node_weight, g.weight) {
            grads.register::<Flex>(node.id, flex_tensor(dw, vec![s.c_out, s.c_in, k, k]));
        }
        if let (Some(node), Some(db)) = (node_bias, g.bias) {
            grads.register::<Flex>(node.id, flex_tensor(db, vec![s.c_out]));
        }
    }
}

/// The gradients by im2col + GEMM + col2im, with Winograd where `fast` allows it and it
/// pays: the input gradient is a k x k convolution too (its input has c_out channels), and the
/// filter gradient runs as Winograd where the forward does (3x3 windows), as outer products
/// over output pixels for larger windows ([`conv::filter_grad`]).
fn direct_or_winograd_backward(
    s: &ConvShape,
    (x, weight, dy): (&[f32], &[f32], &[f32]),
    wanted: Wanted,
    fast: bool,
) -> conv::ConvGrads {
    let winograd_dx = fast && wanted.input && winograd::input_grad_suits(s);
    let winograd_dw = fast && wanted.weight && winograd::weight_grad_suits(s);
    let outer_dw = fast && wanted.weight && !winograd_dw && conv::filter_grad::suits(s);
    let mut g = conv::backward(
        s,
        x,
        weight,
        dy,
        Wanted {
            input: wanted.input && !winograd_dx,
            weight: wanted.weight && !winograd_dw && !outer_dw,
            bias: wanted.bias,
        },
    );
    if winograd_dx {
        g.input = Some(winograd::input_grad(s, weight, dy));
    }
    if winograd_dw {
        g.weight = Some(winograd::weight_grad(s, x, dy));
    } else if outer_dw {
        g.weight = Some(conv::filter_grad::compute(s, x, dy));
    }
    g
}

impl<C: CheckpointStrategy> GConvBackend for Autodiff<Flex, C> {
    fn equivar_conv2d(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        stride: usize,
        padding: usize,
        dilation: usize,
        fast: bool,
    ) -> FloatTensor<Self> {
        let s = ConvShape::of(
            &dims(x.primitive()),
            &dims(weight.primitive()),
            stride,
            padding,
            dilation,
        );
        let forward = |x, weight, bias| {
            Flex::equivar_conv2d(x, weight, bias, stride, padding, dilation, fast)
        };
        match ConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let mut state = ConvState {
                    x: prep.checkpoint(&x),
                    weight: prep.checkpoint(&weight),
                    shape: s,
                    fast,
                    fft: None,
                };
                let (x, weight, bias) = (
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                );
                // On the FFT grid the filter is transformed once for the forward and the
                // backward, which the step's cost counts in.
                let y = if fast && !winograd::suits(&s) && fft_conv::suits(&s, Pass::Training) {
                    let (x, weight, bias) = (f32s(&x), f32s(&weight), f32s(&bias));
                    let filter = Arc::new(FftFilter::new(&s, &weight));
                    let y = fft_conv::forward(&s, &x, &filter, &bias, |_| {});
                    state.fft = Some(filter);
                    conv_output(&s, y)
                } else {
                    forward(x, weight, bias)
                };
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
            )),
        }
    }

    fn equivar_batch_norm_stats(x: FloatTensor<Self>) -> FloatTensor<Self> {
        // Untracked: the batch-norm backward differentiates through the statistics itself.
        FloatTensor::<Self>::new(Flex::equivar_batch_norm_stats(x.primitive().clone()))
    }

    fn equivar_batch_norm(
        x: FloatTensor<Self>,
        gamma: FloatTensor<Self>,
        beta: FloatTensor<Self>,
        stats: FloatTensor<Self>,
        epsilon: f64,
        relu: bool,
    ) -> FloatTensor<Self> {
        let stats = stats.into_primitive();
        let forward =
            |x, gamma, beta, stats| Flex::equivar_batch_norm(x, gamma, beta, stats, epsilon, relu);
        match BatchNormBackward
            .prepare::<C>([x.node(), gamma.node(), beta.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let beta = beta.into_primitive();
                let state = BatchNormState {
                    x: prep.checkpoint(&x),
                    gamma: prep.checkpoint(&gamma),
                    stats: stats.clone(),
                    epsilon,
                    relu_beta: relu.then(|| beta.clone()),
                };
                let y = forward(x.into_primitive(), gamma.into_primitive(), beta, stats);
                prep.finish(state, y)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.into_primitive(),
                gamma.into_primitive(),
                beta.into_primitive(),
                stats,
            )),
        }
    }

    fn equivar_relu(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match ReluBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let y = Flex::equivar_relu(x.into_primitive());
                // The output is the backward's mask (a shared handle, not a copy).
                prep.finish(y.clone(), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::equivar_relu(x.into_primitive())),
        }
    }

    fn equivar_max_pool_2x2(x: FloatTensor<Self>) -> FloatTensor<Self> {
        match MaxPoolBackward
            .prepare::<C>([x.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(prep) => {
                let (y, s, won) = max_pool_2x2(&x.into_primitive());
                prep.finish((s, Arc::new(won)), y)
            }
            OpsKind::UnTracked(prep) => prep.finish(Flex::equivar_max_pool_2x2(x.into_primitive())),
        }
    }

    fn equivar_disco_gather(x: FloatTensor<Self>, psi: Arc<DiscoPsi>) -> FloatTensor<Self> {
        disco_op::<C>(x, psi, true)
    }

    fn equivar_disco_scatter(y: FloatTensor<Self>, psi: Arc<DiscoPsi>) -> FloatTensor<Self> {
        disco_op::<C>(y, psi, false)
    }

    fn equivar_disco_conv(
        x: FloatTensor<Self>,
        weight: FloatTensor<Self>,
        bias: FloatTensor<Self>,
        psi: Arc<DiscoPsi>,
        transpose: bool,
    ) -> FloatTensor<Self> {
        let forward =
            |x, weight, bias, psi| Flex::equivar_disco_conv(x, weight, bias, psi, transpose);
        match DiscoConvBackward
            .prepare::<C>([x.node(), weight.node(), bias.node()])
            .compute_bound()
            .stateful()
        {
            OpsKind::Tracked(mut prep) => {
                let x_state = prep.checkpoint(&x);
                let weight_state = prep.checkpoint(&weight);
                let out = forward(
                    x.into_primitive(),
                    weight.into_primitive(),
                    bias.into_primitive(),
                    psi.clone(),
                );
                prep.finish((x_state, weight_state, psi, transpose), out)
            }
            OpsKind::UnTracked(prep) => prep.finish(forward(
                x.into_primitive(),
                weight.into_primitive(),
                bias.into_primitive(),
                psi,
            )),
        }
    }
}

fn disco_op<C: CheckpointStrategy>(
    x: FloatTensor<Autodiff<Flex, C>>,
    psi: Arc<DiscoPsi>,
    gather: bool,
) -> FloatTensor<Autodiff<Flex, C>> {
    let forward = |x, psi| {
        if gather {
            Flex::equivar_disco_gather(x, psi)
        } else {
            Flex::equivar_disco_scatter(x, psi)
        }
    };
    let backward = DiscoBackward { gather };
    match backward.prepare::<C>([x.node()]).compute_bound().stateful() {
        OpsKind::Tracked(prep) => prep.finish(psi.clone(), forward(x.into_primitive(), psi)),
        OpsKind::UnTracked(prep) => prep.finish(forward(x.into_primitive(), psi)),
    }
}
