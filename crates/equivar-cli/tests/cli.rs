//! The CLI's JSON contract and error behaviour.

use serde_json::Value;

mod common;
use common::equivar;

fn json(args: &[&str]) -> Value {
    let (code, stdout, stderr) = equivar(args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("valid JSON")
}

#[test]
fn plan_json_reports_exactness_and_nearest_sizes() {
    let exact = json(&[
        "plan",
        "--model",
        "abusing-p4",
        "--input-size",
        "28",
        "--json",
    ]);
    assert_eq!(exact["exact"], true);
    let approx = json(&[
        "plan",
        "--model",
        "abusing-p4m",
        "--input-size",
        "29",
        "--json",
    ]);
    assert_eq!(approx["exact"], false);
    assert_eq!(approx["nearest_exact_sizes"], serde_json::json!([28, 30]));
    let layers = approx["layers"].as_array().unwrap();
    let pool = layers.iter().find(|l| l["name"] == "pool1").unwrap();
    assert_eq!(
        (pool["in_size"].as_u64(), pool["out_size"].as_u64()),
        (Some(29), Some(14))
    );
    assert_eq!(pool["exact"], false);
    assert!(
        layers
            .iter()
            .filter(|l| l["name"] != "pool1")
            .all(|l| l["exact"] == true)
    );
    // The repair: pool1's 2x2 window becomes 3x3 (stride 2), its output still 14.
    let repair = &approx["repairs"]["windows"][0];
    assert_eq!(repair["layer"], "pool1");
    assert_eq!(repair["repaired"]["kernel"], 3);
    assert_eq!(repair["repaired_out_size"], 14);
    assert!(exact.get("repairs").is_none());
}

#[test]
fn check_json_measures_what_the_plan_says() {
    let exact = json(&[
        "check",
        "--model",
        "abusing-p4",
        "--input-size",
        "28",
        "--seed",
        "1",
        "--json",
    ]);
    assert_eq!(exact["exact_by_plan"], true);
    assert!(exact["max_rel_error"].as_f64().unwrap() <= 1e-5);
    let approx = json(&[
        "check",
        "--model",
        "abusing-p4",
        "--input-size",
        "27",
        "--seed",
        "1",
        "--json",
    ]);
    assert_eq!(approx["exact_by_plan"], false);
    assert!(approx["max_rel_error"].as_f64().unwrap() >= 1e-3);
    for layer in approx["layers"].as_array().unwrap() {
        assert!(layer["rel_error"].is_number());
    }
}

#[test]
fn bad_input_gives_a_clear_error() {
    let (code, _, stderr) = equivar(&["plan", "--model", "resnet9000", "--input-size", "28"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("unknown model") && stderr.contains("abusing-p4"),
        "{stderr}"
    );
    let (code, _, stderr) = equivar(&["plan", "--model", "abusing-p4", "--input-size", "3"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("too small") && stderr.contains("at least"),
        "{stderr}"
    );
}

fn model_file(name: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    path.to_str().unwrap().to_string()
}

#[test]
fn models_json_prints_the_committed_model_file() {
    for name in ["hnet", "abusing-c8", "e2-d16c16"] {
        let printed = json(&["models", "--json", name]);
        let committed: Value = serde_json::from_str(
            &std::fs::read_to_string(model_file(&format!("{name}.json"))).unwrap(),
        )
        .unwrap();
        assert_eq!(printed, committed, "{name}");
    }
    let (code, _, stderr) = equivar(&["models", "--json", "nope"]);
    assert_ne!(code, 0);
    assert!(
        stderr.contains("unknown model `nope`") && stderr.contains("hnet"),
        "{stderr}"
    );
}

#[test]
fn a_model_file_plans_like_its_registry_name() {
    let file = model_file("abusing-p4.json");
    let by_file = json(&["plan", "--model", &file, "--input-size", "29", "--json"]);
    let by_name = json(&[
        "plan",
        "--model",
        "abusing-p4",
        "--input-size",
        "29",
        "--json",
    ]);
    assert_eq!(by_file, by_name);
    let (code, _, stderr) = equivar(&["plan", "--model", "models/nope.json", "--input-size", "28"]);
    assert_eq!(code, 2);
    assert!(
        stderr.contains("models/nope.json") && stderr.contains("cannot read"),
        "{stderr}"
    );
}

/// A description file trains and evaluates; the run keeps the description, so changing the
/// file afterwards changes nothing.
#[test]
fn a_model_file_trains_and_evaluates_from_its_run() {
    let root = tempfile::tempdir().unwrap();
    let file = root.path().join("mine.toml");
    std::fs::copy(model_file("small-d4.toml"), &file).unwrap();
    let run = root.path().join("run");
    let (file_s, run_s) = (file.to_str().unwrap(), run.to_str().unwrap());
    let (code, _, stderr) = equivar(&[
        "train",
        "--model",
        file_s,
        "--epochs",
        "1",
        "--train-limit",
        "256",
        "--batch-size",
        "64",
        "--bn-recalibration",
        "64",
        "--out",
        run_s,
        "--quiet",
    ]);
    assert_eq!(code, 0, "{stderr}");
    std::fs::write(&file, "name = \"something else\"").unwrap();
    let v = json(&["eval", "--run", run_s, "--test-limit", "50", "--json"]);
    assert_eq!(v["accuracy"].as_array().unwrap().len(), 36);
    let config: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("config.json")).unwrap()).unwrap();
    assert_eq!(config["spec"]["name"], "small-d4");
}
