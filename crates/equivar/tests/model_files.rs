//! Models from files: the committed descriptions under `models/` are what the registry builds
//! (or plan as written), and a damaged description is an error naming the layer.

use std::path::PathBuf;

use equivar::models;
use equivar::plan::Plan;

fn model_file(name: &str) -> String {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../models")
        .join(name);
    path.to_str().unwrap().to_string()
}

#[test]
fn the_committed_json_is_the_registry_model() {
    let from_file = models::spec(&model_file("abusing-p4.json")).unwrap();
    assert_eq!(from_file, models::spec("abusing-p4").unwrap());
    for n in [27, 28, 29] {
        assert_eq!(
            Plan::new(&from_file, n).unwrap(),
            Plan::new(&models::spec("abusing-p4").unwrap(), n).unwrap()
        );
    }
}

/// The models of the steerable issue, and abusing-p4, are committed as model files (written
/// by `equivar models --json NAME`) that read back as the registry's models.
#[test]
fn the_committed_model_files_are_the_registry_models() {
    for name in [
        "abusing-p4",
        "abusing-c8",
        "e2-c8",
        "e2-c16",
        "e2-d16c16",
        "hnet",
    ] {
        let from_file = models::spec(&model_file(&format!("{name}.json")))
            .unwrap_or_else(|e| panic!("models/{name}.json: {e}"));
        assert_eq!(from_file, models::spec(name).unwrap(), "models/{name}.json");
    }
}

#[test]
fn the_toml_example_plans_and_builds() {
    let spec = models::spec(&model_file("small-d4.toml")).unwrap();
    assert_eq!(spec.name, "small-d4");
    let plan = Plan::new(&spec, 28).unwrap();
    assert!(plan.exact);
    assert_eq!(plan.output_type.channels(), 10);
    assert!(!Plan::new(&spec, 29).unwrap().exact);
}

fn error_of(text: &str, extension: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(format!("m.{extension}"));
    std::fs::write(&path, text).unwrap();
    match models::spec(path.to_str().unwrap()) {
        Ok(spec) => match Plan::new(&spec, 28) {
            Ok(_) => panic!("accepted: {text}"),
            Err(e) => e.to_string(),
        },
        Err(e) => e.to_string(),
    }
}

#[test]
fn damaged_descriptions_are_errors_naming_the_layer() {
    let input = r#""input": {"group": "C4", "fields": 1, "repr": "trivial"}"#;
    let relu = r#"{"name": "act", "kind": "activation", "function": "relu"}"#;
    let cases = [
        // an unknown layer kind
        (
            format!(r#"{{"name": "m", {input}, "layers": [{relu}, {{"name": "up", "kind": "teleport"}}]}}"#),
            vec!["layer 2 `up`", "teleport", "lifting_conv"],
        ),
        // a bad group string in the input type
        (
            r#"{"name": "m", "input": {"group": "C0", "fields": 1, "repr": "trivial"}, "layers": []}"#.to_string(),
            vec!["`input`", "C0"],
        ),
        // a missing field of a layer
        (
            format!(r#"{{"name": "m", {input}, "layers": [{{"name": "c", "kind": "group_conv", "out_fields": 2}}]}}"#),
            vec!["layer 1 `c`", "window"],
        ),
        // a type mismatch between layers: a group conv on the trivial input
        (
            format!(r#"{{"name": "m", {input}, "layers": [{{"name": "g", "kind": "group_conv", "out_fields": 2, "window": {{"kernel": 3, "stride": 1, "padding": 1, "dilation": 1}}, "bias": true}}]}}"#),
            vec!["`g`", "regular"],
        ),
        (format!(r#"{{"name": "m", {input}, "layers": [{relu}, {relu}]}}"#), vec!["layer 2 `act`", "unique"]),
        (format!(r#"{{"name": "m", {input}, "layer": []}}"#), vec!["unknown key `layer`"]),
        ("{ not json".to_string(), vec!["not valid JSON"]),
    ];
    for (text, needles) in cases {
        let err = error_of(&text, "json");
        for needle in needles {
            assert!(err.contains(needle), "`{needle}` not in: {err}");
        }
    }
    let err = error_of("name = 3", "toml");
    assert!(err.contains("`name`"), "{err}");
    let err = models::spec("no/such/model.json").unwrap_err().to_string();
    assert!(err.contains("cannot read"), "{err}");
}
