//! `equivar bench`: model and layer figures as a table, or as JSON lines that join with the
//! peer scripts' output on `model` and the figure names.

use anyhow::Result;
use clap::Args;
use equivar::ops::Kernels;
use equivar_train::bench::{self, BenchOptions, LayerKind};
use equivar_train::bench_disco;

#[derive(Args)]
pub struct BenchArgs {
    /// Reference models or model files to benchmark at 28x28 (comma-separated; an empty
    /// list skips them).
    #[arg(long, value_delimiter = ',', default_value = "abusing-p4,abusing-p4m")]
    models: Vec<String>,
    /// DISCO sphere-convolution layers to benchmark, as NLATxNLON grids (comma-separated,
    /// NLAT in 8..=2048, NLON in 16..=4096, e.g. 64x128,256x512), with th_disco.py's
    /// settings; equivar's kernels only.
    #[arg(long, default_value = "")]
    disco: String,
    /// Batch of the DISCO benchmarks (1..=1024).
    #[arg(long, default_value_t = 4)]
    disco_batch: usize,
    /// Channels in and out of the DISCO benchmarks (1..=1024).
    #[arg(long, default_value_t = 16)]
    disco_channels: usize,
    /// Benchmark the E(3) ops (spherical harmonics, tensor products, gate) with the cases
    /// of ../shared/peers/e3nn_ops.py.
    #[arg(long)]
    o3: bool,
    /// Time a SEGNN training step (forward, L1 loss, backward, Adam) on the QM9 batch in FILE
    /// (bench/qm9-batch-32.json), the case bench/segnn_step.py times with e3nn.
    #[arg(long, value_name = "FILE")]
    segnn_step: Option<std::path::PathBuf>,
    /// Kernels: equivar (ours on the Flex CPU backend), direct (ours, im2col + GEMM for
    /// every conv), burn (burn's ops), both (equivar and burn) or all.
    #[arg(long, default_value = "both", value_parser = ["equivar", "direct", "burn", "both", "all"])]
    kernels: String,
    /// Device of the model, layer and DISCO figures: cpu (the default), or a GPU backend this
    /// build has (cuda[:N], wgpu[:N], vulkan[:N]), where burn's ops run whatever --kernels
    /// says. The frozen-model figures are the CPU's on every device; --o3 and --segnn-step
    /// run on the CPU only.
    #[arg(long, default_value = "cpu")]
    device: String,
    /// Timed repetitions per figure, medians reported (1..=1000).
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
        "both" => vec![Kernels::Equivar, Kernels::Burn],
        "all" => Kernels::ALL.to_vec(),
        one => vec![one.parse().map_err(|_| {
            anyhow::anyhow!(
                "unknown --kernels `{one}`: use equivar, direct, burn, both (equivar and \
                 burn) or all"
            )
        })?],
    })
}

pub fn run(args: BenchArgs) -> Result<()> {
    // Every argument is checked before the first figure is measured.
    let kernels = kernel_choices(&args.kernels)?;
    anyhow::ensure!(
        (1..=1000).contains(&args.repeats),
        "--repeats must be in 1..=1000, got {}",
        args.repeats
    );
    for model in args.models.iter().filter(|m| !m.is_empty()) {
        equivar::models::spec(model)?;
    }
    let disco_shapes = bench_disco::parse_shapes(&args.disco, "--disco")?;
    let device = equivar::device::parse_device(&args.device)?;
    anyhow::ensure!(
        equivar::ops::is_flex(&device) || (!args.o3 && args.segnn_step.is_none()),
        "--o3 and --segnn-step measure equivar's CPU kernels: drop them with --device {}, or \
         run them with --device cpu",
        args.device
    );
    anyhow::ensure!(
        args.models.iter().any(|m| !m.is_empty())
            || !args.no_layers
            || !disco_shapes.is_empty()
            || args.o3
            || args.segnn_step.is_some(),
        "nothing to benchmark: --models is empty, --no-layers is set, --disco names no grid, \
         --o3 is not set and --segnn-step names no batch"
    );
    let segnn_batch = match &args.segnn_step {
        Some(path) => Some(equivar_train::bench_segnn::read_batch(path)?),
        None => None,
    };
    if !disco_shapes.is_empty() {
        bench_disco::check_settings(args.disco_batch, args.disco_channels)?;
    }
    let options = BenchOptions {
        repeats: args.repeats,
        ..BenchOptions::default()
    };
    let machine = bench::machine();
    // The model column as wide as the longest name given (abusing-p4m-subsample: 21).
    let width = args.models.iter().map(|m| m.len()).fold(12, usize::max);
    if args.json {
        println!("{}", serde_json::to_string(&machine)?);
    } else {
        print_machine(&machine);
        println!(
            "{:<w$} {:<8} {:>10} {:>11} {:>11} {:>10} {:>10} {:>10} {:>11} {:>10}",
            "model",
            "kernels",
            "construct",
            "train b128",
            "infer b128",
            "infer b1",
            "train",
            "infer",
            "frozen b128",
            "frozen b1",
            w = width
        );
        println!(
            "{:<w$} {:<8} {:>10} {:>11} {:>11} {:>10} {:>10} {:>10} {:>11} {:>10}",
            "",
            "",
            "ms",
            "img/s",
            "img/s",
            "ms",
            "% peak",
            "% peak",
            "img/s",
            "ms",
            w = width
        );
    }
    for model in args.models.iter().filter(|m| !m.is_empty()) {
        for &k in &kernels {
            let f = bench::bench_model(model, 28, k, options, &machine, &device)?;
            if args.json {
                println!("{}", serde_json::to_string(&f)?);
            } else {
                println!(
                    "{:<w$} {:<8} {:>10.3} {:>11.0} {:>11.0} {:>10.3} {:>10} {:>10} {:>11.0} {:>10.3}",
                    f.model,
                    f.kernels,
                    f.construct_s * 1e3,
                    f.train_b128_ips,
                    f.infer_b128_ips,
                    f.infer_b1_ms,
                    percent(f.train_peak_share),
                    percent(f.infer_peak_share),
                    f.frozen_infer_b128_ips,
                    f.frozen_infer_b1_ms,
                    w = width
                );
            }
        }
    }
    if !args.no_layers {
        bench_layers(&args, &kernels, options, (&machine, &device))?;
    }
    if !disco_shapes.is_empty() && !args.json {
        println!(
            "\n{:<11} {:>5} {:>8} {:>8} {:>10} {:>9} {:>12} {:>9}",
            "DISCO grid",
            "batch",
            "channels",
            "psi nnz",
            "construct",
            "fwd ms",
            "fwd+bwd ms",
            "peak MB"
        );
    }
    if args.o3 {
        bench_o3(&args, &kernels)?;
    }
    if let Some(molecules) = &segnn_batch {
        if !args.json {
            println!(
                "\n{:<10} {:<18} {:>6} {:>9} {:>6} {:>6} {:>8} {:>8}",
                "SEGNN", "hidden", "lmax", "molecules", "atoms", "edges", "params", "step ms"
            );
        }
        for f in equivar_train::bench_segnn::segnn_step(molecules, args.repeats)? {
            if args.json {
                println!("{}", serde_json::to_string(&f)?);
            } else {
                println!(
                    "{:<10} {:<18} {:>6} {:>9} {:>6} {:>6} {:>8} {:>8.1}",
                    f.case,
                    f.hidden,
                    f.lmax_attr,
                    f.molecules,
                    f.atoms,
                    f.edges,
                    f.params,
                    f.step_ms
                );
            }
        }
    }
    for shape in disco_shapes {
        // Bigger grids get fewer repetitions: 1024x2048 takes seconds per pass.
        let repeats = if shape[0] * shape[1] >= 1 << 21 {
            3
        } else {
            args.repeats
        };
        let f = bench_disco::bench_disco(
            shape,
            args.disco_batch,
            args.disco_channels,
            repeats,
            (Kernels::Equivar, &device),
        )?;
        if args.json {
            println!("{}", serde_json::to_string(&f)?);
        } else {
            println!(
                "{:<11} {:>5} {:>8} {:>8} {:>8.1}ms {:>9.2} {:>12.2} {:>9.0}",
                format!("{}x{}", f.shape[0], f.shape[1]),
                f.batch,
                f.channels,
                f.psi_nnz,
                f.construct_s * 1e3,
                f.fwd_ms,
                f.fwd_bwd_ms,
                f.peak_rss_mb
            );
        }
    }
    Ok(())
}

fn bench_o3(args: &BenchArgs, kernels: &[Kernels]) -> Result<()> {
    if !args.json {
        println!(
            "\n{:<13} {:<13} {:<8} {:>7} {:>10} {:>12}",
            "E(3) op", "case", "kernels", "rows", "fwd ms", "fwd+bwd ms"
        );
    }
    for &k in kernels.iter().filter(|&&k| k != Kernels::Direct) {
        for f in equivar_train::bench_o3::bench_o3(k, args.repeats)? {
            if args.json {
                println!("{}", serde_json::to_string(&f)?);
            } else {
                println!(
                    "{:<13} {:<13} {:<8} {:>7} {:>10.2} {:>12.2}",
                    f.bench, f.case, f.kernels, f.rows, f.fwd_ms, f.fwd_bwd_ms
                );
            }
        }
    }
    Ok(())
}

fn bench_layers(
    args: &BenchArgs,
    kernels: &[Kernels],
    options: BenchOptions,
    (machine, device): (&bench::Machine, &burn::tensor::Device),
) -> Result<()> {
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
        for &k in kernels {
            let f = bench::bench_layer(kind, fields, size, k, options, (machine, device))?;
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

/// The machine block that heads the tables: CPU, the kernels' build, the measured FMA peaks
/// (the shares' denominator) and sgemm's rate beside them.
fn print_machine(machine: &bench::Machine) {
    println!("machine: {}, {} threads", machine.cpu, machine.threads);
    println!(
        "kernels: {} build, {} for DISCO, O(3), batch norm and pooling (this CPU runs: {}; \
         EQUIVAR_ISA=plain|avx2|avx512 chooses)",
        machine.kernels_isa,
        machine.autovectorized_isa,
        machine.isas.join(", ")
    );
    for isa in &machine.isas {
        let peaks: Vec<String> = (machine.fma_peaks.iter())
            .filter(|(name, _, _)| name == isa)
            .map(|(_, threads, gflops)| format!("{gflops:.1} GFLOP/s on {threads}"))
            .collect();
        if !peaks.is_empty() {
            println!("fp32 FMA peak, {isa}: {} thread(s)", peaks.join(", "));
        }
    }
    println!(
        "shares below: of {:.1} GFLOP/s (the widest build's peak at {} threads); sgemm 2048^3 \
         runs at {:.1} GFLOP/s ({:.0}% of it)\n",
        machine.peak_gflops,
        machine.threads,
        machine.sgemm_2048_gflops,
        100.0 * machine.sgemm_2048_gflops / machine.peak_gflops
    );
}

/// A share as a percentage, "-" where there is none (figures measured off the CPU).
fn percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1}%", 100.0 * share)
    } else {
        "-".to_string()
    }
}
