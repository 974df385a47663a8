//! `equivar train`, `--resume` after a kill, and `equivar eval --json`, through the binary.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{equivar, spawn, wait_for};

fn train_args<'a>(out: &'a str, epochs: &'a str) -> Vec<&'a str> {
    vec![
        "train",
        "--model",
        "abusing-z2",
        "--input-size",
        "28",
        "--epochs",
        epochs,
        "--batch-size",
        "32",
        "--lr-step",
        "1",
        "--train-limit",
        "1024",
        "--seed",
        "7",
        "--out",
        out,
        "--quiet",
    ]
}

fn metrics(dir: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(dir.join("metrics.json")).unwrap();
    serde_json::from_str::<Value>(&text)
        .unwrap()
        .as_array()
        .unwrap()
        .clone()
}

fn epochs_done(dir: &Path) -> u64 {
    std::fs::read_to_string(dir.join("checkpoint.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<Value>(&t).ok())
        .and_then(|v| v["epochs_done"].as_u64())
        .unwrap_or(0)
}

/// A run killed (SIGKILL) in the middle of epoch 2 resumes from the checkpoint of epoch 1 and
/// ends exactly where an uninterrupted run with the same seed ends.
#[test]
fn resume_after_kill_matches_an_uninterrupted_run() {
    let root = tempfile::tempdir().unwrap();
    let straight = root.path().join("straight");
    let killed = root.path().join("killed");
    let (code, _, stderr) = equivar(&train_args(straight.to_str().unwrap(), "3"));
    assert_eq!(code, 0, "{stderr}");

    let args: Vec<String> = train_args(killed.to_str().unwrap(), "3")
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut child = spawn(&args);
    wait_for(
        &mut child,
        Duration::from_secs(300),
        "the checkpoint of epoch 1",
        || epochs_done(&killed) >= 1,
    );
    std::thread::sleep(Duration::from_millis(300)); // well into epoch 2
    child.kill().unwrap();
    child.wait().unwrap();
    let done = epochs_done(&killed);
    assert!(done < 3, "the run finished before the kill; make it longer");

    let (code, stdout, stderr) = equivar(&[
        "train",
        "--resume",
        "--out",
        killed.to_str().unwrap(),
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(
        stdout.contains(&format!("resuming {} after epoch {done}", killed.display())),
        "{stdout}"
    );
    let (a, b) = (metrics(&straight), metrics(&killed));
    assert_eq!(a.len(), 3);
    assert_eq!(b.len(), 3);
    for (x, y) in a.iter().zip(&b) {
        let (lx, ly) = (
            x["train_loss"].as_f64().unwrap(),
            y["train_loss"].as_f64().unwrap(),
        );
        assert!(
            (lx - ly).abs() <= 1e-6 * lx.abs(),
            "epoch {}: {lx} vs {ly}",
            x["epoch"]
        );
        assert_eq!(x["train_accuracy"], y["train_accuracy"]);
    }
    // Only the last checkpoint's files are kept.
    assert!(killed.join("model-e003.bpk").exists() && !killed.join("model-e001.bpk").exists());

    // eval --json: 36 angles, accuracy in percent, and a plot.
    let (code, stdout, stderr) = equivar(&[
        "eval",
        "--run",
        killed.to_str().unwrap(),
        "--test-limit",
        "200",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    let angles: Vec<f64> = v["angles"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_f64().unwrap())
        .collect();
    assert_eq!(angles, (0..36).map(|i| 10.0 * i as f64).collect::<Vec<_>>());
    let accuracy = v["accuracy"].as_array().unwrap();
    assert_eq!(accuracy.len(), 36);
    let upright = accuracy[0].as_f64().unwrap();
    assert!(
        (30.0..=100.0).contains(&upright),
        "3 epochs on 1024 digits: {upright}%"
    );
    for ext in ["png", "svg"] {
        let plot = killed.join(format!("accuracy-vs-angle.{ext}"));
        assert!(
            std::fs::metadata(&plot).unwrap().len() > 1000,
            "{}",
            plot.display()
        );
    }

    // The same weights at another input size, labelled with both sizes; a size too small for
    // the model is a clear error.
    let (run, plot) = (killed.to_str().unwrap(), killed.join("at-29"));
    let (code, stdout, stderr) = equivar(&[
        "eval",
        "--run",
        run,
        "--input-size",
        "29",
        "--test-limit",
        "200",
        "--json",
        "--plot",
        plot.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        v["runs"][0]["label"], "abusing-z2-28 (upright) at 29",
        "{v}"
    );
    assert_eq!(v["accuracy"].as_array().unwrap().len(), 36);
    let (code, _, stderr) = equivar(&["eval", "--run", run, "--input-size", "3"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("too small"), "{stderr}");
}

#[test]
fn train_rejects_bad_arguments_clearly() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("run");
    let out = out.to_str().unwrap();
    let (code, _, stderr) = equivar(&[
        "train",
        "--model",
        "abusing-p4",
        "--input-size",
        "29",
        "--out",
        out,
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("--allow-approximate") || stderr.contains("nearest"),
        "{stderr}"
    );
    let (code, _, stderr) = equivar(&["train", "--regime", "sideways", "--out", out]);
    assert_ne!(code, 0);
    assert!(stderr.contains("gaussian:SIGMA"), "{stderr}");
    let (code, _, stderr) = equivar(&[
        "train",
        "--dataset",
        "fashion-mnist",
        "--out",
        out,
        "--data-dir",
        out,
    ]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("equivar data fetch fashion-mnist"),
        "{stderr}"
    );
    let (code, _, stderr) = equivar(&["eval", "--run", out]);
    assert_eq!(code, 2);
    assert!(stderr.contains("not a training run directory"), "{stderr}");
}
