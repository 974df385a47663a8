//! Criterion benches of the figures `equivar bench` reports, for `abusing-p4` and
//! `abusing-p4m` at 28x28 on equivar's CPU kernels: a training step (batch 128, forward +
//! backward + Adam), inference at batch 128 and latency at batch 1 (the module and the frozen
//! model), construction; and one lifting and one group conv layer, forward and forward +
//! backward. `cargo bench -p equivar-train --bench reference_models [-- FILTER]`; the
//! side-by-side comparison with escnn is `bash bench/compare.sh`.

use std::time::Duration;

use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use equivar::field::FieldType;
use equivar::group::Group;
use equivar::models;
use equivar::nn::{GroupConv2d, LiftingConv2d};
use equivar::plan::Exactness;
use equivar::space::Window;

/// As in the CLI: huge pages and reuse of large freed blocks.
#[global_allocator]
static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;

const SIZE: usize = 28;
const BATCH: usize = 128;

fn images(batch: usize, device: &Device) -> Tensor<4> {
    Tensor::random(
        [batch, 1, SIZE, SIZE],
        Distribution::Normal(0.0, 1.0),
        device,
    )
}

fn host(x: &Tensor<4>) -> Vec<f32> {
    x.clone()
        .into_data()
        .try_into_vec::<f32>()
        .expect("f32 values")
}

fn models(c: &mut Criterion) {
    let device = Device::flex();
    let ad = device.clone().autodiff();
    for name in ["abusing-p4", "abusing-p4m"] {
        let spec = models::spec(name).expect("a reference model");
        let mut group = c.benchmark_group(name);
        group
            .sample_size(10)
            .measurement_time(Duration::from_secs(8));

        group.bench_function("construct", |b| {
            b.iter(|| spec.init(SIZE, Exactness::Require, &device).expect("fits"))
        });

        let mut net = spec.init(SIZE, Exactness::Require, &ad).expect("fits");
        let x = images(BATCH, &ad);
        let labels: Vec<i64> = (0..BATCH as i64).map(|i| (i * 7) % 10).collect();
        let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [BATCH]), &ad);
        let loss_fn = CrossEntropyLossConfig::new().init(&ad);
        let mut optim = AdamConfig::new().init();
        group.bench_function("train_b128", |b| {
            b.iter(|| {
                let logits = net.logits(x.clone()).expect("fits");
                let loss = loss_fn.forward(logits, y.clone());
                let grads = GradientsParams::from_grads(loss.backward(), &net);
                net = optim.step(0.001, net.clone(), grads);
            })
        });

        let inference = net.valid();
        let frozen = net.to_frozen().expect("lowers");
        for batch in [BATCH, 1] {
            let x = images(batch, &device);
            group.bench_function(format!("infer_b{batch}"), |b| {
                b.iter_batched(
                    || x.clone(),
                    |x| inference.logits(x).expect("fits").into_data(),
                    BatchSize::SmallInput,
                )
            });
            let values = host(&x);
            group.bench_function(format!("frozen_infer_b{batch}"), |b| {
                b.iter(|| {
                    frozen
                        .logits(&values, [batch, 1, SIZE, SIZE])
                        .expect("fits")
                })
            });
        }
        group.finish();
    }
}

fn layers(c: &mut Criterion) {
    let ad = Device::flex().autodiff();
    let c4 = Group::cyclic(4);
    let window = Window::new(3).padding(1);
    let mut group = c.benchmark_group("layers_b128_28x28");
    group
        .sample_size(10)
        .measurement_time(Duration::from_secs(5));

    let lifting = LiftingConv2d::new("lifting", FieldType::trivial(c4, 1), 10, window, true, &ad)
        .expect("a lifting layer");
    let x = images(BATCH, &ad).require_grad();
    let lifting_inference = lifting.valid();
    group.bench_function("lifting_1_to_10_fields_forward", |b| {
        b.iter(|| lifting_inference.forward(x.clone().inner()).into_data())
    });
    group.bench_function("lifting_1_to_10_fields_forward_backward", |b| {
        b.iter(|| lifting.forward(x.clone()).sum().backward())
    });

    let conv = GroupConv2d::new("group", FieldType::regular(c4, 10), 10, window, true, &ad)
        .expect("a group conv layer");
    let x = Tensor::<4>::random([BATCH, 40, SIZE, SIZE], Distribution::Normal(0.0, 1.0), &ad)
        .require_grad();
    let conv_inference = conv.valid();
    group.bench_function("group_10_to_10_fields_forward", |b| {
        b.iter(|| conv_inference.forward(x.clone().inner()).into_data())
    });
    group.bench_function("group_10_to_10_fields_forward_backward", |b| {
        b.iter(|| conv.forward(x.clone()).sum().backward())
    });
    group.finish();
}

criterion_group!(benches, models, layers);
criterion_main!(benches);
