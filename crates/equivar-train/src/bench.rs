//! `equivar bench`: the figures the peer scripts print (training and inference throughput,
//! batch-1 latency, construction time) for the reference models, and single lifting and
//! group conv layers, with GFLOP/s and their share of the machine's measured fp32 FMA peak.
//!
//! Every figure is a median over repeated runs after warm-up. Conv work is counted by
//! [`equivar::ops::conv_flops`] around one forward pass; a training step counts it three
//! times (forward, input gradient, filter gradient), the convention the peers' figures use.

use std::time::Instant;

use anyhow::Result;
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use equivar::field::FieldType;
use equivar::group::Group;
use equivar::models;
use equivar::nn::{GroupConv2d, LiftingConv2d};
use equivar::ops::{self, Isa, Kernels};
use equivar::plan::Exactness;
use equivar::space::Window;
use serde::Serialize;

/// How long to measure.
#[derive(Clone, Copy, Debug)]
pub struct BenchOptions {
    /// Batch of the throughput figures (the peers use 128).
    pub batch: usize,
    /// Timed repetitions per figure (after warm-up); the median is reported.
    pub repeats: usize,
}

impl Default for BenchOptions {
    fn default() -> Self {
        BenchOptions {
            batch: 128,
            repeats: 10,
        }
    }
}

/// The machine: its CPU, the kernels' instruction set, and the measured fp32 rates the
/// shares refer to.
#[derive(Clone, Debug, Serialize)]
pub struct Machine {
    pub bench: &'static str,
    /// The CPU model and its widest vector extension, e.g. "AMD EPYC 7B13 (AVX2)".
    pub cpu: String,
    pub threads: usize,
    /// The build equivar's kernels run (`EQUIVAR_ISA` may narrow it) and every build this
    /// CPU runs.
    pub kernels_isa: &'static str,
    /// The build of the kernels compiled from portable Rust (DISCO, O(3), batch norm,
    /// pooling): narrower than
    /// `kernels_isa` where 512-bit instructions run at half width.
    pub autovectorized_isa: &'static str,
    pub isas: Vec<&'static str>,
    /// The fp32 FMA peak by instruction set and thread count (1 up to `threads`), measured
    /// with register-only FMA chains: `[isa, threads, GFLOP/s]`.
    pub fma_peaks: Vec<(&'static str, usize, f64)>,
    /// The peak the shares refer to: the widest build's at `threads` threads.
    pub peak_gflops: f64,
    /// The `gemm` crate's sgemm at 2048^3, for reference (the shares' old denominator).
    pub sgemm_2048_gflops: f64,
}

/// Whole-model figures, named as `../shared/peers` names them.
#[derive(Clone, Debug, Serialize)]
pub struct ModelFigures {
    pub bench: &'static str,
    pub model: String,
    pub kernels: &'static str,
    pub input_size: usize,
    pub threads: usize,
    pub n_params: usize,
    pub construct_s: f64,
    pub train_b128_ips: f64,
    pub infer_b128_ips: f64,
    pub infer_b1_ms: f64,
    /// The same with the frozen inference model (`Net::to_frozen`: filters cached, batch
    /// norm folded, activations fused, no tensors), and the time to freeze.
    pub frozen_infer_b128_ips: f64,
    pub frozen_infer_b1_ms: f64,
    pub freeze_s: f64,
    /// Forward conv work per image.
    pub conv_mflop_per_image: f64,
    pub train_gflops: f64,
    pub infer_gflops: f64,
    pub train_peak_share: f64,
    pub infer_peak_share: f64,
}

/// One conv layer, forward and backward.
#[derive(Clone, Debug, Serialize)]
pub struct LayerFigures {
    pub bench: &'static str,
    pub layer: &'static str,
    pub kernels: &'static str,
    pub fields: usize,
    pub channels_in: usize,
    pub channels_out: usize,
    pub size: usize,
    pub batch: usize,
    pub forward_ms: f64,
    pub backward_ms: f64,
    pub forward_gflops: f64,
    pub backward_gflops: f64,
    pub forward_peak_share: f64,
    pub backward_peak_share: f64,
}

pub fn machine() -> Machine {
    let threads = rayon::current_num_threads();
    let mut fma_peaks = Vec::new();
    for isa in Isa::available() {
        for t in 1..=threads {
            if let Some(gflops) = ops::fma_peak_gflops(isa, t) {
                fma_peaks.push((isa.name(), t, gflops));
            }
        }
    }
    let sgemm_2048_gflops = ops::sgemm_gflops(2048);
    // The widest build's peak at the bench's thread count; sgemm's rate without an FMA build.
    let peak_gflops = fma_peaks
        .iter()
        .rev()
        .find(|(_, t, _)| *t == threads)
        .map_or(sgemm_2048_gflops, |&(_, _, gflops)| gflops);
    Machine {
        bench: "equivar_machine",
        cpu: cpu_description(),
        threads,
        kernels_isa: Isa::detect().name(),
        autovectorized_isa: Isa::for_autovectorized().name(),
        isas: Isa::available().into_iter().map(Isa::name).collect(),
        fma_peaks,
        peak_gflops,
        sgemm_2048_gflops,
    }
}

/// The CPU model (Linux's `/proc/cpuinfo`; "unknown CPU" elsewhere), with its family and
/// model numbers where the name alone is vague ("AMD EPYC" in a virtual machine), and the
/// widest vector extension it has, which decides the kernels' rounding and speed.
pub fn cpu_description() -> String {
    let info = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        info.lines()
            .find(|l| l.split(':').next().is_some_and(|k| k.trim() == key))
            .and_then(|l| Some(l.split_once(':')?.1.trim().to_string()))
    };
    let model = field("model name").unwrap_or_else(|| "unknown CPU".to_string());
    let numbers = match (field("cpu family"), field("model")) {
        (Some(family), Some(number)) => format!(", family {family} model {number}"),
        _ => String::new(),
    };
    format!("{model} ({}{numbers})", vector_extension())
}

fn vector_extension() -> &'static str {
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx512f") {
            return "AVX-512";
        }
        if std::arch::is_x86_feature_detected!("avx2") {
            return "AVX2";
        }
        "SSE2"
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        std::env::consts::ARCH
    }
}

/// Median seconds of `repeats` runs of `f`, after `warmup` untimed ones.
pub(crate) fn median_seconds(warmup: usize, repeats: usize, mut f: impl FnMut()) -> f64 {
    for _ in 0..warmup {
        f();
    }
    let mut times: Vec<f64> = (0..repeats.max(1))
        .map(|_| {
            let start = Instant::now();
            f();
            start.elapsed().as_secs_f64()
        })
        .collect();
    times.sort_by(f64::total_cmp);
    times[times.len() / 2]
}

fn random_images(batch: usize, size: usize, device: &Device) -> Tensor<4> {
    Tensor::random(
        [batch, 1, size, size],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

/// Forces a result to exist (Flex is eager, but other backends may queue work).
fn settle<const D: usize>(t: Tensor<D>) {
    let _ = t.sum().into_scalar::<f32>();
}

/// Waits for the work queued on `device` (GPU backends run asynchronously), so a timed step
/// includes it. A failed sync surfaces on the next read, so it is not reported here.
fn sync(device: &Device) {
    let _ = device.sync();
}

impl Machine {
    /// `gflops`' share of this CPU's peak, for figures measured on the CPU; NaN (JSON null)
    /// for other devices, whose peak this does not measure.
    fn share_on(&self, device: &Device, gflops: f64) -> f64 {
        if ops::is_flex(device) {
            gflops / self.peak_gflops
        } else {
            f64::NAN
        }
    }
}

/// Benchmarks reference model `name` at `input_size` on `device` (training and inference
/// there; the frozen model, the CPU's by design, on this CPU).
pub fn bench_model(
    name: &str,
    input_size: usize,
    kernels: Kernels,
    options: BenchOptions,
    machine: &Machine,
    device: &Device,
) -> Result<ModelFigures> {
    let spec = models::spec(name)?;
    let device = device.clone();
    let ad = device.clone().autodiff();

    let construct_s = median_seconds(2, options.repeats.max(5), || {
        let _ = spec
            .init(input_size, Exactness::Require, &device)
            .expect("valid model");
    });

    let mut net = spec
        .init(input_size, Exactness::Require, &ad)?
        .with_kernels(kernels);
    let n_params = net.trainable_params();
    let batch = options.batch;
    let x = random_images(batch, input_size, &ad);
    let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let step_s = median_seconds(2, options.repeats, || {
        let logits = net.logits(x.clone()).expect("input fits the model");
        let loss = loss_fn.forward(logits, y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.001, net.clone(), grads);
        sync(&ad);
    });

    let frozen = net.valid();
    let x_plain = random_images(batch, input_size, &device);
    let conv_flop_per_image = conv_flops_of(|| {
        settle(
            frozen
                .logits(x_plain.clone())
                .expect("input fits the model"),
        );
    }) / batch as f64;
    let infer_s = median_seconds(2, options.repeats, || {
        settle(
            frozen
                .logits(x_plain.clone())
                .expect("input fits the model"),
        );
    });
    let x_one = random_images(1, input_size, &device);
    let latency_s = median_seconds(5, options.repeats.max(30), || {
        settle(frozen.logits(x_one.clone()).expect("input fits the model"));
    });

    let freeze_s = median_seconds(1, options.repeats, || {
        let _ = net
            .to_frozen()
            .expect("reference models lower to frozen steps");
    });
    let compiled = net.to_frozen()?;
    let host = |t: &Tensor<4>| {
        let dims = t.dims();
        let values = t.clone().into_data().try_into_vec::<f32>().expect("f32");
        (values, dims)
    };
    let (batch_values, batch_shape) = host(&x_plain);
    let frozen_infer_s = median_seconds(2, options.repeats, || {
        let _ = compiled
            .logits(&batch_values, batch_shape)
            .expect("input fits the model");
    });
    let (one_values, one_shape) = host(&x_one);
    let frozen_latency_s = median_seconds(5, options.repeats.max(30), || {
        let _ = compiled
            .logits(&one_values, one_shape)
            .expect("input fits the model");
    });

    let train_ips = batch as f64 / step_s;
    let infer_ips = batch as f64 / infer_s;
    let train_gflops = 3.0 * conv_flop_per_image * train_ips / 1e9;
    let infer_gflops = conv_flop_per_image * infer_ips / 1e9;
    Ok(ModelFigures {
        bench: "equivar_model",
        model: name.to_string(),
        kernels: kernels.name(),
        input_size,
        threads: machine.threads,
        n_params,
        construct_s,
        train_b128_ips: train_ips,
        infer_b128_ips: infer_ips,
        infer_b1_ms: latency_s * 1e3,
        frozen_infer_b128_ips: batch as f64 / frozen_infer_s,
        frozen_infer_b1_ms: frozen_latency_s * 1e3,
        freeze_s,
        conv_mflop_per_image: conv_flop_per_image / 1e6,
        train_gflops,
        infer_gflops,
        train_peak_share: machine.share_on(&device, train_gflops),
        infer_peak_share: machine.share_on(&device, infer_gflops),
    })
}

/// A closure to time.
type Timed = Box<dyn FnMut()>;

/// Timers for a layer: its inference forward (frozen, plain tensors) and a forward + backward
/// on autodiff tensors.
fn layer_timers<M: Module + 'static>(
    layer: M,
    forward: fn(&M, Tensor<4>) -> Tensor<4>,
    x_ad: &Tensor<4>,
) -> (Timed, Timed) {
    let frozen = layer.valid();
    let (x, x_ad) = (x_ad.clone().inner(), x_ad.clone());
    (
        Box::new(move || settle(forward(&frozen, x.clone()))),
        Box::new(move || {
            let _ = forward(&layer, x_ad.clone()).sum().backward();
            sync(&x_ad.device());
        }),
    )
}

/// Forward conv FLOPs that `run` sends through [`ops::conv2d`].
fn conv_flops_of(run: impl FnOnce()) -> f64 {
    let before = ops::conv_flops();
    run();
    (ops::conv_flops() - before) as f64
}

/// Which conv layer to benchmark.
#[derive(Clone, Copy, Debug)]
pub enum LayerKind {
    /// Z2 -> C4: one image channel to `fields` regular fields.
    Lifting,
    /// C4 -> C4: `fields` regular fields to as many.
    Group,
}

/// Benchmarks one 3x3, padding-1 conv layer over C4 at `size` x `size`, forward and backward,
/// on `device`.
pub fn bench_layer(
    kind: LayerKind,
    fields: usize,
    size: usize,
    kernels: Kernels,
    options: BenchOptions,
    (machine, device): (&Machine, &Device),
) -> Result<LayerFigures> {
    let group = Group::cyclic(4);
    let ad = device.clone().autodiff();
    let window = Window::new(3).padding(1);
    let batch = options.batch;
    let (name, in_type) = match kind {
        LayerKind::Lifting => ("lifting", FieldType::trivial(group, 1)),
        LayerKind::Group => ("group", FieldType::regular(group, fields)),
    };
    let x_ad = Tensor::<4>::random(
        [batch, in_type.channels(), size, size],
        Distribution::Normal(0.0, 1.0),
        &ad,
    )
    .require_grad();
    let (mut forward, forward_backward) = match kind {
        LayerKind::Lifting => {
            let mut layer = LiftingConv2d::new(name, in_type, fields, window, true, &ad)?;
            layer.geometry.kernels = kernels;
            layer_timers(layer, LiftingConv2d::forward, &x_ad)
        }
        LayerKind::Group => {
            let mut layer = GroupConv2d::new(name, in_type, fields, window, true, &ad)?;
            layer.geometry.kernels = kernels;
            layer_timers(layer, GroupConv2d::forward, &x_ad)
        }
    };
    let flops = conv_flops_of(&mut forward);
    let forward_s = median_seconds(2, options.repeats, forward);
    let both_s = median_seconds(2, options.repeats, forward_backward);
    let backward_s = (both_s - forward_s).max(1e-9);
    // The backward computes the input and the filter gradients: twice the forward's work.
    let forward_gflops = flops / forward_s / 1e9;
    let backward_gflops = 2.0 * flops / backward_s / 1e9;
    Ok(LayerFigures {
        bench: "equivar_layer",
        layer: name,
        kernels: kernels.name(),
        fields,
        channels_in: in_type.channels(),
        channels_out: fields * 4,
        size,
        batch,
        forward_ms: forward_s * 1e3,
        backward_ms: backward_s * 1e3,
        forward_gflops,
        backward_gflops,
        forward_peak_share: machine.share_on(device, forward_gflops),
        backward_peak_share: machine.share_on(device, backward_gflops),
    })
}
