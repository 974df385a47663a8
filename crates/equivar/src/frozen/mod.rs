//! A frozen inference model: a [`Net`] compiled once into plain steps on host buffers, with
//! the convolutions' filters expanded and cached, every batch norm folded into the
//! convolution before it, and the activation after it applied in the convolution's epilogue.
//! No tensors, no autodiff graph and no filter expansion per call: for serving and latency.
//! 3x3 convolutions with stride 1 run as Winograd F(2x2, 3x3) or F(4x4, 3x3)
//! ([`winograd_cpu`]), with 4 or 2.25 instead of 9 multiplications per output and channel
//! pair, the filter transformed once per tiling used; 5x5 and larger ones on an
//! FFT grid ([`fft_conv`]) where the batch pays for the transforms, with the filter's spectra
//! kept from the first such call. A convolution whose filter commutes with the grid's quarter
//! turns (and mirrors) runs, where its filter outweighs its input, on a quarter (an eighth)
//! of its output channels and four (eight) moved copies of the input ([`orbit_conv`]).
//!
//! It computes the function of the net in inference mode (batch norm on running statistics,
//! dropout off); `tests/frozen.rs` compares the two. It runs on the CPU with equivar's conv
//! kernels whatever device the net lives on.

use burn::module::Module;
use burn::tensor::{Tensor, TensorData};
use rayon::prelude::*;
use std::sync::{Arc, Mutex};

mod canonical;
mod fields;
mod orbit_conv;
mod resample;

pub use canonical::Pose;
pub use fields::FieldOp;
pub use orbit_conv::GridElement;
use orbit_conv::OrbitConv;

use crate::error::{EquivarError, Result};
use crate::nn::{FieldLayout, FourierTerm, Net, Resampling};
use crate::space::Window;
use crate::spec::{Activation, Reduce};
use equivar_kernels::conv::{self as conv_cpu, ConvShape};
use equivar_kernels::fft_conv::{self, FftFilter, Pass};
use equivar_kernels::on_compute_threads;
use equivar_kernels::winograd::{self as winograd_cpu, WinogradFilter};

/// A convolution's filter spectra, one per FFT grid it ran on, made on first use: a frozen
/// net serving single images (tiles) and batches (whole planes) keeps both.
#[derive(Debug, Default)]
struct SpectraCache(Mutex<Vec<Arc<FftFilter>>>);

/// Grids kept per layer; a new input size beyond them replaces the oldest.
const GRIDS_KEPT: usize = 4;

impl SpectraCache {
    /// The spectra for geometry `s`, transformed from `weight` unless kept.
    fn get(&self, s: &ConvShape, weight: &[f32]) -> Arc<FftFilter> {
        // A panic elsewhere cannot leave the list half-written: use it as it is.
        let mut kept = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(filter) = kept.iter().find(|f| f.fits(s)) {
            return filter.clone();
        }
        if kept.len() == GRIDS_KEPT {
            kept.remove(0);
        }
        let filter = Arc::new(FftFilter::new(s, weight));
        kept.push(filter.clone());
        filter
    }
}

impl Clone for SpectraCache {
    fn clone(&self) -> Self {
        let kept = self
            .0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        SpectraCache(Mutex::new(kept.clone()))
    }
}

/// A convolution's filter `[out, in, k, k]` and bias, with its fast forms.
#[derive(Clone, Debug)]
struct ConvFilter {
    c_in: usize,
    c_out: usize,
    weight: Vec<f32>,
    bias: Vec<f32>,
    /// The filter transformed for Winograd, for the layers it suits
    /// (`winograd_cpu::suits_layer`).
    winograd: Option<WinogradFilter>,
    /// The filter's spectra on the FFT grids the calls ran it on (megabytes per layer:
    /// only where the cost model chose a grid).
    fft: SpectraCache,
}

impl ConvFilter {
    fn new(weight: Vec<f32>, bias: Vec<f32>, c_in: usize, window: Window) -> Self {
        let c_out = bias.len();
        let winograd =
            winograd_cpu::suits_layer(window.kernel, window.stride, window.dilation, c_in, c_out)
                .then(|| WinogradFilter::new(&weight, c_out, c_in));
        ConvFilter {
            c_in,
            c_out,
            weight,
            bias,
            winograd,
            fft: SpectraCache::default(),
        }
    }

    /// The convolution of `x` (geometry `s`, whose channels must be this filter's), then
    /// `epilogue` on the output; on the fast transforms where `fast` and they suit.
    fn run(
        &self,
        s: &ConvShape,
        x: &[f32],
        fast: bool,
        epilogue: impl Fn(&mut [f32]) + Sync,
    ) -> Vec<f32> {
        let (weight, bias) = (&self.weight, &self.bias);
        match &self.winograd {
            Some(filter) if fast && winograd_cpu::suits(s) => {
                winograd_cpu::forward(s, x, filter, bias, epilogue)
            }
            _ if fast && fft_conv::suits(s, Pass::Frozen) => match fft_conv::frozen_tiling(s) {
                Some(tiling) => {
                    let filter = self.fft.get(&tiling.patch_shape(s), weight);
                    fft_conv::forward_tiled(s, x, tiling, &filter, bias, epilogue)
                }
                None => {
                    let filter = self.fft.get(s, weight);
                    fft_conv::forward(s, x, &filter, bias, epilogue)
                }
            },
            _ => conv_cpu::forward_then(s, x, weight, Some(bias), epilogue),
        }
    }
}

/// One step of a [`FrozenNet`], on `[batch, channels, height, width]` buffers.
#[derive(Clone, Debug)]
enum Step {
    /// A convolution with the expanded filter `[out, in, k, k]`, a bias per output channel
    /// (batch norm folded in), then the activation, if any.
    Conv {
        window: Window,
        filter: Box<ConvFilter>,
        activation: Option<Activation>,
        /// The elements of the layer's group that map the pixel grid to itself, with their
        /// actions on the channels (empty if none or unknown; taken when the steps finish).
        symmetry: Vec<GridElement>,
        /// The convolution run on one output channel per orbit of those elements, with the
        /// representatives' filter, where the filter commutes with them.
        orbits: Option<Box<(OrbitConv, ConvFilter)>>,
    },
    /// `x * scale[c] + shift[c]`: a batch norm with no convolution before it to fold into.
    Affine {
        scale: Vec<f32>,
        shift: Vec<f32>,
    },
    Activation(Activation),
    Pool {
        reduce: Reduce,
        window: Window,
    },
    GlobalAvgPool,
    /// Max or mean over each group of `order` consecutive channels.
    GroupReduce {
        order: usize,
        reduce: Reduce,
    },
    /// A field-wise map (norm nonlinearity, gate, norm pooling).
    Fields {
        layout: FieldLayout,
        op: FieldOp,
    },
    /// Norm max pooling of the fields of `layout`.
    NormMaxPool {
        layout: FieldLayout,
        window: Window,
    },
    /// Every plane convolved with one `[k, k]` filter (the blur pool).
    Blur {
        filter: Vec<f32>,
        window: Window,
    },
    /// Bilinear upsampling.
    Upsample {
        scale: usize,
        align_corners: bool,
    },
    /// Equivariant subsampling or upsampling: each image resampled in its canonical pose.
    Canonical {
        resampling: Resampling,
        poses: Vec<Pose>,
    },
    /// A Fourier-pointwise nonlinearity.
    Fourier {
        function: Activation,
        terms: Vec<FourierTerm>,
    },
    /// `[b, in, 1, 1] -> [b, out, 1, 1]`, `weight [in, out]` as burn stores it.
    Linear {
        weight: Vec<f32>,
        bias: Option<Vec<f32>>,
        out: usize,
    },
}

/// Where a [`FrozenNet`] runs its convolutions in orbit form ([`FrozenNet::with_orbit_convs`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OrbitConvs {
    Never,
    /// Where the filter outweighs the input (the default; see `OrbitConv::pays`).
    WhereFaster,
    /// Every convolution that has one, at any batch (for tests and measurements).
    Always,
}

/// A [`Net`] frozen for inference (see the module docs).
#[derive(Clone, Debug)]
pub struct FrozenNet {
    steps: Vec<Step>,
    model: String,
    /// Input `[channels, size, size]`.
    channels: usize,
    size: usize,
    /// Whether convolutions may run on the fast transforms, Winograd or FFT (see
    /// [`FrozenNet::with_fast_transforms`]).
    fast: bool,
    /// Where convolutions that commute with the grid's symmetries run on one output channel
    /// per orbit (see [`FrozenNet::with_orbit_convs`]).
    orbits: OrbitConvs,
    /// Values of the largest feature map of one image (input included).
    largest_map: usize,
}

/// Host values of a tensor of any rank.
pub(crate) fn host<const D: usize>(t: Tensor<D>) -> Vec<f32> {
    t.into_data()
        .convert::<f32>()
        .try_into_vec::<f32>()
        .expect("f32 values")
}

/// The steps of a frozen model as its layers lower themselves into them
/// ([`crate::layers::LayerModule::lower`]): a batch norm's affine map folds into the
/// convolution before it, an activation fuses into its epilogue.
#[derive(Debug, Default)]
pub struct FrozenBuilder {
    steps: Vec<Step>,
}

impl FrozenBuilder {
    /// A convolution with the expanded filter `[out, in, k, k]` and bias, which commutes
    /// with the grid elements of `symmetry` (any that do not are found out and ignored).
    pub fn conv(
        &mut self,
        filter: Tensor<4>,
        bias: Option<Tensor<1>>,
        window: Window,
        symmetry: Vec<GridElement>,
    ) {
        let [c_out, c_in, _, _] = filter.dims();
        self.steps.push(Step::Conv {
            window,
            filter: Box::new(ConvFilter {
                c_in,
                c_out,
                weight: host(filter),
                bias: bias.map_or_else(|| vec![0.0; c_out], host),
                winograd: None,
                fft: SpectraCache::default(),
            }),
            activation: None,
            symmetry,
            orbits: None,
        });
    }

    /// `x * scale[c] + shift[c]` per channel: folded into the convolution just before, if
    /// it has no activation yet.
    pub fn affine(&mut self, scale: Vec<f32>, shift: Vec<f32>) {
        match self.steps.last_mut() {
            Some(Step::Conv {
                filter,
                activation: None,
                ..
            }) => {
                // s (W x + b) + t = (s W) x + (s b + t), per output channel.
                let patch = filter.weight.len() / scale.len();
                for (c, row) in filter.weight.chunks_exact_mut(patch).enumerate() {
                    row.iter_mut().for_each(|w| *w *= scale[c]);
                    filter.bias[c] = filter.bias[c] * scale[c] + shift[c];
                }
            }
            _ => self.steps.push(Step::Affine { scale, shift }),
        }
    }

    /// An activation: fused into the convolution just before, if it has none yet.
    pub fn activation(&mut self, function: Activation) {
        match self.steps.last_mut() {
            Some(Step::Conv {
                activation: activation @ None,
                ..
            }) => *activation = Some(function),
            _ => self.steps.push(Step::Activation(function)),
        }
    }

    /// Max or mean pooling of every plane (burn's padding conventions).
    pub fn pool(&mut self, reduce: Reduce, window: Window) {
        self.steps.push(Step::Pool { reduce, window });
    }

    /// Mean over all pixels.
    pub fn global_avg_pool(&mut self) {
        self.steps.push(Step::GlobalAvgPool);
    }

    /// Max or mean over each group of `order` consecutive channels.
    pub fn group_reduce(&mut self, order: usize, reduce: Reduce) {
        self.steps.push(Step::GroupReduce { order, reduce });
    }

    /// A field-wise map of the fields of `layout`.
    pub fn field_op(&mut self, layout: &FieldLayout, op: FieldOp) {
        self.steps.push(Step::Fields {
            layout: layout.clone(),
            op,
        });
    }

    /// Norm max pooling of the fields of `layout` over `window`.
    pub fn norm_max_pool(&mut self, layout: &FieldLayout, window: Window) {
        self.steps.push(Step::NormMaxPool {
            layout: layout.clone(),
            window,
        });
    }

    /// Every plane convolved with `filter [k, k]` over `window`.
    pub fn blur(&mut self, filter: Vec<f32>, window: Window) {
        self.steps.push(Step::Blur { filter, window });
    }

    /// Bilinear upsampling by `scale`.
    pub fn upsample(&mut self, scale: usize, align_corners: bool) {
        self.steps.push(Step::Upsample {
            scale,
            align_corners,
        });
    }

    /// `resampling` in each image's canonical pose among `poses` (the grid symmetries of the
    /// layer's group, identity first).
    pub fn canonical_resample(&mut self, resampling: Resampling, poses: Vec<Pose>) {
        self.steps.push(Step::Canonical { resampling, poses });
    }

    /// `function` on the samples of every field of `terms`.
    pub fn fourier(&mut self, function: Activation, terms: &[FourierTerm]) {
        self.steps.push(Step::Fourier {
            function,
            terms: terms.to_vec(),
        });
    }

    /// `[b, in, 1, 1] -> [b, out, 1, 1]` with burn's `weight [in, out]`.
    pub fn linear(&mut self, weight: Tensor<2>, bias: Option<Tensor<1>>) {
        let [_, out] = weight.dims();
        self.steps.push(Step::Linear {
            weight: host(weight),
            bias: bias.map(host),
            out,
        });
    }

    /// The finished steps, with Winograd filters for the convolutions that suit them and the
    /// orbit form of those that commute with their grid symmetries (both made after folding,
    /// so they include the batch norm scales).
    fn finish(mut self) -> Vec<Step> {
        for step in &mut self.steps {
            if let Step::Conv {
                window,
                filter,
                symmetry,
                orbits,
                ..
            } = step
            {
                let (c_in, c_out) = (filter.c_in, filter.c_out);
                **filter = ConvFilter::new(
                    std::mem::take(&mut filter.weight),
                    std::mem::take(&mut filter.bias),
                    c_in,
                    *window,
                );
                *orbits = OrbitConv::new(
                    &std::mem::take(symmetry),
                    &filter.weight,
                    &filter.bias,
                    c_out,
                    c_in,
                    window.kernel,
                )
                .map(|mut orbit| {
                    let weight = std::mem::take(&mut orbit.weight);
                    let bias = std::mem::take(&mut orbit.bias);
                    let reduced = ConvFilter::new(weight, bias, c_in, *window);
                    Box::new((orbit, reduced))
                });
            }
        }
        self.steps
    }
}

impl Net {
    /// This net frozen for inference: filters expanded once, batch norms folded into the
    /// convolutions before them, activations fused into the convolutions' epilogues. Each
    /// layer lowers itself; a layer without a lowering is an error naming it.
    pub fn to_frozen(&self) -> Result<FrozenNet> {
        let net = self.valid();
        let mut builder = FrozenBuilder::default();
        for (layer, plan) in net.layers.iter().zip(&self.plan.layers) {
            layer
                .lower(&mut builder)
                .map_err(|e| e.in_layer(&plan.name))?;
        }
        let plan = &self.plan;
        let map = |channels: usize, size: usize| channels * size * size;
        let largest_map = plan.layers.iter().fold(
            map(plan.input_type.channels(), plan.input_size),
            |most, layer| most.max(map(layer.out_type.channels(), layer.out_size)),
        );
        Ok(FrozenNet {
            steps: builder.finish(),
            model: plan.model.clone(),
            channels: plan.input_type.channels(),
            size: plan.input_size,
            fast: self.kernels.fast(),
            orbits: OrbitConvs::WhereFaster,
            largest_map,
        })
    }
}

/// Applies `f` to every value of `x`, as burn's activations define it.
fn activate(f: Activation, x: &mut [f32]) {
    match f {
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::LeakyRelu { negative_slope } => {
            let slope = negative_slope as f32;
            x.iter_mut()
                .for_each(|v| *v = if *v >= 0.0 { *v } else { *v * slope })
        }
        Activation::Elu { alpha } => {
            let alpha = alpha as f32;
            x.iter_mut().for_each(|v| {
                if *v <= 0.0 {
                    *v = alpha * v.exp_m1()
                }
            })
        }
        Activation::Tanh => x.iter_mut().for_each(|v| *v = v.tanh()),
        Activation::Sigmoid => x.iter_mut().for_each(|v| *v = 1.0 / (1.0 + (-*v).exp())),
    }
}

/// A buffer `[batch, channels, height, width]`.
struct Maps {
    values: Vec<f32>,
    channels: usize,
    height: usize,
    width: usize,
}

impl Maps {
    fn plane(&self) -> usize {
        self.height * self.width
    }
}

/// Max or mean pooling of every plane, as burn's pools define it: padding is -inf for the max
/// and counts as zeros in the mean.
fn pool(x: &Maps, batch: usize, reduce: Reduce, w: Window) -> Maps {
    let span = w.dilation * (w.kernel - 1) + 1;
    let out_h = (x.height + 2 * w.padding - span) / w.stride + 1;
    let out_w = (x.width + 2 * w.padding - span) / w.stride + 1;
    let mut values = vec![0.0f32; batch * x.channels * out_h * out_w];
    values
        .par_chunks_mut(out_h * out_w)
        .zip(x.values.par_chunks(x.plane()))
        .for_each(|(out, plane)| {
            if reduce == Reduce::Max
                && w.kernel == 2
                && w.stride == 2
                && w.padding == 0
                && w.dilation == 1
            {
                // The common 2x2/2 max pool: two input rows per output row, no bounds to test.
                for (oy, out_row) in out.chunks_exact_mut(out_w).enumerate() {
                    let top = &plane[2 * oy * x.width..][..2 * out_w];
                    let bottom = &plane[(2 * oy + 1) * x.width..][..2 * out_w];
                    for (ox, o) in out_row.iter_mut().enumerate() {
                        *o = top[2 * ox]
                            .max(top[2 * ox + 1])
                            .max(bottom[2 * ox].max(bottom[2 * ox + 1]));
                    }
                }
                return;
            }
            for oy in 0..out_h {
                for ox in 0..out_w {
                    let mut acc = match reduce {
                        Reduce::Max => f32::NEG_INFINITY,
                        Reduce::Mean => 0.0,
                    };
                    for ky in 0..w.kernel {
                        let y = (oy * w.stride + ky * w.dilation) as isize - w.padding as isize;
                        for kx in 0..w.kernel {
                            let xx =
                                (ox * w.stride + kx * w.dilation) as isize - w.padding as isize;
                            let inside = (0..x.height as isize).contains(&y)
                                && (0..x.width as isize).contains(&xx);
                            if !inside {
                                continue;
                            }
                            let v = plane[y as usize * x.width + xx as usize];
                            acc = match reduce {
                                Reduce::Max => acc.max(v),
                                Reduce::Mean => acc + v,
                            };
                        }
                    }
                    out[oy * out_w + ox] = match reduce {
                        Reduce::Max => acc,
                        Reduce::Mean => acc / (w.kernel * w.kernel) as f32,
                    };
                }
            }
        });
    Maps {
        values,
        channels: x.channels,
        height: out_h,
        width: out_w,
    }
}

impl FrozenNet {
    /// Switches the fast transforms (Winograd F(2x2, 3x3) for 3x3 convolutions, the FFT grid
    /// for large windows) on (the default, unless the net was frozen with
    /// [`Kernels::Direct`](crate::ops::Kernels)) or off (plain im2col + GEMM everywhere),
    /// e.g. to compare the two.
    pub fn with_fast_transforms(mut self, enabled: bool) -> Self {
        self.fast = enabled;
        self
    }

    /// Where the convolutions that commute with the grid's exact symmetries run in orbit
    /// form: the |S| quarter-turned (and mirrored) copies of the input through the filter
    /// rows of one output channel per orbit, the results moved into place; 1/|S| of the
    /// filter is read. By default where that is faster (large filters, few images).
    pub fn with_orbit_convs(mut self, orbits: OrbitConvs) -> Self {
        self.orbits = orbits;
        self
    }

    /// Per convolution, the number of grid elements |S| of its orbit form (0: none).
    pub fn orbit_orders(&self) -> Vec<usize> {
        self.steps
            .iter()
            .filter_map(|step| match step {
                Step::Conv { orbits, .. } => Some(orbits.as_ref().map_or(0, |o| o.0.order())),
                _ => None,
            })
            .collect()
    }

    /// The model it was frozen from.
    pub fn model(&self) -> &str {
        &self.model
    }

    /// Runs the model on `x [batch, channels, size, size]` (NCHW, contiguous) and returns its
    /// output, `[batch, channels', height', width']` flattened, with that shape.
    pub fn forward(&self, x: &[f32], shape: [usize; 4]) -> Result<(Vec<f32>, [usize; 4])> {
        let [batch, channels, height, width] = shape;
        let (c, n) = (self.channels, self.size);
        if channels != c
            || height != n
            || width != n
            || batch == 0
            || x.len() != shape.iter().product::<usize>()
        {
            return Err(EquivarError::InputShape {
                context: format!("frozen model `{}`", self.model),
                expected: format!("[batch >= 1, {c}, {n}, {n}] with as many values"),
                found: vec![x.len(), batch, channels, height, width],
                fix: format!(
                    "the model was frozen for {n}x{n} inputs with {c} channels; pass that shape \
                     and a buffer of batch * {} values",
                    c * n * n
                ),
            });
        }
        // A wake-up per parallel loop from outside the pool cost a quarter of a single
        // image's time.
        let through_all_steps = |x: &[f32]| {
            let mut maps = Maps {
                values: x.to_vec(),
                channels,
                height,
                width,
            };
            let batch = x.len() / (channels * height * width);
            for step in &self.steps {
                maps = self.run(step, maps, batch);
            }
            maps
        };
        let chunk = self.images_per_chunk(batch);
        let maps = on_compute_threads(|| {
            if chunk == batch {
                return through_all_steps(x);
            }
            // Chunks of images through the whole net, one per task: each chunk's maps stay
            // in cache from one step to the next instead of a batch's going through memory.
            let parts: Vec<Maps> = x
                .par_chunks(chunk * channels * height * width)
                .map(through_all_steps)
                .collect();
            let mut values = Vec::with_capacity(parts.iter().map(|p| p.values.len()).sum());
            parts
                .iter()
                .for_each(|p| values.extend_from_slice(&p.values));
            Maps {
                values,
                ..parts.into_iter().next().expect("batch >= 1")
            }
        });
        let shape = [batch, maps.channels, maps.height, maps.width];
        Ok((maps.values, shape))
    }

    /// Images per chunk for a batch of `batch`: as many as keep the largest map near 2 MB, if
    /// that is at least 4 images and the batch holds two chunks; else the whole batch (the
    /// layers then split it among the threads themselves). Nets with layers the FFT may run
    /// keep the whole batch: the FFT's products pay back its transforms over many images.
    /// (Measured on `abusing-p4` at batch 128: chunks of 8 or 16 images 13% faster; on
    /// `abusing-p4m`, whose 80 channels do more work per value moved, no change; on `hnet`'s
    /// FFT layers, chunks of 9 were 8% slower.)
    pub fn images_per_chunk(&self, batch: usize) -> usize {
        const CHUNK_VALUES: usize = 1 << 19;
        let fft_layers = self.fast
            && self.steps.iter().any(|step| {
                matches!(step, Step::Conv { filter, window: w, .. }
                    if fft_conv::suits_layer(w.kernel, w.stride, w.dilation, filter.c_in, filter.c_out))
            });
        let chunk = CHUNK_VALUES / self.largest_map.max(1);
        if !fft_layers && chunk >= 4 && batch >= 2 * chunk {
            chunk
        } else {
            batch
        }
    }

    /// Class scores `[batch, classes]` of a classifier whose output is `1 x 1`, flattened.
    pub fn logits(&self, x: &[f32], shape: [usize; 4]) -> Result<Vec<f32>> {
        let (values, out_shape) = self.forward(x, shape)?;
        if out_shape[2] * out_shape[3] != 1 {
            return Err(EquivarError::not_a_classifier(
                format!("logits of frozen model `{}`", self.model),
                out_shape.to_vec(),
            ));
        }
        Ok(values)
    }

    /// [`FrozenNet::logits`] of a burn tensor `x [batch, channels, size, size]`, as a tensor
    /// `[batch, classes]` on x's device (the model itself runs on the CPU).
    pub fn tensor_logits(&self, x: Tensor<4>) -> Result<Tensor<2>> {
        let (shape, device) = (x.dims(), x.device());
        let logits = self.logits(&host(x), shape)?;
        let classes = logits.len() / shape[0];
        Ok(Tensor::from_data(
            TensorData::new(logits, [shape[0], classes]),
            &device,
        ))
    }

    fn run(&self, step: &Step, x: Maps, batch: usize) -> Maps {
        match step {
            Step::Conv {
                window: w,
                filter,
                activation,
                orbits,
                ..
            } => {
                let s = ConvShape {
                    batch,
                    c_in: filter.c_in,
                    height: x.height,
                    width: x.width,
                    c_out: filter.c_out,
                    kernel: w.kernel,
                    stride: w.stride,
                    padding: w.padding,
                    dilation: w.dilation,
                };
                let epilogue = |y: &mut [f32]| {
                    if let Some(f) = activation {
                        activate(*f, y)
                    }
                };
                let values = match orbits.as_deref() {
                    Some((orbit, reduced))
                        if self.orbits == OrbitConvs::Always
                            || (self.orbits == OrbitConvs::WhereFaster && orbit.pays(&s)) =>
                    {
                        let moved = orbit.moved_inputs(&x.values, batch, x.height);
                        let reps = ConvShape {
                            batch: batch * orbit.order(),
                            c_out: reduced.c_out,
                            ..s
                        };
                        let z = reduced.run(&reps, &moved, self.fast, |_| {});
                        orbit.assemble(&z, batch, s.out_height(), epilogue)
                    }
                    _ => filter.run(&s, &x.values, self.fast, epilogue),
                };
                Maps {
                    values,
                    channels: filter.c_out,
                    height: s.out_height(),
                    width: s.out_width(),
                }
            }
            Step::Affine { scale, shift } => {
                let mut x = x;
                let plane = x.plane();
                x.values
                    .par_chunks_mut(plane)
                    .enumerate()
                    .for_each(|(i, p)| {
                        let c = i % scale.len();
                        p.iter_mut().for_each(|v| *v = *v * scale[c] + shift[c]);
                    });
                x
            }
            Step::Activation(f) => {
                let mut x = x;
                let chunk = x.plane().max(1024);
                x.values.par_chunks_mut(chunk).for_each(|p| activate(*f, p));
                x
            }
            Step::Pool { reduce, window } => pool(&x, batch, *reduce, *window),
            Step::GlobalAvgPool => {
                let plane = x.plane();
                let values = x
                    .values
                    .chunks_exact(plane)
                    .map(|p| (p.iter().map(|v| *v as f64).sum::<f64>() / plane as f64) as f32)
                    .collect();
                Maps {
                    values,
                    channels: x.channels,
                    height: 1,
                    width: 1,
                }
            }
            Step::GroupReduce { order, reduce } => {
                let plane = x.plane();
                let mut values = Vec::with_capacity(x.values.len() / order);
                for group in x.values.chunks_exact(order * plane) {
                    for p in 0..plane {
                        let members = (0..*order).map(|g| group[g * plane + p]);
                        values.push(match reduce {
                            Reduce::Max => members.fold(f32::NEG_INFINITY, f32::max),
                            Reduce::Mean => members.sum::<f32>() / *order as f32,
                        });
                    }
                }
                Maps {
                    values,
                    channels: x.channels / order,
                    height: x.height,
                    width: x.width,
                }
            }
            Step::Fields { layout, op } => Maps {
                values: fields::apply(layout, op, &x.values, x.plane()),
                channels: fields::out_channels(layout, op),
                height: x.height,
                width: x.width,
            },
            Step::NormMaxPool { layout, window } => resample::norm_max_pool(layout, *window, &x),
            Step::Blur { filter, window } => resample::blur(filter, *window, &x),
            Step::Upsample {
                scale,
                align_corners,
            } => resample::upsample(*scale, *align_corners, &x),
            Step::Canonical { resampling, poses } => {
                canonical::canonical_resample(*resampling, poses, &x)
            }
            Step::Fourier { function, terms } => {
                let plane = x.plane();
                let values = fields::fourier(terms, &x.values, plane, |v| activate(*function, v));
                Maps { values, ..x }
            }
            Step::Linear { weight, bias, out } => {
                let inp = x.channels;
                let mut values = Vec::with_capacity(batch * out);
                for features in x.values.chunks_exact(inp) {
                    for o in 0..*out {
                        let dot: f32 = (0..inp).map(|i| features[i] * weight[i * out + o]).sum();
                        values.push(dot + bias.as_ref().map_or(0.0, |b| b[o]));
                    }
                }
                Maps {
                    values,
                    channels: *out,
                    height: 1,
                    width: 1,
                }
            }
        }
    }
}
