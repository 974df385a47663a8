//! Runs training steps of a reference model at batch 128 on 28x28 inputs, or with `frozen`
//! batches through its frozen inference model, for perf:
//! `cargo run --release -p equivar-train --example train_step_profile -- abusing-p4 40 [frozen [BATCH]]`
//! (model, steps, and for the frozen model the batch, 128 unless given). Prints the median
//! step time and images per second.
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::{AdamConfig, GradientsParams};
use burn::tensor::{Device, Distribution, Int, Tensor, TensorData};
use equivar::models;
use equivar::plan::Exactness;

/// As in the CLI: huge pages and reuse of large freed blocks.
#[global_allocator]
static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "abusing-p4".to_string());
    let steps: usize = args.next().map_or(Ok(40), |a| a.parse())?;
    let frozen = args.next().as_deref() == Some("frozen");
    let batch: usize = args.next().map_or(Ok(128), |a| a.parse())?;
    let size = 28;
    let ad = Device::flex().autodiff();
    let mut net = models::spec(&name)?.init(size, Exactness::Require, &ad)?;
    let x = Tensor::<4>::random([batch, 1, size, size], Distribution::Normal(0.0, 1.0), &ad);
    let labels: Vec<i64> = (0..batch as i64).map(|i| (i * 7) % 10).collect();
    let y = Tensor::<1, Int>::from_data(TensorData::new(labels, [batch]), &ad);
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let mut optim = AdamConfig::new().with_epsilon(1e-8).init();
    let mut times = Vec::with_capacity(steps);
    if frozen {
        let frozen = net.to_frozen()?;
        let values = x.clone().into_data().try_to_vec::<f32>()?;
        for _ in 0..steps {
            let start = std::time::Instant::now();
            let _ = frozen.logits(&values, [batch, 1, size, size])?;
            times.push(start.elapsed().as_secs_f64());
        }
    }
    for _ in 0..steps * usize::from(times.is_empty()) {
        let start = std::time::Instant::now();
        let loss = loss_fn.forward(net.logits(x.clone())?, y.clone());
        let grads = GradientsParams::from_grads(loss.backward(), &net);
        net = optim.step(0.001, net.clone(), grads);
        times.push(start.elapsed().as_secs_f64());
    }
    times.sort_by(f64::total_cmp);
    let median = times[times.len() / 2];
    println!(
        "{name}: {steps} steps, median {:.3} ms, {:.0} img/s",
        median * 1e3,
        batch as f64 / median
    );
    Ok(())
}
