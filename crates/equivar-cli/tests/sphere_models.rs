//! A user-written description of a 3-conv DISCO classifier (models/disco-small.json) plans,
//! checks, trains one epoch, resumes and evaluates from the command line, through the same
//! commands and training loop as the planar models.

use serde_json::Value;

mod common;
use common::equivar;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models/disco-small.json");

#[test]
fn a_disco_classifier_from_a_file_plans_checks_trains_and_evaluates() {
    let (code, out, err) = equivar(&["plan", "--model", MODEL, "--input-size", "16", "--json"]);
    assert_eq!(code, 0, "{err}");
    let plan: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(plan["domain"], "sphere");
    assert_eq!(plan["polar_steps"], 8);
    assert_eq!(plan["output_size"], 1);

    let (code, out, err) = equivar(&["check", "--model", MODEL, "--input-size", "16", "--json"]);
    assert_eq!(code, 0, "{err}");
    let report: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["elements"].as_array().unwrap().len(), 7);
    assert!(report["max_rel_error"].as_f64().unwrap() <= 1e-5, "{out}");

    let dir = tempfile::tempdir().unwrap();
    let run = dir.path().join("run");
    let run = run.to_str().unwrap();
    let train = |epochs: &str| {
        equivar(&[
            "train",
            "--model",
            MODEL,
            "--input-size",
            "16",
            "--epochs",
            epochs,
            "--batch-size",
            "32",
            "--lr",
            "0.003",
            "--regime",
            "uniform",
            "--train-limit",
            "512",
            "--out",
            run,
            "--quiet",
        ])
    };
    let (code, _, err) = train("1");
    assert_eq!(code, 0, "{err}");
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("run/config.json")).unwrap())
            .unwrap();
    assert_eq!(config["spec"]["domain"], "sphere");

    // The run resumes from its recorded description, not from the file.
    let (code, _, err) = equivar(&[
        "train",
        "--resume",
        "--out",
        run,
        "--epochs",
        "2",
        "--override",
        "--quiet",
    ]);
    assert_eq!(code, 0, "{err}");
    let metrics: Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("run/metrics.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(metrics.as_array().unwrap().len(), 2);

    let (code, out, err) = equivar(&["eval", "--run", run, "--test-limit", "100", "--json"]);
    assert_eq!(code, 0, "{err}");
    let eval: Value = serde_json::from_str(&out).unwrap();
    let accuracy = eval["accuracy"].as_array().unwrap();
    assert_eq!(accuracy.len(), 36);
    assert!(
        accuracy
            .iter()
            .all(|a| (0.0..=100.0).contains(&a.as_f64().unwrap()))
    );

    // Sphere models have no frozen or plain-burn lowering; planar-only flags and layers are
    // refused with the layer named.
    let (code, _, err) = equivar(&["plan", "--model", MODEL, "--input-size", "18"]);
    assert_eq!(code, 2);
    assert!(
        err.contains("disco3") && err.contains("downsample"),
        "{err}"
    );
}
