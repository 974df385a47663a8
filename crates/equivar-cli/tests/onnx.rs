//! `plan --onnx` and `check --onnx` on files written by PyTorch and escnn.

use serde_json::Value;

mod common;
use common::equivar;

fn fixture(name: &str) -> String {
    format!(
        "{}/../equivar-onnx/tests/fixtures/{name}",
        env!("CARGO_MANIFEST_DIR")
    )
}

fn json(args: &[&str]) -> Value {
    let (code, stdout, stderr) = equivar(args);
    assert_eq!(code, 0, "{stderr}");
    serde_json::from_str(&stdout).expect("valid JSON")
}

#[test]
fn plan_onnx_names_the_layers_that_break_exactness() {
    let exact = json(&["plan", "--onnx", &fixture("torch-p4-28.onnx"), "--json"]);
    assert_eq!(
        (exact["exact"].as_bool(), exact["input_size"].as_u64()),
        (Some(true), Some(28))
    );
    let inexact = json(&["plan", "--onnx", &fixture("resnet-32.onnx"), "--json"]);
    assert_eq!(inexact["exact"], false);
    assert_eq!(inexact["nearest_exact_sizes"], serde_json::json!([29, 33]));
    let broken: Vec<&str> = inexact["layers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|l| l["exact"] == false)
        .map(|l| l["node"].as_str().unwrap())
        .collect();
    assert_eq!(broken.len(), 4, "{broken:?}");
    assert!(
        broken.iter().all(|n| n.starts_with("/stages/stages.")),
        "{broken:?}"
    );
    // At another size than the export's, by --input-size.
    let (code, stdout, stderr) = equivar(&[
        "plan",
        "--onnx",
        &fixture("resnet-32.onnx"),
        "--input-size",
        "33",
    ]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("exact at 33"), "{stdout}");
}

#[test]
fn check_onnx_measures_the_invariance_error() {
    let exact = json(&[
        "check",
        "--onnx",
        &fixture("escnn-p4-28.onnx"),
        "--group",
        "c4",
        "--json",
    ]);
    assert!(exact["max_rel_error"].as_f64().unwrap() < 1e-5, "{exact}");
    assert_eq!(exact["errors"].as_array().unwrap().len(), 3);
    let inexact = json(&[
        "check",
        "--onnx",
        &fixture("escnn-p4-29.onnx"),
        "--group",
        "d4",
        "--batch",
        "2",
        "--seed",
        "3",
        "--json",
    ]);
    assert!(
        inexact["max_rel_error"].as_f64().unwrap() > 1e-3,
        "{inexact}"
    );
    assert_eq!(inexact["errors"].as_array().unwrap().len(), 7);
    assert_eq!(
        (inexact["images"].as_u64(), inexact["seed"].as_u64()),
        (Some(2), Some(3))
    );
}

#[test]
fn bad_onnx_input_gives_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let cut = dir.path().join("cut.onnx");
    let bytes = std::fs::read(fixture("resnet-33.onnx")).unwrap();
    std::fs::write(&cut, &bytes[..bytes.len() / 3]).unwrap();
    let cut = cut.to_str().unwrap();
    let file = fixture("resnet-33.onnx");
    let cases: [(&[&str], &str); 6] = [
        (&["plan", "--onnx", cut], "truncated or corrupt"),
        (
            &["check", "--onnx", cut, "--group", "c4"],
            "truncated or corrupt",
        ),
        (
            &["check", "--onnx", &file],
            "--group is required with --onnx",
        ),
        (
            &["check", "--onnx", &file, "--group", "c8"],
            "does not map the pixel grid",
        ),
        (
            &["check", "--onnx", &file, "--group", "c4", "--device", "cpu"],
            "--device does not apply to --onnx",
        ),
        (
            &[
                "check",
                "--model",
                "abusing-p4",
                "--input-size",
                "28",
                "--group",
                "c4",
            ],
            "--group applies to --onnx",
        ),
    ];
    for (args, expected) in cases {
        let (code, _, stderr) = equivar(args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{stderr}");
    }
    let (code, _, stderr) = equivar(&["plan", "--model", "abusing-p4"]);
    assert_eq!(code, 2);
    assert!(stderr.contains("--input-size is required"), "{stderr}");
}
