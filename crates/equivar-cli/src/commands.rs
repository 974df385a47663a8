//! `equivar data fetch`, `train`, `eval` and `reproduce`: argument handling and printing over
//! `equivar-data` and `equivar-train`.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result, bail};
use clap::Args;
use equivar::plan::{Exactness, Plan};
use equivar_data::fetch::fetch as fetch_dataset;
use equivar_data::{Dataset, Split};
use equivar_train::config::DEFAULT_BATCH_NORM_RECALIBRATION;
use equivar_train::e2_mnist_rot::{self, Profile as E2Profile};
use equivar_train::eval::{RotationCurve, paper_angles, rotation_curve};
use equivar_train::examples::examples;
use equivar_train::reproduce::{self, Profile};
use equivar_train::segnn_qm9;
use equivar_train::spherical_mnist::{self, SphericalProfile};
use equivar_train::trainer::{self, Compute, DataChoice, TrainOptions, TrainOutcome, load_run_at};
use equivar_train::{Regime, TrainConfig};
use serde_json::json;

pub fn fetch(dataset: &str, data_dir: Option<&Path>, force: bool) -> Result<()> {
    let cache = equivar_data::cache_dir(data_dir);
    if dataset == "qm9" {
        let (file, built) = equivar_data::qm9::fetch(&cache, force)?;
        let data = equivar_data::qm9::load(&cache)?;
        let split = equivar_data::qm9::standard_split(&data)?;
        let verb = if built {
            "fetched and converted"
        } else {
            "already present"
        };
        println!(
            "qm9: {verb}: {} molecules, {} atoms, SHA-256 verified, in {}; standard split {} / {} / {}",
            data.len(),
            data.atomic_numbers.len(),
            file.display(),
            split.train.len(),
            split.valid.len(),
            split.test.len()
        );
        return Ok(());
    }
    let dataset: Dataset = dataset.parse().map_err(anyhow::Error::msg)?;
    let fetched = fetch_dataset(dataset, &cache, force)?;
    for path in &fetched.removed_debris {
        println!("removed {}, left by an interrupted fetch", path.display());
    }
    if !fetched.replaced.is_empty() {
        println!(
            "replaced damaged file(s): {} (their SHA-256 did not match)",
            fetched.replaced.join(", ")
        );
    }
    if fetched.downloaded && dataset == Dataset::MnistRot {
        println!(
            "{dataset}: generated from MNIST (seed {}, {} train / {} test images, one uniform \
             angle each), SHA-256 verified, in {}",
            equivar_data::mnist_rot::SEED,
            equivar_data::mnist_rot::TRAIN_COUNT,
            equivar_data::mnist_rot::TEST_COUNT,
            fetched.dir.display()
        );
    } else if fetched.downloaded {
        println!(
            "{dataset}: fetched, sizes and SHA-256 verified, in {}",
            fetched.dir.display()
        );
    } else {
        println!(
            "{dataset} is already in {} (sizes and SHA-256 verified); nothing to do",
            fetched.dir.display()
        );
    }
    Ok(())
}

/// Where a command computes: `--device` and `--kernels`, on every command that runs a model.
#[derive(Args, Clone, Debug)]
pub struct ComputeArgs {
    /// Device: cpu (burn's Flex backend, where equivar's kernels run; the default), or a GPU
    /// backend this build has: cuda[:N], wgpu[:N], vulkan[:N] (cargo features of those names).
    #[arg(long, default_value = "cpu")]
    pub device: String,
    /// Heavy ops (convolutions, batch norm, pooling, DISCO): equivar (equivar's CPU kernels,
    /// Winograd or FFT convolutions where they pay), direct (the same, im2col + GEMM for every conv) or burn
    /// (burn's own ops). On GPU devices burn's ops run whatever this says.
    #[arg(long, env = "EQUIVAR_KERNELS", default_value = "equivar")]
    pub kernels: String,
}

impl ComputeArgs {
    pub fn compute(&self) -> Result<Compute> {
        Ok(Compute {
            device: equivar::device::parse_device(&self.device)?,
            kernels: self
                .kernels
                .parse()
                .context("in --kernels (or $EQUIVAR_KERNELS, its default)")?,
        })
    }
}

#[derive(Args)]
pub struct TrainArgs {
    /// A planar reference model (`equivar models`) or a model file (.json/.toml).
    #[arg(long, default_value = "abusing-p4")]
    model: String,
    /// The data set (fetch fashion-mnist first: `equivar data fetch fashion-mnist`; make
    /// mnist-rot: `equivar data make mnist-rot`).
    #[arg(long, default_value = "mnist", value_parser = ["mnist", "fashion-mnist", "mnist-rot"])]
    dataset: String,
    /// Input size in pixels: the 28x28 images are resized (bilinear) to SIZE x SIZE.
    #[arg(long, default_value_t = 28)]
    input_size: usize,
    /// Epochs to train (1..=100000).
    #[arg(long, default_value_t = 50)]
    epochs: usize,
    /// Images per Adam step (1..=65536).
    #[arg(long, default_value_t = 256)]
    batch_size: usize,
    /// Initial learning rate of Adam (positive).
    #[arg(long, default_value_t = 0.01, allow_negative_numbers = true)]
    lr: f64,
    /// L2 weight decay added to the gradient (PyTorch's Adam), in [0, 1].
    #[arg(long, default_value_t = 1e-5, allow_negative_numbers = true)]
    weight_decay: f64,
    /// Multiply the learning rate by --lr-gamma every this many epochs (>= 1).
    #[arg(long, default_value_t = 10)]
    lr_step: usize,
    /// Factor of the step schedule, in (0, 1].
    #[arg(long, default_value_t = 0.5, allow_negative_numbers = true)]
    lr_gamma: f64,
    /// Train on the first K training images (>= 1; default: all).
    #[arg(long)]
    train_limit: Option<usize>,
    /// Rotation of each training image: upright | uniform | gaussian:SIGMA (degrees, SIGMA >=
    /// 0; angle ~ N(45, SIGMA)).
    #[arg(long, default_value = "upright")]
    regime: Regime,
    /// Seed of the initial weights, the shuffling and the rotations.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Run directory (config, metrics, checkpoints); one training process at a time.
    #[arg(long)]
    out: PathBuf,
    /// Continue the run in --out from its last checkpoint, as its config.json describes it.
    /// Other flags must match the config (or be left out), unless --override.
    #[arg(long)]
    resume: bool,
    /// With --resume: continue with the flags given here where they differ from the run's
    /// config (e.g. more --epochs, another --lr); each change is recorded in config.json.
    /// --model, --dataset and --input-size cannot change.
    #[arg(long = "override")]
    override_config: bool,
    /// Train even if the model is not exactly equivariant at --input-size.
    #[arg(long)]
    allow_approximate: bool,
    /// Data cache that holds the data set (default: $EQUIVAR_DATA_DIR, else
    /// $XDG_CACHE_HOME/equivar, else ~/.cache/equivar; without either, MNIST's embedded
    /// subset). A named directory must hold the data: there is no fallback. With --resume:
    /// where the run's recorded data now lives.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// With --resume: continue on data other than the run recorded (another digest).
    #[arg(long)]
    allow_other_data: bool,
    /// After each epoch, recompute the batch-norm statistics over this many training images
    /// with the weights fixed, so evaluation sees the trained network (0: off).
    #[arg(long, default_value_t = DEFAULT_BATCH_NORM_RECALIBRATION)]
    bn_recalibration: usize,
    /// No progress bars.
    #[arg(long)]
    quiet: bool,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

impl TrainArgs {
    /// The run these flags describe.
    fn config(&self) -> TrainConfig {
        TrainConfig {
            model: self.model.clone(),
            dataset: self.dataset.clone(),
            input_size: self.input_size,
            epochs: self.epochs,
            batch_size: self.batch_size,
            lr: self.lr,
            weight_decay: self.weight_decay,
            lr_step: self.lr_step,
            lr_gamma: self.lr_gamma,
            seed: self.seed,
            regime: self.regime,
            train_limit: self.train_limit,
            allow_approximate: self.allow_approximate,
            data_dir: self.data_dir.clone(),
            batch_norm_recalibration: self.bn_recalibration,
            data: None,
            spec: None,
            amendments: Vec::new(),
        }
    }
}

/// The flags that describe a run, with their keys in `config.json`.
const SETTINGS: [(&str, &str); 14] = [
    ("model", "model"),
    ("dataset", "dataset"),
    ("input_size", "input_size"),
    ("epochs", "epochs"),
    ("batch_size", "batch_size"),
    ("lr", "lr"),
    ("weight_decay", "weight_decay"),
    ("lr_step", "lr_step"),
    ("lr_gamma", "lr_gamma"),
    ("train_limit", "train_limit"),
    ("regime", "regime"),
    ("seed", "seed"),
    ("allow_approximate", "allow_approximate"),
    ("bn_recalibration", "batch_norm_recalibration"),
];

/// The run settings whose `config.json` key is not their flag's name: `(flag, key)`.
pub(crate) fn settings_with_other_keys() -> impl Iterator<Item = (&'static str, &'static str)> {
    SETTINGS.into_iter().filter(|(flag, key)| flag != key)
}

/// Settings a resumed run cannot change: the checkpoint would not fit, or the data would be
/// another.
const FIXED: [&str; 3] = ["model", "dataset", "input_size"];

/// For `--resume`: the stored config, or (with `--override`) the stored config with the given
/// flags' values, or an error listing the given flags that differ from it.
fn amend(
    stored: &TrainConfig,
    requested: &TrainConfig,
    given: &[String],
    override_config: bool,
    epochs_done: usize,
) -> Result<Option<TrainConfig>> {
    let mut merged = serde_json::to_value(stored)?;
    let wanted = serde_json::to_value(requested)?;
    let mut changes = Vec::new();
    for (flag, key) in SETTINGS {
        if !given.iter().any(|g| g == flag) || merged[key] == wanted[key] {
            continue;
        }
        let cli_flag = format!("--{}", flag.replace('_', "-"));
        changes.push((
            flag,
            format!("{cli_flag} {} -> {}", merged[key], wanted[key]),
        ));
        merged[key] = wanted[key].clone();
    }
    if changes.is_empty() {
        return Ok(None);
    }
    let list = changes
        .iter()
        .map(|(_, c)| format!("  {c}"))
        .collect::<Vec<_>>()
        .join("\n");
    if !override_config {
        bail!(
            "--resume continues the run as its config.json says; these flags differ from it \
             (run's value -> given):\n{list}\nLeave them out, or pass --override to continue \
             with them"
        );
    }
    if let Some((flag, _)) = changes.iter().find(|(f, _)| FIXED.contains(f)) {
        bail!(
            "--{} cannot change when a run is resumed (its checkpoint and data belong to the \
             old value); start a new run with another --out",
            flag.replace('_', "-")
        );
    }
    let mut changed: TrainConfig = serde_json::from_value(merged)?;
    anyhow::ensure!(
        changed.epochs >= epochs_done,
        "--epochs {} is fewer than the {epochs_done} epochs the run has done",
        changed.epochs
    );
    for (_, change) in &changes {
        changed
            .amendments
            .push(format!("after epoch {epochs_done}: {change}"));
    }
    println!("continuing with:\n{list}");
    Ok(Some(changed))
}

pub fn train(args: TrainArgs, given: &[String]) -> Result<()> {
    let options = TrainOptions {
        progress: !args.quiet,
        compute: args.compute.compute()?,
    };
    let data = DataChoice {
        dir: args.data_dir.clone(),
        allow_other: args.allow_other_data,
    };
    let outcome = if args.resume {
        let requested = args.config();
        trainer::resume(&args.out, options, &data, |stored, done| {
            println!("resuming {} after epoch {done}", args.out.display());
            amend(stored, &requested, given, args.override_config, done)
        })?
    } else {
        for (set, flag) in [
            (args.override_config, "--override"),
            (args.allow_other_data, "--allow-other-data"),
        ] {
            anyhow::ensure!(!set, "{flag} applies to --resume only");
        }
        let config = args.config();
        config.validate()?;
        if !args.allow_approximate {
            let plan = Plan::new(&equivar::models::spec(&args.model)?, args.input_size)?;
            plan.require(Exactness::Require).map_err(|e| {
                anyhow::anyhow!("{e}\nPass --allow-approximate to train it anyway.")
            })?;
        }
        trainer::train(&config, &args.out, options)?
    };
    report_training(&outcome, &args.out);
    Ok(())
}

fn report_training(outcome: &TrainOutcome, dir: &Path) {
    for path in &outcome.removed_debris {
        println!("removed {}, left by an interrupted write", path.display());
    }
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
    /// Evaluate on the first K test images (>= 1; default: all).
    #[arg(long)]
    test_limit: Option<usize>,
    /// Data cache that holds the run's data set (default: where the run recorded it). The
    /// data must be the run's (same digest) unless --allow-other-data.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Evaluate on data other than the run recorded, e.g. all of MNIST for a run trained on
    /// the embedded subset.
    #[arg(long)]
    allow_other_data: bool,
    /// Print JSON instead of the table.
    #[arg(long)]
    json: bool,
    /// Plot path without extension (default: accuracy-vs-angle in the first run directory).
    #[arg(long)]
    plot: Option<PathBuf>,
    /// Evaluate the runs' weights at this input size instead of the one each was trained at
    /// (e.g. a model trained at 28 given 29-pixel images).
    #[arg(long)]
    input_size: Option<usize>,
    #[command(flatten)]
    pub compute: ComputeArgs,
}

pub fn eval(args: EvalArgs) -> Result<()> {
    anyhow::ensure!(
        args.test_limit != Some(0),
        "--test-limit must be at least 1 image, got 0"
    );
    let compute = args.compute.compute()?;
    let device = compute.device.clone();
    let choice = DataChoice {
        dir: args.data_dir.clone(),
        allow_other: args.allow_other_data,
    };
    let stem = args
        .plot
        .clone()
        .unwrap_or_else(|| args.run[0].join("accuracy-vs-angle"));
    // A plot that cannot be written is refused before the evaluation, not after it.
    let plot_dir = args.plot.as_deref().and_then(Path::parent);
    if let Some(dir) = plot_dir.filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create {} for the plot (--plot)", dir.display()))?;
    }
    let mut curves: Vec<RotationCurve> = Vec::new();
    let mut sources = Vec::new();
    for dir in &args.run {
        let trained_at = equivar_train::run_dir::RunDir::new(dir)
            .read_config()?
            .input_size;
        let (net, config) = load_run_at(dir, &compute, args.input_size)?;
        let (data, source) = trainer::load_data(&config, Split::Test, &choice)?;
        anyhow::ensure!(!data.is_empty(), "{source} holds no test images");
        let images = args.test_limit.map_or(data.len(), |l| l.min(data.len()));
        trainer::ensure_memory(&config, images, equivar_train::eval::EVAL_BATCH)?;
        if !args.json {
            let size = if config.input_size == trained_at {
                format!("at {trained_at}")
            } else {
                format!(
                    "trained at {trained_at}, evaluated at {}",
                    config.input_size
                )
            };
            eprintln!(
                "{}: {} {size}, test data: {source}",
                dir.display(),
                config.model
            );
        }
        let test = examples(net.spec.domain, &data, config.input_size, args.test_limit)?;
        let mut label = format!("{}-{trained_at} ({})", config.model, config.regime);
        if config.input_size != trained_at {
            label = format!("{label} at {}", config.input_size);
        }
        curves.push(rotation_curve(
            &net,
            test.as_ref(),
            &paper_angles(),
            &label,
            &device,
            !args.json,
        )?);
        sources.push(source.to_string());
    }
    let [png, svg] =
        equivar_train::plot::accuracy_vs_angle(&curves, "Test accuracy under rotation", &stem)?;
    if args.json {
        let runs: Vec<_> = curves
            .iter()
            .zip(&args.run)
            .zip(&sources)
            .map(|((c, dir), data)| {
                json!({"run": dir, "label": c.label, "angles": c.angles, "accuracy": c.accuracy,
                       "mean": c.mean(), "test_images": c.test_images, "data": data})
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

pub fn reproduce(
    study: &str,
    quick: bool,
    out: &Path,
    data_dir: Option<PathBuf>,
    compute: Compute,
) -> Result<()> {
    let options = TrainOptions {
        progress: true,
        compute,
    };
    if ![
        "using-abusing",
        "spherical-mnist",
        "e2-mnist-rot",
        "segnn-qm9",
    ]
    .contains(&study)
    {
        bail!(
            "unknown study `{study}`; known: using-abusing, spherical-mnist, e2-mnist-rot, segnn-qm9"
        );
    }
    if study == "segnn-qm9" {
        let cache = equivar_data::cache_dir(data_dir.as_deref());
        let (_, built) = equivar_data::qm9::fetch(&cache, false)?;
        if built {
            eprintln!("fetched QM9 into {}", cache.display());
        }
        let data = equivar_data::qm9::load(&cache)?;
        let profile = if quick {
            segnn_qm9::Profile::quick()
        } else {
            segnn_qm9::Profile::full()
        };
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        let results = segnn_qm9::reproduce(&profile, out, &data, &options.compute.device)?;
        println!("\n{}", segnn_qm9::markdown(&results));
        println!("wrote {}/results.json and results.md", out.display());
        return Ok(());
    }
    if study == "e2-mnist-rot" {
        // Rotated MNIST is generated from MNIST (fetched first if needed).
        let cache = equivar_data::cache_dir(data_dir.as_deref());
        fetch_dataset(Dataset::MnistRot, &cache, false)?;
        let profile = if quick {
            E2Profile::quick()
        } else {
            E2Profile::full()
        };
        std::fs::create_dir_all(out).with_context(|| format!("cannot create {}", out.display()))?;
        e2_mnist_rot::reproduce(&profile, out, data_dir, &options)?;
        return Ok(());
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
        let results = spherical_mnist::reproduce(&profile, out, data_dir, &options)?;
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
    reproduce::using_abusing(&profile, out, data_dir, &options)?;
    Ok(())
}

#[derive(Args)]
pub struct Qm9Args {
    /// A molecular model file (JSON: "kind": "segnn" or "nequip" and its sizes).
    #[arg(long)]
    model: PathBuf,
    /// The target: mu, alpha, homo, lumo, gap, r2, zpve, U0, U, H, G or Cv.
    #[arg(long)]
    target: String,
    /// Run directory (checkpoints, qm9-run.json, result.json).
    #[arg(long)]
    out: PathBuf,
    /// Train on the first N molecules of the standard training split (default: all 100,000).
    #[arg(long)]
    train_molecules: Option<usize>,
    /// Validate on the first N of the validation split (default: 1,000).
    #[arg(long, default_value_t = 1000)]
    valid_molecules: usize,
    #[arg(long, default_value_t = 30)]
    epochs: usize,
    #[arg(long, default_value_t = 32)]
    batch: usize,
    /// Adam's learning rate, divided by 10 at 80% and 90% of the epochs.
    #[arg(long, default_value_t = 5e-3)]
    lr: f64,
    /// Radius of the molecular graphs in angstrom.
    #[arg(long, default_value_t = 2.0)]
    radius: f32,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Data cache (fetches QM9 there if needed).
    #[arg(long)]
    data_dir: Option<PathBuf>,
}

pub fn qm9(args: Qm9Args) -> Result<()> {
    use equivar::e3::molecule::MoleculeModelConfig;
    use equivar_data::qm9::Target;
    let target: Target = args.target.parse().map_err(anyhow::Error::msg)?;
    let model = MoleculeModelConfig::from_file(&args.model)?;
    anyhow::ensure!(
        args.epochs > 0 && args.batch > 0 && args.valid_molecules > 0,
        "--epochs, --batch and --valid-molecules must be at least 1"
    );
    anyhow::ensure!(
        args.train_molecules != Some(0),
        "--train-molecules must be at least 1"
    );
    anyhow::ensure!(
        args.radius.is_finite() && args.radius > 0.0,
        "--radius must be a positive number of angstrom, not {}",
        args.radius
    );
    let cache = equivar_data::cache_dir(args.data_dir.as_deref());
    equivar_data::qm9::fetch(&cache, false)?;
    let data = equivar_data::qm9::load(&cache)?;
    let split = equivar_data::qm9::standard_split(&data)?;
    let take = |rows: &[usize], n: usize| rows[..n.min(rows.len())].to_vec();
    let train = take(&split.train, args.train_molecules.unwrap_or(usize::MAX));
    let valid = take(&split.valid, args.valid_molecules);
    let config = equivar_train::qm9::Qm9Config {
        target,
        model,
        radius: args.radius,
        batch: args.batch,
        epochs: args.epochs,
        lr: args.lr,
        seed: args.seed,
    };
    let name = args
        .model
        .file_stem()
        .map_or("model".into(), |s| s.to_string_lossy().into_owned());
    let result = segnn_qm9::train_and_test(
        &name,
        &config,
        &args.out,
        &data,
        &train,
        &valid,
        &split.test,
        &burn::tensor::Device::flex(),
    )?;
    println!(
        "{} on {}: test MAE {:.4} {} over {} molecules ({} parameters, invariance error {:.1e}, \
         {:.0} s per epoch); {}/result.json",
        result.model,
        result.target,
        result.test_mae,
        result.unit,
        result.test_molecules,
        result.params,
        result.invariance.max_rel_error,
        result.seconds_per_epoch,
        args.out.display()
    );
    Ok(())
}
