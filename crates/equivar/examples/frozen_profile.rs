//! Times the frozen inference model of a reference net:
//! `cargo run --release -p equivar --example frozen_profile -- abusing-p4 128` (`WINOGRAD=0`:
//! im2col + GEMM only).
use std::time::Instant;

use burn::tensor::Device;
use equivar::models;
use equivar::plan::Exactness;

/// As in the CLI: huge pages and reuse of large freed blocks.
#[global_allocator]
static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;

fn main() {
    let mut args = std::env::args().skip(1);
    let name = args.next().unwrap_or_else(|| "abusing-p4".to_string());
    let batch: usize = args.next().map_or(128, |s| s.parse().expect("batch"));
    let net = models::spec(&name)
        .expect("model")
        .init(28, Exactness::Require, &Device::flex())
        .expect("net");
    let winograd = std::env::var("WINOGRAD").as_deref() != Ok("0");
    let frozen = net.to_frozen().unwrap().with_fast_transforms(winograd);
    let x: Vec<f32> = (0..batch * 28 * 28)
        .map(|i| (i % 17) as f32 * 0.1)
        .collect();
    for _ in 0..5 {
        let t = Instant::now();
        let repeats = if batch == 1 { 200 } else { 10 };
        for _ in 0..repeats {
            let _ = frozen.logits(&x, [batch, 1, 28, 28]).expect("fits");
        }
        let s = t.elapsed().as_secs_f64() / repeats as f64;
        println!(
            "{name} batch {batch}: {:.3} ms, {:.0} img/s",
            s * 1e3,
            batch as f64 / s
        );
    }
}
