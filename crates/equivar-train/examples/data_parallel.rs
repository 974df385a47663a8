//! Training an equivar model with burn-train's `Learner` on several devices (README "Scaling
//! out"): data parallel with burn's `ExecutionStrategy::MultiDevice`, the optimizer on the
//! first device. On the embedded MNIST subset by default:
//!
//! ```text
//! cargo run --release -p equivar-train --example data_parallel -- --devices cpu,cpu
//! cargo run --release -p equivar-train --features equivar/cuda --example data_parallel -- \
//!     --devices cuda:0,cuda:1 --images 60000 --epochs 5
//! ```
//!
//! The run is burn-train's, not `equivar train`'s: no exact resumption, NaN stop or per-epoch
//! batch-norm recalibration (see `equivar_train::data_parallel`). Batch norm is recalibrated
//! once at the end, then the test set is scored at the four quarter turns.

use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result, bail};
use burn::optim::AdamConfig;
use burn::train::metric::{AccuracyMetric, LossMetric};
use burn::train::{
    ExecutionStrategy, Learner, MultiDeviceOptim, SupervisedTraining, TrainingStrategy,
};
use clap::Parser;
use equivar::device::parse_device;
use equivar_data::{DataLocation, Dataset, Split};
use equivar_train::data_parallel::{BarRenderer, Classifier, LoaderOptions, digit_loader};
use equivar_train::eval::rotation_curve;
use equivar_train::examples::{Examples, examples};
use equivar_train::trainer::{build_net, recalibrate_batch_norm};
use equivar_train::{Regime, TrainConfig};

#[derive(Parser)]
struct Args {
    /// A registry model (`equivar models`).
    #[arg(long, default_value = "abusing-p4")]
    model: String,
    #[arg(long, default_value_t = 28)]
    input_size: usize,
    /// Comma-separated devices, the first one holds the optimizer: cpu,cpu or cuda:0,cuda:1.
    #[arg(long, default_value = "cpu,cpu")]
    devices: String,
    /// Training images (the embedded subset has 10,000; more needs `equivar data fetch`).
    #[arg(long, default_value_t = 10_000)]
    images: usize,
    #[arg(long, default_value_t = 1)]
    epochs: usize,
    /// Per device: a step takes this many images from each device.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    #[arg(long, default_value_t = 1e-3)]
    lr: f64,
    /// burn-train's logs and metrics.
    #[arg(long, default_value = "target/data-parallel")]
    out: PathBuf,
}

fn main() -> Result<()> {
    let args = Args::parse();
    let devices = args
        .devices
        .split(',')
        .map(|name| parse_device(name.trim()).with_context(|| format!("--devices {name}")))
        .collect::<Result<Vec<_>>>()?;
    if args.epochs == 0 {
        bail!("--epochs must be at least 1");
    }
    if args.batch_size == 0 || args.images < args.batch_size * devices.len() {
        bail!(
            "--images {} must give every one of the {} devices at least one batch of \
             --batch-size {} (and the batch size must be positive)",
            args.images,
            devices.len(),
            args.batch_size
        );
    }
    let config = TrainConfig {
        lr: args.lr,
        batch_size: args.batch_size,
        ..TrainConfig::paper(&args.model, args.input_size)
    };
    let location = DataLocation::resolve(None);
    let (train_data, source) = equivar_data::load(Dataset::Mnist, Split::Train, &location)?;
    let (test_data, _) = equivar_data::load(Dataset::Mnist, Split::Test, &location)?;
    let main = devices[0].clone().autodiff();
    main.seed(config.seed);
    let net = build_net(&config, &main)?.materialize_params();
    println!(
        "{} at {}: {} parameters, on {:?}, {} training images from {source:?}",
        args.model,
        args.input_size,
        net.trainable_params(),
        devices,
        args.images
    );
    let train: Arc<dyn Examples> = examples(
        net.spec.domain,
        &train_data,
        args.input_size,
        Some(args.images),
    )?
    .into();
    let test = examples(net.spec.domain, &test_data, args.input_size, Some(1000))?;

    let test: Arc<dyn Examples> = test.into();
    let loader = |examples: &Arc<dyn Examples>, regime: Regime, shuffle: Option<u64>| {
        let options = LoaderOptions {
            batch_size: args.batch_size,
            shuffle,
            seed: config.seed,
        };
        digit_loader(examples.clone(), regime, options)
    };
    let strategy =
        ExecutionStrategy::MultiDevice(devices.clone(), MultiDeviceOptim::OptimMainDevice);
    let learner = Learner::new(Classifier::new(net), AdamConfig::new().init(), args.lr);
    let result = SupervisedTraining::new(
        &args.out,
        loader(&train, config.regime, Some(config.seed)),
        loader(&test, Regime::Upright, None),
    )
    .renderer(Box::new(BarRenderer::default()))
    .summary()
    .with_training_strategy(TrainingStrategy::from(strategy))
    .metric_train_numeric(LossMetric::new())
    .metric_valid_numeric(AccuracyMetric::new())
    .num_epochs(args.epochs)
    .launch(learner);
    if let Some(error) = result.error {
        bail!("training failed: {error}");
    }

    // The workers' running statistics are not the population's: recompute them, as
    // `equivar train` does after an epoch.
    let net = result.model.net;
    recalibrate_batch_norm(&net, &*train, &config, args.epochs - 1, &devices[0])?;
    let curve = rotation_curve(
        &net,
        &*test,
        &[0.0, 90.0, 180.0, 270.0],
        &args.model,
        &devices[0],
        false,
    )?;
    println!(
        "test accuracy (1,000 images) at 0/90/180/270 degrees: {:?}",
        curve.accuracy
    );
    Ok(())
}
