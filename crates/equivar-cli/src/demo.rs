//! `equivar demo`: the lesson of Using and Abusing Equivariance in about 90 seconds, on the
//! embedded MNIST subset: plan and measure at 27, 28 and 29 pixels, then train the model
//! upright at 28 (exact) and 29 (approximate) and test both on quarter-turned digits.

use anyhow::Result;
use equivar::models;
use equivar::plan::Plan;
use equivar_data::Split;
use equivar_train::eval::rotation_curve;
use equivar_train::images::PreparedImages;
use equivar_train::trainer::{self, Compute, TrainOptions};
use equivar_train::{Regime, TrainConfig};

const TRAIN_IMAGES: usize = 4_000;
const EPOCHS: usize = 2;
const TEST_IMAGES: usize = 1_000;
/// The demo trains into `$TMPDIR/equivar-demo-PID` and removes it at the end.
const SCRATCH_PREFIX: &str = "equivar-demo-";

/// The demo's scratch directory, removed however the demo ends (but a kill).
struct Scratch(std::path::PathBuf);

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Removes the scratch directories of demos that were killed (their process is gone). Only
/// where `/proc` tells which processes live (Linux); elsewhere they are left alone.
fn remove_stale_scratch() {
    if !std::path::Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let Some(pid) = name.strip_prefix(SCRATCH_PREFIX) else {
            continue;
        };
        if pid.parse::<u32>().is_ok() && !std::path::Path::new("/proc").join(pid).exists() {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

pub fn run(model: &str, compute: Compute) -> Result<()> {
    models::spec(model)?; // an unknown model is refused before anything is printed
    println!(
        "Using and Abusing Equivariance: the same network at three input sizes.\n\
         A stride-2 layer is exactly equivariant only if its sampling grid is symmetric about \
         the image centre.\n"
    );
    let width = model.len().max(12);
    println!(
        "{:<width$} {:>5} {:>12} {:>20}  first inexact layer",
        "model", "size", "plan", "rel error at init"
    );
    for n in [27, 28, 29] {
        let plan = Plan::new(&models::spec(model)?, n)?;
        let report = crate::run_check(model, n, 0, 4, &compute)?;
        let first = plan.first_inexact().map_or("-".to_string(), |l| {
            format!("{} ({}x{})", l.name, l.in_size, l.in_size)
        });
        println!(
            "{:<width$} {:>5} {:>12} {:>20.3e}  {first}",
            model,
            n,
            if plan.exact { "exact" } else { "approximate" },
            report.max_rel_error
        );
    }

    // The plan's word for the two training sizes, planned once.
    let spec = models::spec(model)?;
    let verdict_at = |n: usize| -> Result<&'static str> {
        Ok(if Plan::new(&spec, n)?.exact {
            "exact"
        } else {
            "approximate"
        })
    };
    let verdicts = [verdict_at(28)?, verdict_at(29)?];
    println!(
        "\nTraining {model} upright on {TRAIN_IMAGES} MNIST digits at 28 ({}) and 29 ({}), \
         {EPOCHS} epochs each (250 Adam steps), then testing {TEST_IMAGES} digits turned by \
         0/90/180/270 degrees:",
        verdicts[0], verdicts[1]
    );
    let device = compute.device.clone();
    remove_stale_scratch();
    let scratch =
        Scratch(std::env::temp_dir().join(format!("{SCRATCH_PREFIX}{}", std::process::id())));
    let mut rows = Vec::new();
    for n in [28, 29] {
        let config = TrainConfig {
            epochs: EPOCHS,
            batch_size: 32,
            lr_step: 1,
            train_limit: Some(TRAIN_IMAGES),
            regime: Regime::Upright,
            allow_approximate: true,
            ..TrainConfig::paper(model, n)
        };
        let dir = scratch.0.join(format!("{model}-{n}"));
        let outcome = trainer::train(
            &config,
            &dir,
            TrainOptions {
                progress: true,
                compute: compute.clone(),
            },
        )?;
        let (data, source) = trainer::load_split(&config, Split::Test)?;
        if n == 28 {
            println!("data: {source}");
        }
        let test = PreparedImages::new(&data, n, Some(TEST_IMAGES))?;
        let curve = rotation_curve(
            &outcome.net,
            &test,
            &[0.0, 90.0, 180.0, 270.0],
            model,
            &device,
            true,
        )?;
        rows.push((n, curve));
    }
    drop(scratch);
    println!(
        "\n{:>5} {:>12} {:>8} {:>8} {:>8} {:>8} {:>8}",
        "size", "plan", "0", "90", "180", "270", "spread"
    );
    for ((n, curve), verdict) in rows.iter().zip(verdicts) {
        print!("{n:>5} {verdict:>12}");
        for a in &curve.accuracy {
            print!(" {a:>7.1}%");
        }
        println!(" {:>7.1}", curve.quarter_turn_spread().unwrap_or(f64::NAN));
    }
    let lesson = match verdicts {
        ["exact", "exact"] => {
            "Exact at both sizes, the model gives the same accuracy at every \
                               quarter turn at both."
        }
        _ => {
            "The exact model gives the same accuracy at every quarter turn; the approximate one \
              does not."
        }
    };
    println!(
        "\n{lesson}\nMeasured on {}, {} threads: trained accuracies differ slightly between CPUs \
         (floating-point rounding in the kernels); the exact model's equality across quarter \
         turns does not.\n\
         Next: equivar plan --model {model} --input-size 29\n      \
         equivar reproduce using-abusing --quick --out runs/using-abusing",
        equivar_train::bench::cpu_description(),
        std::thread::available_parallelism().map_or(1, |n| n.get())
    );
    Ok(())
}
