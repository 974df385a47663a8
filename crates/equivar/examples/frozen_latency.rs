//! Time of a frozen reference model per call, with the orbit form of its convolutions on and
//! off, interleaved (this machine's speed drifts): for the batch-1 latency work.
//!
//! `cargo run --release -p equivar --example frozen_latency -- MODEL [BATCH [ROUNDS]]`

use std::time::Instant;

use burn::tensor::{Device, Distribution, Tensor};
use equivar::frozen::OrbitConvs;
use equivar::models;
use equivar::plan::Exactness;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let name = args.first().map_or("e2-c8", String::as_str);
    let batch: usize = args.get(1).map_or(Ok(1), |a| a.parse())?;
    let rounds: usize = args.get(2).map_or(Ok(5), |a| a.parse())?;
    if batch == 0 || rounds == 0 {
        return Err("BATCH and ROUNDS must be at least 1".into());
    }
    let device = Device::flex();
    device.seed(1);
    let net = models::spec(name)?.init(28, Exactness::AllowApproximate, &device)?;
    let channels = net.plan.input_type.channels();
    let shape = [batch, channels, 28, 28];
    let x: Vec<f32> = Tensor::<4>::random(shape, Distribution::Normal(0.3, 1.0), &device)
        .into_data()
        .try_into_vec::<f32>()
        .map_err(|e| format!("{e:?}"))?;
    // The first freeze also samples the steerable bases; time the second.
    let _ = net.to_frozen()?;
    let start = Instant::now();
    let frozen = net.to_frozen()?;
    println!(
        "{name}, batch {batch}: frozen in {:.3} s; orbit forms' |S| per convolution {:?}",
        start.elapsed().as_secs_f64(),
        frozen.orbit_orders()
    );
    let forms = [
        (
            "where faster",
            frozen.clone().with_orbit_convs(OrbitConvs::WhereFaster),
        ),
        (
            "always",
            frozen.clone().with_orbit_convs(OrbitConvs::Always),
        ),
        ("never", frozen.with_orbit_convs(OrbitConvs::Never)),
    ];
    let calls = if batch == 1 { 20 } else { 3 };
    let mut times = vec![Vec::new(); forms.len()];
    for _ in 0..rounds {
        for (form, t) in forms.iter().zip(&mut times) {
            frozen_call(&form.1, &x, shape); // warm: spectra and pages
            let start = Instant::now();
            for _ in 0..calls {
                frozen_call(&form.1, &x, shape);
            }
            t.push(start.elapsed().as_secs_f64() * 1e3 / calls as f64);
        }
    }
    for ((label, _), t) in forms.iter().zip(&mut times) {
        t.sort_by(f64::total_cmp);
        let listed: Vec<String> = t.iter().map(|v| format!("{v:.2}")).collect();
        println!(
            "{label:>7}: median {:.2} ms per call ({})",
            t[t.len() / 2],
            listed.join(" ")
        );
    }
    Ok(())
}

fn frozen_call(frozen: &equivar::frozen::FrozenNet, x: &[f32], shape: [usize; 4]) {
    let _ = frozen.forward(x, shape).expect("input fits the model");
}
