//! `check --lie`: the local equivariance error at the command line.

use serde_json::Value;

mod common;
use common::equivar;

#[test]
fn check_lie_prints_the_lee_per_transformation_and_layer() {
    let dir = tempfile::tempdir().unwrap();
    let stem = dir.path().join("lee");
    let (code, stdout, stderr) = equivar(&[
        "check",
        "--lie",
        "rotation,translation,saturation",
        "--model",
        "abusing-p4",
        "--input-size",
        "21",
        "--images",
        "6",
        "--json",
        "--plot",
        stem.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{stderr}");
    let report: Value = serde_json::from_str(&stdout).unwrap();
    let transforms = report["transforms"].as_array().unwrap();
    let names: Vec<&str> = transforms
        .iter()
        .map(|t| t["transform"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["rotation", "translation_x", "translation_y", "saturation"]
    );
    for t in transforms {
        assert!(t["lee"].as_f64().unwrap() > 0.0, "{t}");
    }
    let rotation = &transforms[0];
    assert_eq!(rotation["layers"].as_array().unwrap().len(), 25);
    assert!(rotation["layers_sum"].as_f64() >= rotation["lee"].as_f64());
    assert!(transforms[3].get("layers").is_none());
    assert_eq!(report["images"], 6);
    for ext in ["png", "svg"] {
        assert!(stem.with_extension(ext).is_file(), "{ext}");
    }
}

#[test]
fn bad_lie_input_gives_clear_errors() {
    let base = ["check", "--model", "abusing-p4", "--input-size", "21"];
    let cases: [(&[&str], &str); 5] = [
        (&["--lie", "twirl"], "unknown transformation `twirl`"),
        (
            &["--lie", "rotation", "--images", "0"],
            "--images must be in 1..=10000",
        ),
        (&["--images", "5"], "--images applies to --lie"),
        (
            &["--lie", "rotation", "--grids", "32x64"],
            "does not apply to --lie",
        ),
        (
            &["--lie", "saturation", "--plot", "/tmp/x"],
            "no per-layer values to plot",
        ),
    ];
    for (extra, expected) in cases {
        let args: Vec<&str> = base.iter().chain(extra).copied().collect();
        let (code, _, stderr) = equivar(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(expected), "{args:?}: {stderr}");
    }
    let (code, _, stderr) = equivar(&[
        "check",
        "--lie",
        "rotation",
        "--model",
        "spherical-cnn",
        "--input-size",
        "64",
        "--images",
        "1",
    ]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("needs a model on the plane"), "{stderr}");
    let (code, _, stderr) = equivar(&["check", "--lie", "rotation", "--run", "/nonexistent/run"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}
