//! `check --lie`: the local equivariance error of a model, end to end and per layer, on a
//! trained run's test images or on random images at initialisation.

use std::time::Instant;

use anyhow::{Result, bail};
use burn::tensor::{Distribution, Tensor};
use equivar::check::lie::{LieTransform, lie_report};
use equivar::models;
use equivar::plan::Exactness;
use equivar_data::Split;
use equivar_train::images::PreparedImages;
use equivar_train::trainer::{self, DataChoice, load_run_at};

use crate::CheckArgs;

/// The most images one `check --lie` takes.
const MAX_IMAGES: usize = 10_000;

/// The flags `check --lie` takes.
const LIE_FLAGS: [&str; 9] = [
    "lie",
    "model",
    "input_size",
    "run",
    "images",
    "seed",
    "json",
    "plot",
    "device",
];

pub(crate) fn check(transforms: &str, args: &CheckArgs, given: &[String]) -> Result<()> {
    if let Some(flag) = given.iter().find(|g| !LIE_FLAGS.contains(&g.as_str())) {
        bail!(
            "`{flag}` does not apply to --lie, which takes --model and --input-size (or --run), \
             --images, --seed, --json and --plot"
        );
    }
    let transforms = LieTransform::parse_list(transforms)?;
    anyhow::ensure!(
        (1..=MAX_IMAGES).contains(&args.images),
        "--images must be in 1..={MAX_IMAGES}, got {}",
        args.images
    );
    let compute = args.compute.compute()?;
    let device = compute.device.clone();
    let start = Instant::now();
    let (net, x, source) = match &args.run {
        Some(dir) => {
            if args.model.is_some() {
                bail!("--model and --run both name the model; give one (the run records its own)");
            }
            // Another --input-size measures the run's weights at that size: the same
            // function, so a change in the LEE is the size's, not the training's.
            let (net, config) = load_run_at(dir, &compute, args.input_size)?;
            let choice = DataChoice {
                dir: None,
                allow_other: false,
            };
            let (data, source) = trainer::load_data(&config, Split::Test, &choice)?;
            let test = PreparedImages::new(&data, config.input_size, Some(args.images))?;
            let indices: Vec<usize> = (0..test.len()).collect();
            let (x, _) = test.batch(&indices, &vec![0.0; indices.len()], &device);
            (
                net,
                x,
                format!(
                    "{} test images of {source} at {}",
                    indices.len(),
                    config.input_size
                ),
            )
        }
        None => {
            let model = args
                .model
                .as_deref()
                .expect("clap requires --model or --run");
            let Some(n) = args.input_size else {
                bail!("--input-size is required for --lie with --model (or give a trained --run)");
            };
            let spec = models::spec(model)?;
            device.seed(args.seed);
            let net = spec
                .init(n, Exactness::AllowApproximate, &device)?
                .with_kernels(compute.kernels);
            let channels = net.plan.input_type.channels();
            let x = Tensor::random(
                [args.images, channels, n, n],
                Distribution::Normal(0.0, 1.0),
                &device,
            );
            (
                net,
                x,
                format!(
                    "{} random normal images, weights at initialisation (seed {})",
                    args.images, args.seed
                ),
            )
        }
    };
    let report = lie_report(&net, &x, &transforms)?;
    let seconds = start.elapsed().as_secs_f64();
    let plot = match &args.plot {
        Some(stem) => Some(equivar_train::lie_plot::lie_layers(&report, stem)?),
        None => None,
    };
    if args.json {
        let mut value = serde_json::to_value(&report)?;
        value["images_from"] = source.into();
        value["seconds"] = seconds.into();
        if let Some([png, svg]) = plot {
            value["plot"] = serde_json::json!({"png": png, "svg": svg});
        }
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        print!("{report}");
        println!("images: {source}; {seconds:.1} s");
        if let Some([png, svg]) = plot {
            println!("plot: {} and {}", png.display(), svg.display());
        }
    }
    Ok(())
}
