//! Running the `equivar` binary from the integration tests.

use std::process::Command;

/// Runs `equivar` with `args`; returns its exit code, stdout and stderr.
pub fn equivar(args: &[&str]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_equivar"))
        .args(args)
        .output()
        .expect("run equivar");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
