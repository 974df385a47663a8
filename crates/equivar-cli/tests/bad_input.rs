//! Bad input, through the binary, one test per class: wrong numbers, damaged data, damaged or
//! shared run directories. None may end in a panic, an abort, a hang or exit code 0 with a
//! meaningless result; every error names the problem and the fix.

use std::path::Path;
use std::time::Duration;

use serde_json::Value;

mod common;
use common::{equivar, equivar_env, spawn, wait_for};

/// Asserts a clean refusal: exit code 2 (ours or clap's usage error), no panic, and every one
/// of `needles` in the message.
fn assert_refused(args: &[&str], needles: &[&str]) -> String {
    let (code, stdout, stderr) = equivar(args);
    assert_refusal(args, code, &stdout, &stderr, needles)
}

fn assert_refusal(
    args: &[&str],
    code: i32,
    stdout: &str,
    stderr: &str,
    needles: &[&str],
) -> String {
    assert_eq!(
        code, 2,
        "{args:?} exited with {code}\nstdout: {stdout}\nstderr: {stderr}"
    );
    assert!(
        !stderr.contains("panicked") && !stderr.contains("RUST_BACKTRACE"),
        "{args:?} panicked: {stderr}"
    );
    assert!(stderr.starts_with("error"), "{args:?}: {stderr}");
    for needle in needles {
        assert!(
            stderr.contains(needle),
            "{args:?}: `{needle}` not in: {stderr}"
        );
    }
    stderr.to_string()
}

#[test]
fn numeric_flags_out_of_range_are_refused_naming_the_flag_and_range() {
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    let run = run.to_str().unwrap();
    let cases: &[(&[&str], &[&str])] = &[
        (
            &["check", "--model", "disco-s2", "--grids", "2x4"],
            &["--grids", "2x4", "8..="],
        ),
        (
            &["check", "--model", "disco-s2", "--grids", ""],
            &["--grids", "empty"],
        ),
        (
            &["check", "--model", "disco-s2", "--grids", "64"],
            &["NLATxNLON"],
        ),
        (
            &["check", "--model", "disco-s2", "--rotations", "0"],
            &["--rotations", "1..=100"],
        ),
        (
            &["check", "--model", "disco-s2", "--input-size", "28"],
            &["--grids"],
        ),
        (
            &[
                "check",
                "--model",
                "abusing-p4",
                "--input-size",
                "28",
                "--batch",
                "0",
            ],
            &["--batch", "1..="],
        ),
        (
            &[
                "check",
                "--model",
                "abusing-p4",
                "--input-size",
                "28",
                "--grids",
                "8x16",
            ],
            &["--grids", "sphere"],
        ),
        (&["check", "--model", "abusing-p4"], &["--input-size"]),
        (
            &["check", "--model", "abusing-p4", "--input-size", "0"],
            &["too small"],
        ),
        (
            &["plan", "--model", "abusing-p4", "--input-size", "0"],
            &["too small"],
        ),
        (
            &["bench", "--models", "", "--no-layers", "--disco", "2x4"],
            &["--disco", "8..="],
        ),
        (
            &[
                "bench",
                "--models",
                "",
                "--no-layers",
                "--disco",
                "16x32",
                "--disco-batch",
                "0",
            ],
            &["--disco-batch", "1..="],
        ),
        (
            &[
                "bench",
                "--models",
                "",
                "--no-layers",
                "--disco",
                "16x32",
                "--disco-channels",
                "0",
            ],
            &["--disco-channels", "1..="],
        ),
        (&["bench", "--repeats", "0"], &["--repeats", "1..="]),
        (
            &["bench", "--models", "", "--no-layers"],
            &["nothing to benchmark"],
        ),
        (
            &[
                "plan",
                "--model",
                "abusing-p4",
                "--input-size",
                "1000000000000",
            ],
            &["largest"],
        ),
        (&["demo", "--model", "resnet"], &["unknown model"]),
        (
            &["data", "fetch", "mnist", "--data-dir", "/dev/null"],
            &["/dev/null"],
        ),
        (
            &["bench", "--models", "resnet"],
            &["unknown model", "abusing-p4"],
        ),
        (&["bench", "--kernels", "fast"], &["fast", "equivar"]),
        (
            &["train", "--out", run, "--lr-gamma", "NaN"],
            &["--lr-gamma", "(0, 1]"],
        ),
        (&["train", "--out", run, "--lr", "0"], &["--lr", "positive"]),
        (&["train", "--out", run, "--lr", "inf"], &["--lr"]),
        (
            &["train", "--out", run, "--epochs", "0"],
            &["--epochs", "1..="],
        ),
        (
            &["train", "--out", run, "--batch-size", "0"],
            &["--batch-size", "1..="],
        ),
        (
            &["train", "--out", run, "--weight-decay", "-1"],
            &["--weight-decay", "[0, 1]"],
        ),
        (&["train", "--out", run, "--lr-step", "0"], &["--lr-step"]),
        (
            &["train", "--out", run, "--train-limit", "0"],
            &["--train-limit"],
        ),
        (
            &["train", "--out", run, "--regime", "gaussian:-3"],
            &["sigma", ">= 0"],
        ),
        (
            &["train", "--out", run, "--dataset", "cifar"],
            &["cifar", "mnist"],
        ),
        (
            &["train", "--out", run, "--override"],
            &["--override", "--resume"],
        ),
        (
            &["eval", "--run", run, "--test-limit", "0"],
            &["--test-limit", "at least 1"],
        ),
        (
            &["reproduce", "sideways", "--out", run],
            &["sideways", "using-abusing"],
        ),
    ];
    for (args, needles) in cases {
        assert_refused(args, needles);
    }
    // Nothing was written by any of the refused trainings.
    assert!(!Path::new(run).exists(), "a refused `train` created {run}");
}

/// Sizes and batches whose memory cannot exist are refused before any allocation (no abort,
/// no out-of-memory killer).
#[test]
fn impossible_memory_needs_are_refused_up_front() {
    let err = assert_refused(
        &["check", "--model", "abusing-p4", "--input-size", "100000"],
        &["GB", "--input-size"],
    );
    assert!(err.contains("100000x100000"), "{err}");
    let out = tempfile::tempdir().unwrap();
    let run = out.path().join("run");
    assert_refused(
        &[
            "train",
            "--model",
            "abusing-z2",
            "--input-size",
            "20000",
            "--allow-approximate",
            "--out",
            run.to_str().unwrap(),
        ],
        &["GB", "--input-size"],
    );
    assert!(!run.join("config.json").exists());
}

/// A cache with the four MNIST files at their exact sizes and valid IDX headers, but other
/// pixels and labels: what a same-size corruption looks like to a size check.
fn same_size_mnist(cache: &Path) {
    let dir = cache.join("mnist");
    std::fs::create_dir_all(&dir).unwrap();
    for (name, dims, size) in [
        (
            "train-images-idx3-ubyte",
            &[60_000u32, 28, 28][..],
            47_040_016u64,
        ),
        ("train-labels-idx1-ubyte", &[60_000][..], 60_008),
        ("t10k-images-idx3-ubyte", &[10_000, 28, 28][..], 7_840_016),
        ("t10k-labels-idx1-ubyte", &[10_000][..], 10_008),
    ] {
        let mut header = vec![0, 0, 8, dims.len() as u8];
        for d in dims {
            header.extend(d.to_be_bytes());
        }
        let path = dir.join(name);
        std::fs::write(&path, header).unwrap();
        std::fs::OpenOptions::new()
            .write(true)
            .open(&path)
            .unwrap()
            .set_len(size)
            .unwrap();
    }
}

#[test]
fn damaged_or_missing_data_is_an_error_never_a_fallback() {
    let root = tempfile::tempdir().unwrap();
    let cache = root.path().join("cache");
    let run = root.path().join("run");
    let (cache_s, run_s) = (cache.to_str().unwrap(), run.to_str().unwrap());
    let train = |extra: &[&'static str]| -> Vec<&str> {
        let mut args = vec![
            "train",
            "--model",
            "abusing-z2",
            "--epochs",
            "1",
            "--out",
            run_s,
        ];
        args.extend(extra);
        args
    };
    // A named directory without the data: no silent fallback to the embedded subset.
    let mut args = train(&[]);
    args.extend(["--data-dir", cache_s]);
    assert_refused(&args, &[cache_s, "--data-dir", "equivar data fetch mnist"]);
    let (code, stdout, stderr) = equivar_env(&train(&[]), &[("EQUIVAR_DATA_DIR", cache_s)]);
    assert_refusal(
        &["EQUIVAR_DATA_DIR=.."],
        code,
        &stdout,
        &stderr,
        &["$EQUIVAR_DATA_DIR"],
    );
    // Same sizes, other contents: refused by SHA-256, naming the file and the fix.
    same_size_mnist(&cache);
    assert_refused(
        &args,
        &[
            "train-images-idx3-ubyte",
            "SHA-256",
            "equivar data fetch mnist --data-dir",
            "--force",
        ],
    );
    assert!(!run.exists(), "a refused `train` wrote {run_s}");
}

fn small_run(out: &str, epochs: &str, images: &str) -> Vec<String> {
    [
        "train",
        "--model",
        "abusing-z2",
        "--epochs",
        epochs,
        "--batch-size",
        "32",
        "--lr-step",
        "1",
        "--train-limit",
        images,
        "--bn-recalibration",
        "64",
        "--seed",
        "3",
        "--out",
        out,
        "--quiet",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn run_ok(args: &[String]) -> String {
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = equivar(&args);
    assert_eq!(code, 0, "{args:?}: {stderr}");
    stdout
}

fn read_json(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// One finished run, shared by the run-directory tests below (each works on its own copy).
fn trained_run(root: &Path) -> std::path::PathBuf {
    let run = root.join("trained");
    run_ok(&small_run(run.to_str().unwrap(), "1", "128"));
    run
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap().flatten() {
        std::fs::copy(entry.path(), to.join(entry.file_name())).unwrap();
    }
}

#[test]
fn run_directories_are_never_mixed_or_loaded_damaged() {
    let root = tempfile::tempdir().unwrap();
    let trained = trained_run(root.path());
    let config = read_json(&trained.join("config.json"));
    // The run records the data it used: the embedded subset, with its digest.
    assert_eq!(config["data"]["dataset"], "mnist");
    assert_eq!(config["data"]["dir"], Value::Null);
    assert_eq!(config["data"]["sha256"].as_str().unwrap().len(), 64);

    // --resume with flags that differ from the run: an error listing each difference.
    let copy = root.path().join("differ");
    copy_dir(&trained, &copy);
    let copy_s = copy.to_str().unwrap();
    let err = assert_refused(
        &[
            "train", "--resume", "--out", copy_s, "--epochs", "3", "--lr", "0.5",
        ],
        &["--epochs 1 -> 3", "--lr 0.01 -> 0.5", "--override"],
    );
    assert!(err.contains("differ"), "{err}");
    // The same values as the run are not differences.
    let same = run_ok(
        &[
            "train", "--resume", "--out", copy_s, "--epochs", "1", "--quiet",
        ]
        .map(String::from),
    );
    assert!(same.contains("resuming"), "{same}");
    // --override continues with them and records the change; --model cannot change.
    assert_refused(
        &[
            "train",
            "--resume",
            "--override",
            "--out",
            copy_s,
            "--model",
            "abusing-p4",
        ],
        &["--model", "cannot change"],
    );
    let stdout = run_ok(
        &[
            "train",
            "--resume",
            "--override",
            "--out",
            copy_s,
            "--epochs",
            "2",
            "--quiet",
        ]
        .map(String::from),
    );
    assert!(stdout.contains("--epochs 1 -> 2"), "{stdout}");
    let amended = read_json(&copy.join("config.json"));
    assert_eq!(amended["epochs"], 2);
    assert_eq!(amended["amendments"][0], "after epoch 1: --epochs 1 -> 2");
    assert_eq!(read_json(&copy.join("checkpoint.json"))["epochs_done"], 2);

    // Checkpoint files with bytes flipped in the middle: refused before loading.
    for file in ["model-e001.bpk", "optimizer-e001.bpk"] {
        let copy = root.path().join(format!("flipped-{file}"));
        copy_dir(&trained, &copy);
        let path = copy.join(file);
        let mut bytes = std::fs::read(&path).unwrap();
        let middle = bytes.len() / 2;
        bytes[middle] ^= 0xff;
        std::fs::write(&path, bytes).unwrap();
        let copy_s = copy.to_str().unwrap();
        assert_refused(
            &["eval", "--run", copy_s, "--test-limit", "10"],
            &[file, "damaged", "SHA-256"],
        );
        assert_refused(&["train", "--resume", "--out", copy_s], &[file, "damaged"]);
    }

    // A directory with checkpoints but no config: refused, not reused.
    let orphan = root.path().join("orphan");
    copy_dir(&trained, &orphan);
    std::fs::remove_file(orphan.join("config.json")).unwrap();
    let orphan_s = orphan.to_str().unwrap();
    assert_refused(
        &["train", "--model", "abusing-z2", "--out", orphan_s],
        &["no config.json", "checkpoint.json", "another --out"],
    );
    // --resume of a directory that does not exist creates nothing.
    let missing = root.path().join("missing");
    assert_refused(
        &["train", "--resume", "--out", missing.to_str().unwrap()],
        &["not a training run directory"],
    );
    assert!(!missing.exists());

    // A killed write's temporary file is removed (and reported) by the next writer.
    let debris = root.path().join("debris");
    copy_dir(&trained, &debris);
    std::fs::write(debris.join(".model-e002.bpk.tmp-999999"), b"half").unwrap();
    let stdout = run_ok(
        &[
            "train",
            "--resume",
            "--out",
            debris.to_str().unwrap(),
            "--quiet",
        ]
        .map(String::from),
    );
    assert!(stdout.contains(".model-e002.bpk.tmp-999999"), "{stdout}");
    assert!(!debris.join(".model-e002.bpk.tmp-999999").exists());
}

#[test]
fn eval_uses_the_runs_data_and_refuses_other_data_unless_told() {
    let root = tempfile::tempdir().unwrap();
    let trained = trained_run(root.path());
    let run_s = trained.to_str().unwrap();
    // Another shell's $EQUIVAR_DATA_DIR does not change the data of a recorded run.
    let (code, stdout, stderr) = equivar_env(
        &["eval", "--run", run_s, "--test-limit", "20", "--json"],
        &[(
            "EQUIVAR_DATA_DIR",
            root.path().join("elsewhere").to_str().unwrap(),
        )],
    );
    assert_eq!(code, 0, "{stderr}");
    let v: Value = serde_json::from_str(&stdout).unwrap();
    assert!(
        v["runs"][0]["data"].as_str().unwrap().contains("embedded"),
        "{v}"
    );
    assert_eq!(v["test_images"], 20);
    // An explicit --data-dir without the data is an error.
    let empty = root.path().join("empty");
    assert_refused(
        &[
            "eval",
            "--run",
            run_s,
            "--data-dir",
            empty.to_str().unwrap(),
        ],
        &["--data-dir"],
    );
    // The data changed since training (here: its recorded digest): refused unless told.
    let config_path = trained.join("config.json");
    let mut config = read_json(&config_path);
    config["data"]["sha256"] = Value::from("0".repeat(64));
    std::fs::write(&config_path, serde_json::to_string_pretty(&config).unwrap()).unwrap();
    assert_refused(
        &["eval", "--run", run_s, "--test-limit", "20"],
        &["the run trained on", "--allow-other-data"],
    );
    let (code, _, stderr) = equivar(&[
        "eval",
        "--run",
        run_s,
        "--test-limit",
        "20",
        "--allow-other-data",
        "--json",
    ]);
    assert_eq!(code, 0, "{stderr}");
}

/// Two `train` into one `--out`: the second is refused, naming the first's process; the first
/// finishes intact.
#[test]
fn a_second_writer_is_refused_and_the_first_run_is_intact() {
    let root = tempfile::tempdir().unwrap();
    let out = root.path().join("shared");
    let out_s = out.to_str().unwrap();
    let mut first = spawn(&small_run(out_s, "2", "512"));
    wait_for(
        &mut first,
        Duration::from_secs(120),
        "the first run's config",
        || out.join("config.json").exists(),
    );
    let args = small_run(out_s, "2", "512");
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = equivar(&args);
    let holder = format!("process {}", first.id());
    assert_refusal(&args, code, &stdout, &stderr, &["in use", &holder]);
    let resume = ["train", "--resume", "--out", out_s];
    let (code, stdout, stderr) = equivar(&resume);
    assert_refusal(&resume, code, &stdout, &stderr, &["in use", &holder]);
    let status = first.wait().unwrap();
    assert!(status.success(), "the first run failed");
    let metrics = read_json(&out.join("metrics.json"));
    assert_eq!(metrics.as_array().unwrap().len(), 2);
    assert_eq!(read_json(&out.join("checkpoint.json"))["epochs_done"], 2);
    // Only the first run's files, and no temporary leftovers.
    for entry in std::fs::read_dir(&out).unwrap().flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(!name.contains(".tmp-"), "leftover {name}");
    }
}

/// Every flag of every command has a description in `--help`.
#[test]
fn help_describes_every_flag() {
    for command in [
        &["plan"][..],
        &["check"],
        &["demo"],
        &["data", "fetch"],
        &["train"],
        &["eval"],
        &["bench"],
        &["reproduce"],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let (code, stdout, _) = equivar(&args);
        assert_eq!(code, 0);
        let lines: Vec<&str> = stdout.lines().collect();
        for (i, line) in lines.iter().enumerate() {
            let trimmed = line.trim_start();
            let is_entry = ["--", "-h", "-V", "<"]
                .iter()
                .any(|p| trimmed.starts_with(p));
            if !is_entry {
                continue;
            }
            // `--flag <VALUE>  Description` on one line, or the description on the next,
            // indented further.
            let described = trimmed.contains("  ")
                || lines.get(i + 1).is_some_and(|next| {
                    next.len() - next.trim_start().len() > line.len() - trimmed.len()
                });
            assert!(
                described,
                "`equivar {}`: `{}` has no description",
                command.join(" "),
                trimmed
            );
        }
    }
}

/// `--device` and `--kernels`: an unknown device, a GPU backend this build lacks, a bad index
/// and unknown kernels are refused before any work, naming the value and the choices.
#[test]
fn devices_and_kernels_are_checked_by_name() {
    let check = |extra: &[&str]| {
        let mut args = vec!["check", "--model", "abusing-p4", "--input-size", "28"];
        args.extend_from_slice(extra);
        args.into_iter().map(String::from).collect::<Vec<_>>()
    };
    let refuse = |extra: &[&str], needles: &[&str]| {
        let args = check(extra);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        assert_refused(&args, needles);
    };
    refuse(
        &["--device", "gpu"],
        &["unknown device `gpu`", "cpu (", "cuda ("],
    );
    refuse(&["--device", "cpu:3"], &["one device"]);
    refuse(&["--device", "cuda:x"], &["`x` is not a device index"]);
    if !cfg!(feature = "cuda") {
        refuse(
            &["--device", "cuda:0"],
            &["no cuda backend", "--features cuda"],
        );
    }
    refuse(&["--kernels", "fast"], &["fast", "direct"]);
    // The environment's default is checked the same way.
    let args = check(&[]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let (code, stdout, stderr) = equivar_env(&args, &[("EQUIVAR_KERNELS", "fast")]);
    assert_refusal(&args, code, &stdout, &stderr, &["fast", "EQUIVAR_KERNELS"]);
    // Every valid choice runs, and the exact model stays exact under each.
    for kernels in ["equivar", "direct", "burn"] {
        let args = check(&["--kernels", kernels, "--device", "cpu", "--json"]);
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (code, stdout, stderr) = equivar(&args);
        assert_eq!(code, 0, "{kernels}: {stderr}");
        let report: Value = serde_json::from_str(&stdout).unwrap();
        assert_eq!(
            report["exact_by_plan"],
            Value::Bool(true),
            "{kernels}: {stdout}"
        );
        let error = report["max_rel_error"].as_f64().unwrap();
        assert!(error <= 1e-5, "{kernels}: relative error {error}");
    }
}

#[test]
fn molecular_models_and_batches_are_checked_before_any_work() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("run");
    let out = out.to_str().unwrap();
    let models = concat!(env!("CARGO_MANIFEST_DIR"), "/../../models");
    let model = format!("{models}/segnn-qm9-quick.json");
    assert_refused(
        &["qm9", "--model", &model, "--target", "beta", "--out", out],
        &["unknown QM9 target `beta`", "alpha", "gap"],
    );
    let missing = dir.path().join("none.json");
    assert_refused(
        &[
            "qm9",
            "--model",
            missing.to_str().unwrap(),
            "--target",
            "alpha",
            "--out",
            out,
        ],
        &["cannot read the model file", "none.json"],
    );
    // A planar model file is not a molecular one.
    let planar = format!("{models}/hnet.json");
    assert_refused(
        &["qm9", "--model", &planar, "--target", "alpha", "--out", out],
        &["not a molecular model", "\"kind\""],
    );
    assert_refused(
        &[
            "qm9", "--model", &model, "--target", "alpha", "--out", out, "--epochs", "0",
        ],
        &["--epochs"],
    );
    for flag in ["--valid-molecules", "--train-molecules"] {
        assert_refused(
            &[
                "qm9", "--model", &model, "--target", "alpha", "--out", out, flag, "0",
            ],
            &[flag, "at least 1"],
        );
    }
    let batch = dir.path().join("batch.json");
    std::fs::write(
        &batch,
        r#"{"molecules": [{"z": [6, 1], "pos": [[0, 0, 0]], "alpha": 1}]}"#,
    )
    .unwrap();
    assert_refused(
        &[
            "bench",
            "--models",
            "",
            "--no-layers",
            "--segnn-step",
            batch.to_str().unwrap(),
        ],
        &["2 atomic numbers and 1 positions"],
    );
    std::fs::write(
        &batch,
        r#"{"molecules": [{"z": [17], "pos": [[0, 0, 0]], "alpha": 1}]}"#,
    )
    .unwrap();
    assert_refused(
        &[
            "bench",
            "--models",
            "",
            "--no-layers",
            "--segnn-step",
            batch.to_str().unwrap(),
        ],
        &["atomic number 17"],
    );
    assert!(
        !Path::new(out).exists(),
        "nothing is written for refused input"
    );
}
