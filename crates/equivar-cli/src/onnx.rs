//! `plan --onnx` and `check --onnx`: the audit of models written by other frameworks.

use std::path::Path;

use anyhow::{Context, Result, bail};
use equivar_onnx::{OnnxModel, OnnxPlan};

use crate::CheckArgs;

/// The flags `check --onnx` takes; the others (sphere grids, burn devices and kernels) do not
/// apply to a graph that tract runs on the CPU.
const CHECK_FLAGS: [&str; 6] = ["onnx", "group", "input_size", "batch", "seed", "json"];

pub(crate) fn plan(file: &Path, input_size: Option<usize>, json: bool) -> Result<()> {
    let model = OnnxModel::open(file)?;
    let plan = OnnxPlan::new(&model, input_size)?;
    if json {
        println!("{}", serde_json::to_string_pretty(&plan)?);
    } else {
        print!("{plan}");
    }
    Ok(())
}

pub(crate) fn check(file: &Path, args: &CheckArgs, given: &[String]) -> Result<()> {
    if let Some(flag) = given.iter().find(|g| !CHECK_FLAGS.contains(&g.as_str())) {
        bail!(
            "`{flag}` does not apply to --onnx: the graph runs on the CPU with tract, checked \
             with --group, --input-size, --batch and --seed"
        );
    }
    let Some(group) = &args.group else {
        bail!(
            "--group is required with --onnx: the symmetry the model should be invariant to, \
             c4 (quarter turns) or d4 (quarter turns and mirrors)"
        );
    };
    let group = group
        .parse()
        .with_context(|| format!("--group `{group}`: use c4 or d4 (also c1, c2, d1, d2)"))?;
    let model = OnnxModel::open(file)?;
    let report = equivar_onnx::check(&model, group, args.input_size, args.batch, args.seed)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print!("{report}");
    }
    Ok(())
}
