//! `equivar data fetch`, `train`, `eval` and `reproduce`: argument handling and printing over
//! `equivar-data` and `equivar-train`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use burn::tensor::Device;
use clap::Args;
use equivar::plan::{Exactness, Plan};
use equivar_data::fetch::{Fetched, fetch as fetch_dataset};
use equivar_data::{Dataset, Split};
use equivar_train::config::DEFAULT_BATCH_NORM_RECALIBRATION;
use equivar_train::eval::{RotationCurve, paper_angles, rotation_curve};
use equivar_train::images::PreparedImages;
use equivar_train::reproduce::{self, Profile};
use equivar_train::spherical_mnist::{self, SphericalProfile};
use equivar_train::trainer::{self, TrainOptions, TrainOutcome, load_run};
use equivar_train::{Regime, TrainConfig};
use serde_json::json;

pub fn fetch(dataset: &str, data_dir: Option<&Path>, force: bool) -> Result<()> {
    let dataset: Dataset = dataset.parse().map_err(anyhow::Error::msg)?;
    let cache = equivar_data::cache_dir(data_dir);
    match fetch_dataset(dataset, &cache, force)? {
        Fetched::AlreadyPresent(dir) => {
            println!("{dataset} is already in {}; nothing to do", dir.display())
        }
        Fetched::Downloaded(dir) => println!(
            "{dataset}: fetched, sizes and SHA-256 verified, in {}",
            dir.display()
        ),
    }
    Ok(())
}

#[derive(Args)]
pub struct TrainArgs {
    /// A reference model (`equivar models`).
    #[arg(long, default_value = "abusing-p4")]
    model: String,
    #[arg(long, default_value = "mnist")]
    dataset: String,
    #[arg(long, default_value_t = 28)]
    input_size: usize,
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    #[arg(long, default_value_t = 0.01)]
    lr: f64,
    #[arg(long, default_value_t = 1e-5)]
    weight_decay: f64,
    /// Halve (x --lr-gamma) the learning rate every this many epochs.
    #[arg(long, default_value_t = 10)]
    lr_step: usize,
    #[arg(long, default_value_t = 0.5)]
    lr_gamma: f64,
    /// Train on the first K training images.
    #[arg(long)]
    train_limit: Option<usize>,
    /// upright | uniform | gaussian:SIGMA (degrees; angle ~ N(45, SIGMA)).
    #[arg(long, default_value = "upright")]
    regime: Regime,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (config, metrics, checkpoints).
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint (its config.json decides the rest).
    #[arg(long)]
    resume: bool,
    /// Train even if the model is not exactly equivariant at --input-size.
    #[arg(long)]
    allow_approximate: bool,
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// After each epoch, recompute the batch-norm statistics over this many training images
    /// with the weights fixed, so evaluation sees the trained network (0: off).
    #[arg(long, default_value_t = DEFAULT_BATCH_NORM_RECALIBRATION)]
    bn_recalibration: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
}

pub fn train(args: TrainArgs) -> Result<()> {
    let options = TrainOptions {
        progress: !args.quiet,
    };
    let outcome = if args.resume {
        let done = equivar_train::run_dir::RunDir::new(&args.out)
            .checkpoint()?
            .map_or(0, |c| c.epochs_done);
        println!("resuming {} after epoch {done}", args.out.display());
        trainer::resume(&args.out, options)?
    } else {
        if !args.allow_approximate {
            let plan = Plan::new(&equivar::models::spec(&args.model)?, args.input_size)?;
            plan.require(Exactness::Require).map_err(|e| {
                anyhow::anyhow!("{e}\nPass --allow-approximate to train it anyway.")
            })?;
        }
        let config = TrainConfig {
            model: args.model,
            dataset: args.dataset,
            input_size: args.input_size,
            epochs: args.epochs,
            batch_size: args.batch_size,
            lr: args.lr,
            weight_decay: args.weight_decay,
            lr_step: args.lr_step,
            lr_gamma: args.lr_gamma,
            seed: args.seed,
            regime: args.regime,
            train_limit: args.train_limit,
            allow_approximate: args.allow_approximate,
            data_dir: args.data_dir,
            batch_norm_recalibration: args.bn_recalibration,
        };
        trainer::train(&config, &args.out, options)?
    };
    report_training(&outcome, &args.out);
    Ok(())
}

fn report_training(outcome: &TrainOutcome, dir: &Path) {
    println!("data: {}", outcome.source);
    println!(
        "{:>5} {:>9} {:>10} {:>10} {:>9}",
        "epoch", "lr", "loss", "train acc", "img/s"
    );
    for m in &outcome.metrics {
        println!(
            "{:>5} {:>9.2e} {:>10.4} {:>9.2}% {:>9.0}",
            m.epoch, m.lr, m.train_loss, m.train_accuracy, m.images_per_second
        );
    }
    println!(
        "run directory: {} (evaluate: equivar eval --run {0})",
        dir.display()
    );
}

#[derive(Args)]
pub struct EvalArgs {
    /// Run directories (repeat for one curve per run).
    #[arg(long, required = true)]
    run: Vec<PathBuf>,
    /// Evaluate on the first K test images.
    #[arg(long)]
    test_limit: Option<usize>,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Plot path without extension (default: accuracy-vs-angle in the first run directory).
    #[arg(long)]
    plot: Option<PathBuf>,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    let device = Device::flex();
    let mut curves: Vec<RotationCurve> = Vec::new();
    for dir in &args.run {
        let (net, config) = load_run(dir, &device)?;
        let (data, source) = trainer::load_split(&config, Split::Test)?;
        if !args.json {
            eprintln!(
                "{}: {} at {}, test data: {source}",
                dir.display(),
                config.model,
                config.input_size
            );
        }
        let test = PreparedImages::new(&data, config.input_size, args.test_limit);
        let label = format!("{}-{} ({})", config.model, config.input_size, config.regime);
        curves.push(rotation_curve(
            &net,
            &test,
            &paper_angles(),
            &label,
            &device,
            !args.json,
        )?);
    }
    let stem = args
        .plot
        .clone()
        .unwrap_or_else(|| args.run[0].join("accuracy-vs-angle"));
    let [png, svg] =
        equivar_train::plot::accuracy_vs_angle(&curves, "Test accuracy under rotation", &stem)?;
    if args.json {
        let runs: Vec<_> = curves
            .iter()
            .zip(&args.run)
            .map(|(c, dir)| {
                json!({"run": dir, "label": c.label, "angles": c.angles, "accuracy": c.accuracy,
                       "mean": c.mean(), "test_images": c.test_images})
            })
            .collect();
        let first = &curves[0];
        let out = json!({
            "angles": first.angles, "accuracy": first.accuracy, "mean": first.mean(),
            "test_images": first.test_images, "runs": runs,
            "plot": {"png": png, "svg": svg},
        });
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    print!("{:>6}", "angle");
    for c in &curves {
        print!("  {:>24}", c.label);
    }
    println!();
    for (i, angle) in curves[0].angles.iter().enumerate() {
        print!("{angle:>6.0}");
        for c in &curves {
            print!("  {:>23.2}%", c.accuracy[i]);
        }
        println!();
    }
    print!("{:>6}", "mean");
    for c in &curves {
        print!("  {:>23.2}%", c.mean());
    }
    println!();
    println!("plot: {} and {}", png.display(), svg.display());
    Ok(())
}

pub fn reproduce(study: &str, quick: bool, out: &Path, data_dir: Option<PathBuf>) -> Result<()> {
    if study != "using-abusing" && study != "spherical-mnist" {
        bail!("unknown study `{study}`; known: using-abusing, spherical-mnist");
    }
    // Both full profiles train on all of MNIST; the quick ones run on the embedded subset.
    if !quick
        && !equivar_data::dataset::is_fetched(
            Dataset::Mnist,
            &equivar_data::cache_dir(data_dir.as_deref()),
        )
    {
        bail!(
            "the full profile needs all of MNIST: run `equivar data fetch mnist` first (or use --quick)"
        );
    }
    if study == "spherical-mnist" {
        let profile = if quick {
            SphericalProfile::quick()
        } else {
            SphericalProfile::full()
        };
        let results = spherical_mnist::reproduce(&profile, out, data_dir, true)?;
        println!("\n{}", spherical_mnist::markdown(&results));
        println!("wrote {}/results.json and results.md", out.display());
        return Ok(());
    }
    let profile = if quick {
        Profile::quick()
    } else {
        Profile::full()
    };
    std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
    reproduce::using_abusing(&profile, out, data_dir, true)?;
    Ok(())
}
