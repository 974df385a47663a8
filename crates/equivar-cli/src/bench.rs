//! `equivar bench`: model and layer figures as a table, or as JSON lines that join with the
//! peer scripts' output on `model` and the figure names.

use anyhow::{Result, bail};
use clap::Args;
use equivar::ops::Kernels;
use equivar_train::bench::{self, BenchOptions, LayerKind};

#[derive(Args)]
pub struct BenchArgs {
    /// Models to benchmark (comma-separated).
    #[arg(long, value_delimiter = ',', default_value = "abusing-p4,abusing-p4m")]
    models: Vec<String>,
    /// Conv kernels: equivar (ours on the Flex CPU backend), burn (burn's conv2d), or both.
    #[arg(long, default_value = "both")]
    kernels: String,
    /// Timed repetitions per figure (medians are reported).
    #[arg(long, default_value_t = 10)]
    repeats: usize,
    /// Skip the single-layer benchmarks.
    #[arg(long)]
    no_layers: bool,
    /// One JSON object per line instead of tables.
    #[arg(long)]
    json: bool,
}

fn kernel_choices(name: &str) -> Result<Vec<Kernels>> {
    Ok(match name {
        "equivar" => vec![Kernels::Equivar],
        "burn" => vec![Kernels::Burn],
        "both" => vec![Kernels::Equivar, Kernels::Burn],
        other => bail!("unknown --kernels `{other}`: use equivar, burn or both"),
    })
}

pub fn run(args: BenchArgs) -> Result<()> {
    let kernels = kernel_choices(&args.kernels)?;
    let options = BenchOptions {
        repeats: args.repeats.max(1),
        ..BenchOptions::default()
    };
    let machine = bench::machine();
    if args.json {
        println!("{}", serde_json::to_string(&machine)?);
    } else {
        println!(
            "machine: {} threads, fp32 sgemm 2048^3 {:.1} GFLOP/s (the peak the shares refer to)\n",
            machine.threads, machine.sgemm_2048_gflops
        );
        println!(
            "{:<12} {:<8} {:>10} {:>11} {:>11} {:>10} {:>10} {:>10}",
            "model",
            "kernels",
            "construct",
            "train b128",
            "infer b128",
            "infer b1",
            "train",
            "infer"
        );
        println!(
            "{:<12} {:<8} {:>10} {:>11} {:>11} {:>10} {:>10} {:>10}",
            "", "", "ms", "img/s", "img/s", "ms", "% peak", "% peak"
        );
    }
    for model in &args.models {
        for &k in &kernels {
            let f = bench::bench_model(model, 28, k, options, &machine)?;
            if args.json {
                println!("{}", serde_json::to_string(&f)?);
            } else {
                println!(
                    "{:<12} {:<8} {:>10.3} {:>11.0} {:>11.0} {:>10.3} {:>9.1}% {:>9.1}%",
                    f.model,
                    f.kernels,
                    f.construct_s * 1e3,
                    f.train_b128_ips,
                    f.infer_b128_ips,
                    f.infer_b1_ms,
                    100.0 * f.train_peak_share,
                    100.0 * f.infer_peak_share
                );
            }
        }
    }
    if args.no_layers {
        return Ok(());
    }
    if !args.json {
        println!(
            "\n{:<8} {:>6} {:>9} {:<8} {:>10} {:>11} {:>10} {:>10}",
            "layer", "fields", "size", "kernels", "fwd ms", "bwd ms", "fwd GF/s", "bwd GF/s"
        );
    }
    let layers = [
        (LayerKind::Lifting, 10, 28),
        (LayerKind::Group, 10, 28),
        (LayerKind::Group, 10, 14),
        (LayerKind::Group, 20, 14),
    ];
    for (kind, fields, size) in layers {
        for &k in &kernels {
            let f = bench::bench_layer(kind, fields, size, k, options, &machine)?;
            if args.json {
                println!("{}", serde_json::to_string(&f)?);
            } else {
                println!(
                    "{:<8} {:>6} {:>9} {:<8} {:>10.2} {:>11.2} {:>10.1} {:>10.1}",
                    f.layer,
                    f.fields,
                    format!("{}x{}", f.size, f.size),
                    f.kernels,
                    f.forward_ms,
                    f.backward_ms,
                    f.forward_gflops,
                    f.backward_gflops
                );
            }
        }
    }
    Ok(())
}
