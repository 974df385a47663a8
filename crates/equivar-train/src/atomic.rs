//! Atomic file writes: write a temporary file beside the target, flush it to disk, rename it
//! over the target. A reader (or a resumed run) sees the old file or the new one, never half.

use std::fs;
use std::io::Write;
use std::path::Path;

use anyhow::{Context, Result};

pub fn write(path: &Path, bytes: &[u8]) -> Result<()> {
    let dir = path.parent().unwrap_or(Path::new("."));
    fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let result = (|| -> std::io::Result<()> {
        let mut file = fs::File::create(&tmp)?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result.with_context(|| format!("cannot write {}", path.display()))
}

/// Whether `name` is a temporary file of [`write`] (`.NAME.tmp-PID`): debris if its writer was
/// killed before the rename.
pub fn is_temporary(name: &str) -> bool {
    name.starts_with('.') && name.contains(".tmp-")
}

pub fn write_json(path: &Path, value: &impl serde::Serialize) -> Result<()> {
    let mut text = serde_json::to_string_pretty(value)?;
    text.push('\n');
    write(path, text.as_bytes())
}

/// A study's results: `results.json` (the data) and `results.md` (its table), each atomically.
pub fn write_results(out: &Path, results: &impl serde::Serialize, table: &str) -> Result<()> {
    write_json(&out.join("results.json"), results)?;
    write(&out.join("results.md"), table.as_bytes())
}
