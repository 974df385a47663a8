//! `equivar`: plan, check and (later) train equivariant models from the command line.

use std::process::ExitCode;

use anyhow::Result;
use burn::tensor::{Device, Distribution, Tensor};
use clap::{Parser, Subcommand};
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
    /// Measure equivariance at random init under every group element (approximate models allowed).
    Check {
        #[arg(long)]
        model: String,
        #[arg(long)]
        input_size: usize,
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Number of random inputs.
        #[arg(long, default_value_t = 4)]
        batch: usize,
        #[arg(long)]
        json: bool,
    },
    /// Plan and measure abusing-p4 at 27, 28 and 29 side by side: only 28 is exact.
    Demo {
        #[arg(long, default_value = "abusing-p4")]
        model: String,
    },
}

fn run_check(model: &str, n: usize, seed: u64, batch: usize) -> Result<EquivarianceReport> {
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
            seed,
            batch,
            json,
        } => {
            let report = run_check(&model, input_size, seed, batch)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&report)?);
            } else {
                println!("{report}");
            }
        }
        Command::Demo { model } => {
            println!(
                "Using and Abusing Equivariance: the same network at three input sizes.\n\
                 A stride-2 layer is exactly equivariant only if its sampling grid is symmetric \
                 about the image centre.\n"
            );
            println!(
                "{:<12} {:>5} {:>15} {:>22}  first inexact layer",
                "model", "size", "plan", "measured rel error"
            );
            for n in [27, 28, 29] {
                let plan = Plan::new(&models::spec(&model)?, n)?;
                let report = run_check(&model, n, 0, 4)?;
                let first = plan.first_inexact().map_or("-".to_string(), |l| {
                    format!("{} ({}x{})", l.name, l.in_size, l.in_size)
                });
                println!(
                    "{:<12} {:>5} {:>15} {:>22.3e}  {first}",
                    model,
                    n,
                    if plan.exact { "exact" } else { "approximate" },
                    report.max_rel_error
                );
            }
            println!(
                "\nDetails: equivar plan --model {model} --input-size 29\n         \
                 equivar check --model {model} --input-size 29"
            );
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
