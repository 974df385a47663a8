//! The training loop: Adam with step LR on a reference model, rotated batches per the regime,
//! progress bars, per-epoch atomic checkpoints, resume, and a NaN stop.

use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, Result, bail};
use burn::module::Module;
use burn::nn::loss::CrossEntropyLossConfig;
use burn::optim::decay::WeightDecayConfig;
use burn::optim::{AdamConfig, GradientsParams, ModuleOptimizer};
use burn::store::ModuleRecord;
use burn::tensor::{Device, Tensor};
use equivar::nn::Net;
use equivar::ops::Kernels;
use equivar::plan::{Exactness, Plan};
use equivar_data::{DataLocation, Dataset, LabelledImages, Source, Split};
use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use crate::config::TrainConfig;
use crate::examples::{Examples, examples};
use crate::run_dir::{CheckpointState, EpochMetrics, RunDir};

/// Where a model computes and with which implementation of its heavy ops: choices of the
/// machine, not of the run (a run resumed elsewhere may choose differently).
#[derive(Clone, Debug)]
pub struct Compute {
    /// burn's Flex CPU backend by default (see `equivar::device` for the others).
    pub device: Device,
    pub kernels: Kernels,
}

impl Default for Compute {
    fn default() -> Self {
        Compute {
            device: Device::flex(),
            kernels: Kernels::default(),
        }
    }
}

/// How a run reports itself and where it computes.
#[derive(Clone, Debug, Default)]
pub struct TrainOptions {
    /// Draw progress bars (on stderr, when it is a terminal).
    pub progress: bool,
    pub compute: Compute,
}

/// A finished (or already complete) run.
pub struct TrainOutcome {
    /// The trained model in evaluation mode, on the plain device.
    pub net: Net,
    pub metrics: Vec<EpochMetrics>,
    pub source: Source,
    /// Epochs already done when this call started (0 for a fresh run).
    pub resumed_from: usize,
    /// Temporary files of killed writes that were removed from the run directory.
    pub removed_debris: Vec<PathBuf>,
}

/// Seeds derived per purpose and epoch, so that a resumed run draws what the uninterrupted
/// run would have drawn.
fn epoch_rng(seed: u64, epoch: usize) -> StdRng {
    StdRng::seed_from_u64(seed ^ (epoch as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15))
}

pub fn build_net(config: &TrainConfig, device: &Device) -> Result<Net> {
    let spec = config.net_spec()?;
    let exactness = if config.allow_approximate {
        Exactness::AllowApproximate
    } else {
        Exactness::Require
    };
    Ok(spec.init(config.input_size, exactness, device)?)
}

fn optimizer(config: &TrainConfig) -> ModuleOptimizer {
    // PyTorch's Adam defaults (eps 1e-8, L2 weight decay added to the gradient), as the paper.
    AdamConfig::new()
        .with_epsilon(1e-8)
        .with_weight_decay(
            (config.weight_decay > 0.0).then(|| WeightDecayConfig::new(config.weight_decay as f32)),
        )
        .init()
}

/// Which data a command asks for, on top of what a run recorded.
#[derive(Clone, Debug, Default)]
pub struct DataChoice {
    /// `--data-dir`: overrides the run's recorded directory.
    pub dir: Option<PathBuf>,
    /// Use data other than the run recorded (another digest) instead of refusing it.
    pub allow_other: bool,
}

/// Where `config`'s data is: `choice.dir` if given; else the data the run recorded; else (a
/// run not started yet, or written before runs recorded their data) `config.data_dir`, then
/// `$EQUIVAR_DATA_DIR`, then the default cache.
pub fn data_location(config: &TrainConfig, choice: &DataChoice) -> DataLocation {
    match (&choice.dir, &config.data) {
        (Some(dir), _) => DataLocation::resolve(Some(dir)),
        (None, Some(identity)) => DataLocation::of(identity),
        (None, None) => DataLocation::resolve(config.data_dir.as_deref()),
    }
}

/// Loads a split of `config`'s data set (see [`data_location`]) and checks it is the data the
/// run recorded (unless `choice.allow_other`).
pub fn load_data(
    config: &TrainConfig,
    split: Split,
    choice: &DataChoice,
) -> Result<(LabelledImages, Source)> {
    let dataset: Dataset = config.dataset.parse().map_err(anyhow::Error::msg)?;
    let (data, source) = equivar_data::load(dataset, split, &data_location(config, choice))?;
    if let Some(recorded) = &config.data {
        let found = source.identity(dataset);
        if !recorded.same_data(&found) && !choice.allow_other {
            bail!(
                "the run trained on {recorded}, but this would use {found}; set `data_dir` \
                 to the cache the run used (or leave it unset), or allow other data \
                 (`allow_other_data`) to use this data anyway"
            );
        }
    }
    Ok((data, source))
}

/// Loads a split for a config that recorded no data yet, or the one it recorded.
pub fn load_split(config: &TrainConfig, split: Split) -> Result<(LabelledImages, Source)> {
    load_data(config, split, &DataChoice::default())
}

/// Memory a training run needs (its images at the input size and a training step's
/// activations and gradients), refused before loading if the machine cannot hold it.
pub fn ensure_memory(config: &TrainConfig, images: usize, batch: usize) -> Result<()> {
    let spec = config.net_spec()?;
    let plan = Plan::new(&spec, config.input_size)?;
    let [h, w] = plan.input_shape();
    let needed = 4.0 * images as f64 * spec.domain.points(config.input_size)
        + 3.0 * plan.forward_bytes(batch);
    equivar::memory::ensure_fits(
        &format!(
            "`{}` at {h}x{w} on {images} images in batches of {batch}",
            config.model
        ),
        needed,
        "use a smaller `input_size`, `batch_size` or `train_limit` / `test_limit`",
    )?;
    Ok(())
}

/// Starts a fresh run in `dir` (which must not hold a run yet). Returns with the run's lock
/// released.
pub fn train(config: &TrainConfig, dir: &Path, options: TrainOptions) -> Result<TrainOutcome> {
    config.validate()?;
    // The description is read once (a model file could change between reads) and recorded.
    let config = &TrainConfig {
        spec: Some(config.net_spec()?),
        ..config.clone()
    };
    let run = RunDir::new(dir);
    let already = || {
        anyhow::anyhow!(
            "{} already holds a run; `resume` it, or choose another `out` (run directory)",
            dir.display()
        )
    };
    if run.holds_run() {
        // A run being written says so, with its process.
        let _probe = run.lock()?;
        return Err(already());
    }
    let orphaned = run.orphaned_files();
    if !orphaned.is_empty() {
        bail!(
            "{} holds files of a run ({}) but no config.json, so what they belong to is \
             unknown; move them away or choose another `out` (run directory)",
            dir.display(),
            orphaned.join(", ")
        );
    }
    // Build and load first: a model that is not exact at this size, missing or damaged data,
    // or a run too big for the machine is refused before the directory is touched.
    build_net(config, &Device::flex())?;
    let (data, source) = load_data(config, Split::Train, &DataChoice::default())?;
    let images = config.train_limit.map_or(data.len(), |l| l.min(data.len()));
    ensure_memory(config, images, config.batch_size)?;
    let _lock = run.lock()?;
    let removed = run.remove_debris()?;
    // Again under the lock: another process may have started a run here meanwhile.
    if run.holds_run() {
        return Err(already());
    }
    let dataset: Dataset = config.dataset.parse().map_err(anyhow::Error::msg)?;
    let config = TrainConfig {
        data: Some(source.identity(dataset)),
        ..config.clone()
    };
    run.write_config(&config)?;
    let mut outcome = run_epochs(&config, &run, options, (data, source), Resumed::fresh())?;
    outcome.removed_debris = removed;
    Ok(outcome)
}

/// Continues the run in `dir` from its last complete checkpoint. `amend` sees the stored
/// config (read under the run's lock) and returns a changed one to continue with (written
/// back), `None` to keep it, or an error (e.g. flags that differ from the run's).
pub fn resume(
    dir: &Path,
    options: TrainOptions,
    data: &DataChoice,
    amend: impl FnOnce(&TrainConfig, usize) -> Result<Option<TrainConfig>>,
) -> Result<TrainOutcome> {
    let run = RunDir::new(dir);
    if !run.holds_run() {
        // Read before locking, so a mistyped --out is not created.
        run.read_config()?;
    }
    let _lock = run.lock()?;
    let removed = run.remove_debris()?;
    let mut config = run.read_config()?;
    config
        .validate()
        .with_context(|| format!("{} holds a config.json with a bad setting", dir.display()))?;
    // Read (and the checkpoint hashed) once, before anything is amended: a damaged run is
    // refused first.
    let resumed = Resumed {
        checkpoint: run.checkpoint()?,
        metrics: run.read_metrics()?,
    };
    let done = resumed.epochs_done();
    let changed = amend(&config, done)?;
    if let Some(changed) = &changed {
        changed.validate()?;
        config = changed.clone();
    }
    // The data and memory are checked before an amended config is written: a refused resume
    // changes nothing.
    let loaded = load_data(&config, Split::Train, data)?;
    let images = config
        .train_limit
        .map_or(loaded.0.len(), |l| l.min(loaded.0.len()));
    ensure_memory(&config, images, config.batch_size)?;
    if changed.is_some() {
        run.write_config(&config)?;
    }
    let mut outcome = run_epochs(&config, &run, options, loaded, resumed)?;
    outcome.removed_debris = removed;
    Ok(outcome)
}

/// Where a run starts: its last checkpoint (if any) and the metrics written so far.
struct Resumed {
    checkpoint: Option<CheckpointState>,
    metrics: Vec<EpochMetrics>,
}

impl Resumed {
    fn fresh() -> Self {
        Resumed {
            checkpoint: None,
            metrics: Vec::new(),
        }
    }

    fn epochs_done(&self) -> usize {
        self.checkpoint.as_ref().map_or(0, |c| c.epochs_done)
    }
}

/// Trains the epochs after `resumed` (memory and data checked by the caller).
fn run_epochs(
    config: &TrainConfig,
    run: &RunDir,
    options: TrainOptions,
    data: (LabelledImages, Source),
    resumed: Resumed,
) -> Result<TrainOutcome> {
    let device = options.compute.device.clone();
    device.seed(config.seed);
    let ad = device.clone().autodiff();
    ad.seed(config.seed);
    let mut net = build_net(config, &ad)?.with_kernels(options.compute.kernels);
    let mut optim = optimizer(config);
    let Resumed {
        checkpoint,
        mut metrics,
    } = resumed;
    let mut start = 0;
    if let Some(state) = checkpoint {
        net = load_model(net, &run.file(&state.model_file), config)?;
        optim = optim
            .load(run.file(&state.optimizer_file))
            .with_context(|| {
                format!(
                    "cannot load the optimizer state of {}",
                    run.path().display()
                )
            })?;
        start = state.epochs_done;
        metrics.truncate(start);
    }

    let (data, source) = data;
    // Digits on the plane or on the sphere, as the model's domain says.
    let train = examples(
        net.spec.domain,
        &data,
        config.input_size,
        config.train_limit,
    )?;
    let loss_fn = CrossEntropyLossConfig::new().init(&ad);
    let batches_per_epoch = train.len().div_ceil(config.batch_size);

    let bars = MultiProgress::with_draw_target(if options.progress {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    });
    let epoch_bar = bars.add(ProgressBar::new(config.epochs as u64));
    epoch_bar.set_style(style("epochs  {bar:30.cyan/blue} {pos}/{len} {msg}"));
    epoch_bar.set_position(start as u64);
    let batch_bar = bars.add(ProgressBar::new(batches_per_epoch as u64));
    batch_bar.set_style(style(
        "batches {bar:30.green/white} {pos}/{len} {msg} [{elapsed} < {eta}]",
    ));

    for epoch in start..config.epochs {
        let lr = config.lr_at(epoch);
        let mut rng = epoch_rng(config.seed, epoch);
        let mut order: Vec<usize> = (0..train.len()).collect();
        order.shuffle(&mut rng);
        batch_bar.reset();
        let started = Instant::now();
        let (mut loss_sum, mut correct, mut seen) = (0.0, 0usize, 0usize);
        for (step, chunk) in order.chunks(config.batch_size).enumerate() {
            let (x, y) = train.draw(chunk, config.regime, &mut rng, &ad);
            let logits = net.logits(x)?;
            let loss = loss_fn.forward(logits.clone(), y.clone());
            let loss_value = loss.clone().into_scalar::<f64>();
            if !loss_value.is_finite() {
                let kept = if epoch == 0 {
                    "no checkpoint was written yet".to_string()
                } else {
                    format!("the checkpoint after epoch {epoch} is kept")
                };
                bail!(
                    "the loss became {loss_value} at epoch {} step {}; training stopped and {kept} \
                     in {}. Lower `lr` (now {lr}) and start a new run",
                    epoch + 1,
                    step + 1,
                    run.path().display()
                );
            }
            correct += count_correct(logits, y);
            seen += chunk.len();
            loss_sum += loss_value * chunk.len() as f64;
            let grads = GradientsParams::from_grads(loss.backward(), &net);
            net = optim.step(lr, net, grads);
            let rate = seen as f64 / started.elapsed().as_secs_f64();
            batch_bar.set_message(format!(
                "loss {:.4} acc {:.2}% {rate:.0} img/s",
                loss_sum / seen as f64,
                100.0 * correct as f64 / seen as f64
            ));
            batch_bar.inc(1);
        }
        let seconds = started.elapsed().as_secs_f64();
        let m = EpochMetrics {
            epoch: epoch + 1,
            lr,
            train_loss: loss_sum / seen as f64,
            train_accuracy: 100.0 * correct as f64 / seen as f64,
            images_per_second: seen as f64 / seconds,
            seconds,
        };
        epoch_bar.set_message(format!(
            "loss {:.4} acc {:.2}%",
            m.train_loss, m.train_accuracy
        ));
        epoch_bar.inc(1);
        metrics.push(m);
        if config.batch_norm_recalibration > 0 {
            batch_bar.set_message("recalibrating batch norm".to_string());
            recalibrate_batch_norm(&net, train.as_ref(), config, epoch, &device)?;
        }
        // `valid()` first: burn's RunningState (batch-norm statistics) keeps the last update
        // pending until a sync, and a record of the training model would store the statistics
        // of one step earlier. Flags (train/eval) are not part of records.
        let model_bytes = net.valid().into_record().into_bytes()?;
        let optim_bytes = optim.into_bytes()?;
        run.write_metrics(&metrics)?;
        run.save_checkpoint(
            &config.model,
            config.input_size,
            epoch + 1,
            &model_bytes,
            &optim_bytes,
        )?;
    }
    batch_bar.finish_and_clear();
    epoch_bar.finish_and_clear();
    Ok(TrainOutcome {
        net: net.valid(),
        metrics,
        source,
        resumed_from: start,
        removed_debris: Vec::new(),
    })
}

/// Precise batch norm after `epoch`: the running statistics become the population statistics
/// of `config.batch_norm_recalibration` training images (drawn and rotated per the regime with
/// their own seed, so a resumed run recomputes what the uninterrupted one did).
pub fn recalibrate_batch_norm(
    net: &Net,
    train: &dyn Examples,
    config: &TrainConfig,
    epoch: usize,
    device: &Device,
) -> Result<()> {
    let mut rng = epoch_rng(config.seed ^ 0xB47C_4E0B_5EED, epoch);
    let mut order: Vec<usize> = (0..train.len()).collect();
    order.shuffle(&mut rng);
    order.truncate(config.batch_norm_recalibration);
    let batches = order
        .chunks(config.batch_size)
        .map(|chunk| train.draw(chunk, config.regime, &mut rng, device).0);
    net.recalibrate_batch_norm(batches)?;
    Ok(())
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .expect("progress templates are fixed strings")
        .progress_chars("=> ")
}

/// Number of rows whose largest logit is the label.
pub fn count_correct(logits: Tensor<2>, labels: Tensor<1, burn::tensor::Int>) -> usize {
    let [b, _] = logits.dims();
    let predicted = logits.argmax(1).reshape([b]);
    predicted.equal(labels).int().sum().into_scalar::<i64>() as usize
}

/// Loads model parameters into `net`, with a clear error for a checkpoint of another model.
pub fn load_model(net: Net, path: &Path, config: &TrainConfig) -> Result<Net> {
    let record = ModuleRecord::load(path).with_context(|| {
        format!(
            "cannot read the checkpoint {}: truncated or corrupt?",
            path.display()
        )
    })?;
    net.try_load_record(record).map_err(|e| {
        anyhow::anyhow!(
            "the checkpoint {} does not fit the model `{}` at input size {}: {e}. Was it written \
             by another model?",
            path.display(),
            config.model,
            config.input_size
        )
    })
}

/// The model of a run directory, from its last checkpoint, in evaluation mode.
pub fn load_run(dir: &Path, compute: &Compute) -> Result<(Net, TrainConfig)> {
    load_run_at(dir, compute, None)
}

/// [`load_run`], with the model built at `input_size` where given instead of the size it was
/// trained at (and allowed to be inexact there): the weights of a convolutional model with
/// global pooling do not depend on the input size, so the same function can be measured at
/// another size. The returned config carries that size. A model whose parameters depend on
/// the size is refused by [`load_model`] ("does not fit").
pub fn load_run_at(
    dir: &Path,
    compute: &Compute,
    input_size: Option<usize>,
) -> Result<(Net, TrainConfig)> {
    let run = RunDir::new(dir);
    let config = run.read_config()?;
    let state = run.checkpoint()?.with_context(|| {
        format!(
            "{} has no checkpoint yet: train at least one epoch (or `resume` the run)",
            dir.display()
        )
    })?;
    if state.model != config.model || state.input_size != config.input_size {
        bail!(
            "the checkpoint in {} is of `{}` at {}, but config.json says `{}` at {}",
            dir.display(),
            state.model,
            state.input_size,
            config.model,
            config.input_size
        );
    }
    let mut config = config;
    if let Some(n) = input_size.filter(|&n| n != config.input_size) {
        config.input_size = n;
        config.allow_approximate = true;
    }
    let net = load_model(
        build_net(&config, &compute.device)?.with_kernels(compute.kernels),
        &run.file(&state.model_file),
        &config,
    )?;
    Ok((net.valid(), config))
}
