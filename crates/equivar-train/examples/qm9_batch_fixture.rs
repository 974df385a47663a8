//! Writes `bench/qm9-batch-32.json`, the QM9 batch both sides of `bench/compare_e3.sh` time a
//! SEGNN training step on: the first 32 molecules of the standard training split (gdb indices,
//! atomic numbers, positions in angstrom, alpha in bohr^3).
//!
//! `cargo run --release -p equivar-train --example qm9_batch_fixture -- [DATA_DIR] [OUT]`
//! (QM9 fetched first: `equivar data fetch qm9`).

use std::path::PathBuf;

use equivar_data::qm9::{self, Target};
use serde_json::json;

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let cache = equivar_data::cache_dir(args.next().map(PathBuf::from).as_deref());
    let out = args
        .next()
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("bench/qm9-batch-32.json"));
    let data = qm9::load(&cache)?;
    let split = qm9::standard_split(&data)?;
    let molecules: Vec<_> = split.train[..32]
        .iter()
        .map(|&m| {
            let atoms = data.atoms(m);
            json!({
                "gdb": data.index[m],
                "z": atoms.clone().map(|a| data.atomic_numbers[a]).collect::<Vec<_>>(),
                "pos": atoms.map(|a| data.positions[a]).collect::<Vec<_>>(),
                "alpha": data.target(m, Target::Alpha),
            })
        })
        .collect();
    let text = serde_json::to_string(&json!({
        "source": "QM9 (qm9pack 1.0.3): the first 32 molecules of the standard training split",
        "molecules": molecules,
    }))?;
    equivar_train::atomic::write(&out, text.as_bytes())?;
    println!("wrote {}", out.display());
    Ok(())
}
