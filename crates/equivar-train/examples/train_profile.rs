//! Times training steps (batch 128, forward + backward + Adam) of a reference net, for perf:
//! `cargo run --release -p equivar-train --example train_profile -- abusing-p4 128`.
use std::time::Instant;

use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Int, Tensor, TensorData};
use equivar::models;
use equivar::plan::Exactness;

/// As in the CLI: huge pages and reuse of large freed blocks.
#[global_allocator]
static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "abusing-p4".to_string());
    let batch: usize = args.next().map_or(128, |s| s.parse().expect("batch"));
    let device = Device::flex().autodiff();
    let mut net = models::spec(&name)
        .expect("model")
        .init(28, Exactness::Require, &device)
        .expect("net");
    let pixels: Vec<f32> = (0..batch * 28 * 28)
        .map(|i| (i % 17) as f32 * 0.1)
        .collect();
    let x = Tensor::<4>::from_data(TensorData::new(pixels, [batch, 1, 28, 28]), &device);
    let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &device);
    let loss_fn = CrossEntropyLossConfig::new().init(&device);
    let mut optim = AdamConfig::new().init();
    for _ in 0..5 {
        let t = Instant::now();
        let repeats = 10;
        for _ in 0..repeats {
            let logits = net.logits(x.clone()).expect("fits");
            let loss = loss_fn.forward(logits, y.clone());
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(0.001, net.clone(), grads);
        }
        let s = t.elapsed().as_secs_f64() / repeats as f64;
        println!(
            "{name} batch {batch}: {:.1} ms per step, {:.0} img/s",
            s * 1e3,
            batch as f64 / s
        );
    }
}
