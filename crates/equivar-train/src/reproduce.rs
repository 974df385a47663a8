//! `equivar reproduce using-abusing`: the MNIST study of Using and Abusing Equivariance
//! (Edixhoven, Lengyel, van Gemert 2023; DESIGN.md 2.1). The same P4 network at 27, 28 and 29
//! pixels (only 28 is exactly equivariant) and its Z2 baseline at 28, trained upright and with
//! uniformly random rotations, evaluated on the test set rotated by 0, 10, ..., 350 degrees.
//!
//! Every run lives in `DIR/runs/<name>`, so an interrupted reproduction continues where it
//! stopped: finished runs are kept, unfinished ones are resumed from their checkpoint.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::Result;
use equivar::plan::Plan;
use equivar_data::Split;
use serde::{Deserialize, Serialize};

use crate::atomic;
use crate::config::TrainConfig;
use crate::eval::{self, RotationCurve, paper_angles, rotation_curve};
use crate::images::PreparedImages;
use crate::plot;
use crate::regime::Regime;
use crate::run_dir::RunDir;
use crate::trainer::{self, TrainOptions, load_run};

/// How much to train and test.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Profile {
    pub name: String,
    pub seeds: Vec<u64>,
    pub epochs: usize,
    pub batch_size: usize,
    pub lr: f64,
    pub weight_decay: f64,
    pub lr_step: usize,
    pub lr_gamma: f64,
    pub train_limit: Option<usize>,
    pub test_limit: Option<usize>,
}

impl Profile {
    /// The paper's settings: 50 epochs, batch 256, Adam 0.01, StepLR(10, 0.5), 10 seeds, the
    /// full training and test sets.
    pub fn full() -> Self {
        Profile {
            name: "full".into(),
            seeds: (0..10).collect(),
            epochs: 50,
            batch_size: 256,
            lr: 0.01,
            weight_decay: 1e-5,
            lr_step: 10,
            lr_gamma: 0.5,
            train_limit: None,
            test_limit: None,
        }
    }

    /// Fits in under an hour on 2 CPU cores: 2 seeds, 8,000 training images (all of the
    /// embedded subset), 8 epochs with the learning rate halved every 2 (the paper's schedule
    /// compressed 5x), batch 64, and the first 1,000 test images at each of the 36 angles.
    pub fn quick() -> Self {
        Profile {
            name: "quick".into(),
            seeds: vec![0, 1],
            epochs: 8,
            batch_size: 64,
            lr: 0.01,
            weight_decay: 1e-5,
            lr_step: 2,
            lr_gamma: 0.5,
            train_limit: Some(8_000),
            test_limit: Some(1_000),
        }
    }
}

/// The paper's table (mean over 10 seeds), for comparison.
pub const PAPER: [(&str, [f64; 4]); 3] = [
    (
        "upright training, accuracy at 0 deg",
        [97.56, 98.61, 98.39, 98.50],
    ),
    (
        "upright training, mean of 36 angles",
        [86.65, 66.34, 66.66, 42.70],
    ),
    (
        "uniform training, mean of 36 angles",
        [96.74, 96.43, 96.47, 89.36],
    ),
];

/// The four networks, in the paper's column order.
pub const NETWORKS: [(&str, usize, &str); 4] = [
    ("abusing-p4", 28, "P4 exact (28)"),
    ("abusing-p4", 27, "P4 approx (27)"),
    ("abusing-p4", 29, "P4 approx (29)"),
    ("abusing-z2", 28, "Z2 (28)"),
];

const REGIMES: [Regime; 2] = [Regime::Upright, Regime::Uniform];

/// One trained and evaluated configuration.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunResult {
    pub model: String,
    pub input_size: usize,
    pub exact: bool,
    pub regime: Regime,
    pub seed: u64,
    pub angles: Vec<f64>,
    pub accuracy: Vec<f64>,
    pub train_seconds: f64,
    pub eval_seconds: f64,
}

#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub study: String,
    pub profile: Profile,
    pub data: String,
    pub runs: Vec<RunResult>,
}

fn run_name(model: &str, n: usize, regime: Regime, seed: u64) -> String {
    format!("{model}-{n}-{regime}-s{seed}")
}

/// Trains and evaluates every configuration (skipping finished ones), then writes
/// `results.json`, `results.md` and the plots into `out`.
pub fn using_abusing(
    profile: &Profile,
    out: &Path,
    data_dir: Option<PathBuf>,
    options: &TrainOptions,
) -> Result<Results> {
    let (_lock, _) = RunDir::new(out).lock_and_clean()?;
    let base = TrainConfig {
        data_dir,
        ..TrainConfig::paper("abusing-p4", 28)
    };
    let (test_data, source) = trainer::load_split(&base, Split::Test)?;
    println!(
        "reproducing Using and Abusing Equivariance (MNIST), profile `{}`: seeds {:?}, {} epochs, \
         batch {}, lr {} halved every {} epoch(s), {} training images, {} test images x 36 angles",
        profile.name,
        profile.seeds,
        profile.epochs,
        profile.batch_size,
        profile.lr,
        profile.lr_step,
        profile
            .train_limit
            .map_or("all".to_string(), |k| k.to_string()),
        profile
            .test_limit
            .map_or(test_data.len(), |k| k.min(test_data.len())),
    );
    println!("data: {source}");
    let total = profile.seeds.len() * REGIMES.len() * NETWORKS.len();
    let mut runs = Vec::new();
    let started = Instant::now();
    for &seed in &profile.seeds {
        for regime in REGIMES {
            for (model, n, _) in NETWORKS {
                let name = run_name(model, n, regime, seed);
                let dir = out.join("runs").join(&name);
                let config = TrainConfig {
                    model: model.to_string(),
                    input_size: n,
                    epochs: profile.epochs,
                    batch_size: profile.batch_size,
                    lr: profile.lr,
                    weight_decay: profile.weight_decay,
                    lr_step: profile.lr_step,
                    lr_gamma: profile.lr_gamma,
                    seed,
                    regime,
                    train_limit: profile.train_limit,
                    allow_approximate: true,
                    ..base.clone()
                };
                let result = run_one(&config, &dir, &test_data, profile.test_limit, options)?;
                println!(
                    "[{:>2}/{total}] {name:<28} acc@0 {:6.2}%  mean36 {:6.2}%  quarter-turn spread {:5.2}  \
                     (train {:.0}s, eval {:.0}s, {:.1} min so far)",
                    runs.len() + 1,
                    result.accuracy[0],
                    mean(&result.accuracy),
                    quarter_spread(&result),
                    result.train_seconds,
                    result.eval_seconds,
                    started.elapsed().as_secs_f64() / 60.0
                );
                runs.push(result);
            }
        }
    }
    let results = Results {
        study: "using-abusing".into(),
        profile: profile.clone(),
        data: source.to_string(),
        runs,
    };
    let table = markdown(&results);
    atomic::write_results(out, &results, &table)?;
    for regime in REGIMES {
        let curves: Vec<RotationCurve> = NETWORKS
            .iter()
            .map(|&(model, n, label)| mean_curve(&results, model, n, regime, label))
            .collect();
        plot::accuracy_vs_angle(
            &curves,
            &format!(
                "MNIST test accuracy under rotation, {regime} training ({} profile)",
                profile.name
            ),
            &out.join(format!("accuracy-{regime}")),
        )?;
    }
    println!("\n{table}");
    println!(
        "wrote {0}/results.json, {0}/results.md, {0}/accuracy-upright.png|svg, {0}/accuracy-uniform.png|svg in {1:.1} min",
        out.display(),
        started.elapsed().as_secs_f64() / 60.0
    );
    Ok(results)
}

/// The run of `config` in `dir`: trained, or resumed (a complete one returns at once) when
/// `dir` already holds a run of the same settings; a run of other settings is refused.
pub(crate) fn train_or_resume(
    config: &TrainConfig,
    dir: &Path,
    options: &TrainOptions,
) -> Result<()> {
    let options = options.clone();
    let run = RunDir::new(dir);
    if !run.holds_run() {
        trainer::train(config, dir, options)?;
        return Ok(());
    }
    // The stored config also records the data and the description the run used.
    let stored = TrainConfig {
        data: None,
        spec: None,
        ..run.read_config()?
    };
    anyhow::ensure!(
        stored == *config,
        "{} holds a run with other settings; remove it or choose another `out` (run directory)",
        dir.display()
    );
    trainer::resume(dir, options, &trainer::DataChoice::default(), |_, _| {
        Ok(None)
    })?;
    Ok(())
}

fn run_one(
    config: &TrainConfig,
    dir: &Path,
    test_data: &equivar_data::LabelledImages,
    test_limit: Option<usize>,
    options: &TrainOptions,
) -> Result<RunResult> {
    let cached = dir.join("rotation.json");
    if let Ok(text) = std::fs::read_to_string(&cached)
        && let Ok(result) = serde_json::from_str::<RunResult>(&text)
    {
        return Ok(result);
    }
    let t = Instant::now();
    train_or_resume(config, dir, options)?;
    let train_seconds = t.elapsed().as_secs_f64();
    let (net, _) = load_run(dir, &options.compute)?;
    let device = &options.compute.device;
    let test = PreparedImages::new(test_data, config.input_size, test_limit)?;
    let t = Instant::now();
    let curve = rotation_curve(
        &net,
        &test,
        &paper_angles(),
        &config.model,
        device,
        options.progress,
    )?;
    let exact = Plan::new(&config.net_spec()?, config.input_size)?.exact;
    let result = RunResult {
        model: config.model.clone(),
        input_size: config.input_size,
        exact,
        regime: config.regime,
        seed: config.seed,
        angles: curve.angles,
        accuracy: curve.accuracy,
        train_seconds,
        eval_seconds: t.elapsed().as_secs_f64(),
    };
    atomic::write_json(&cached, &result)?;
    Ok(result)
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len() as f64
}

/// Mean and sample standard deviation (0 for one value).
pub(crate) fn mean_std(v: &[f64]) -> (f64, f64) {
    let m = mean(v);
    let var = if v.len() > 1 {
        v.iter().map(|x| (x - m).powi(2)).sum::<f64>() / (v.len() - 1) as f64
    } else {
        0.0
    };
    (m, var.sqrt())
}

fn quarter_spread(r: &RunResult) -> f64 {
    eval::quarter_turn_spread(&r.angles, &r.accuracy)
        .expect("runs are measured at the paper's angles")
}

fn select<'a>(
    results: &'a Results,
    model: &'a str,
    n: usize,
    regime: Regime,
) -> impl Iterator<Item = &'a RunResult> {
    results
        .runs
        .iter()
        .filter(move |r| r.model == model && r.input_size == n && r.regime == regime)
}

fn mean_curve(
    results: &Results,
    model: &str,
    n: usize,
    regime: Regime,
    label: &str,
) -> RotationCurve {
    let runs: Vec<&RunResult> = select(results, model, n, regime).collect();
    let angles = paper_angles();
    let accuracy = (0..angles.len())
        .map(|i| mean(&runs.iter().map(|r| r.accuracy[i]).collect::<Vec<_>>()))
        .collect();
    RotationCurve {
        label: label.to_string(),
        angles,
        accuracy,
        test_images: 0,
    }
}

/// The study's metric for one network: accuracy at 0 degrees or the mean over the 36 angles.
fn metric(results: &Results, model: &str, n: usize, regime: Regime, at_zero: bool) -> Vec<f64> {
    select(results, model, n, regime)
        .map(|r| {
            if at_zero {
                r.accuracy[0]
            } else {
                mean(&r.accuracy)
            }
        })
        .collect()
}

/// The header of a results table: one column per network.
fn write_network_header(s: &mut String) {
    let _ = write!(s, "| regime |");
    for (_, _, label) in NETWORKS {
        let _ = write!(s, " {label} |");
    }
    let _ = writeln!(s, "\n|---|---|---|---|---|");
}

/// The paper's table with our numbers (mean +- std over seeds) and the paper's beside them,
/// the quarter-turn spreads, and the acceptance checks.
pub fn markdown(results: &Results) -> String {
    let p = &results.profile;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "## Using and Abusing Equivariance, MNIST: profile `{}`\n\n{} seeds ({:?}), {} epochs, batch {}, \
         Adam lr {} (x{} every {} epochs), weight decay {}, training images: {}, test images: {} \
         at each of 36 angles. Data: {}.\n",
        p.name,
        p.seeds.len(),
        p.seeds,
        p.epochs,
        p.batch_size,
        p.lr,
        p.lr_gamma,
        p.lr_step,
        p.weight_decay,
        p.train_limit.map_or("all 60,000".into(), |k| k.to_string()),
        p.test_limit.map_or("all".into(), |k| k.to_string()),
        results.data
    );
    let _ = writeln!(
        s,
        "Accuracy in percent, mean +- std over seeds; the paper's value (10 seeds, 50 epochs, full data) in brackets.\n"
    );
    write_network_header(&mut s);
    let rows = [
        (Regime::Upright, true),
        (Regime::Upright, false),
        (Regime::Uniform, false),
    ];
    for ((regime, at_zero), (title, paper)) in rows.iter().zip(PAPER) {
        let _ = write!(s, "| {title} |");
        for ((model, n, _), paper) in NETWORKS.iter().zip(paper) {
            let (m, sd) = mean_std(&metric(results, model, *n, *regime, *at_zero));
            let _ = write!(s, " {m:.2} +- {sd:.2} ({paper:.2}) |");
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(
        s,
        "\nQuarter-turn spread (max - min of the accuracies at 0, 90, 180, 270 degrees, points), per seed:\n"
    );
    write_network_header(&mut s);
    for regime in REGIMES {
        let _ = write!(s, "| {regime} |");
        for (model, n, _) in NETWORKS {
            let spreads: Vec<String> = select(results, model, n, regime)
                .map(|r| format!("{:.2}", quarter_spread(r)))
                .collect();
            let _ = write!(s, " {} |", spreads.join(", "));
        }
        let _ = writeln!(s);
    }
    let _ = writeln!(s, "\nChecks:\n");
    for (ok, text) in checks(results) {
        let _ = writeln!(s, "- [{}] {text}", if ok { "x" } else { " " });
    }
    s
}

/// The study's claims, each with whether this reproduction shows it.
pub fn checks(results: &Results) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let exact_spreads: Vec<f64> = REGIMES
        .iter()
        .flat_map(|&r| select(results, "abusing-p4", 28, r).map(quarter_spread))
        .collect();
    out.push((
        exact_spreads.iter().all(|&d| d <= 0.05),
        format!(
            "P4-28 (exact): accuracies at 0/90/180/270 equal within 0.05 points in every run (largest spread {:.2})",
            exact_spreads.iter().cloned().fold(0.0, f64::max)
        ),
    ));
    for n in [27, 29] {
        let spreads: Vec<f64> = select(results, "abusing-p4", n, Regime::Upright)
            .map(quarter_spread)
            .collect();
        out.push((
            spreads.iter().all(|&d| d > 0.05),
            format!(
                "P4-{n} (approximate), upright: the four quarter-turn accuracies differ in every run (smallest spread {:.2})",
                spreads.iter().cloned().fold(f64::MAX, f64::min)
            ),
        ));
    }
    let up = |model, n| mean(&metric(results, model, n, Regime::Upright, false));
    let (p28, p27, p29, z2) = (
        up("abusing-p4", 28),
        up("abusing-p4", 27),
        up("abusing-p4", 29),
        up("abusing-z2", 28),
    );
    out.push((
        p28 - p27.max(p29) >= 10.0,
        format!("upright, mean of 36 angles: P4-28 {p28:.2} beats P4-27 {p27:.2} and P4-29 {p29:.2} by >= 10 points"),
    ));
    out.push((
        p28 - z2 >= 20.0,
        format!("upright, mean of 36 angles: P4-28 {p28:.2} beats Z2 {z2:.2} by >= 20 points"),
    ));
    let uni = |model, n| mean(&metric(results, model, n, Regime::Uniform, false));
    let z2u = uni("abusing-z2", 28);
    let p4u = [27, 28, 29].map(|n| uni("abusing-p4", n));
    out.push((
        p4u.iter().all(|&v| v > z2u),
        format!(
            "uniform, mean of 36 angles: every P4 ({:.2} / {:.2} / {:.2} at 27 / 28 / 29) beats Z2 {z2u:.2}",
            p4u[0], p4u[1], p4u[2]
        ),
    ));
    out
}
