//! Running the `equivar` binary from the integration tests.

use std::process::Command;

/// Runs `equivar` with `args`; returns its exit code, stdout and stderr.
pub fn equivar(args: &[&str]) -> (i32, String, String) {
    equivar_env(args, &[])
}

/// Runs `equivar` with `args` and extra environment variables. The data cache is made
/// hermetic: no `$EQUIVAR_DATA_DIR`, and a default cache that holds nothing, so the embedded
/// subset is the data whatever the machine has fetched.
pub fn equivar_env(args: &[&str], env: &[(&str, &str)]) -> (i32, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_equivar"))
        .args(args)
        .env_remove("EQUIVAR_DATA_DIR")
        .env(
            "XDG_CACHE_HOME",
            std::env::temp_dir().join("equivar-tests-empty-cache"),
        )
        .envs(env.iter().copied())
        .output()
        .expect("run equivar");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// Starts `equivar` with `args` in the background, its output discarded.
#[allow(dead_code)] // not every test binary that shares this module spawns
pub fn spawn(args: &[String]) -> std::process::Child {
    Command::new(env!("CARGO_BIN_EXE_equivar"))
        .args(args)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start equivar")
}

/// Waits until `ready()` holds; fails if `child` ends first or `limit` passes (`what` names
/// the awaited state in the failure).
#[allow(dead_code)]
pub fn wait_for(
    child: &mut std::process::Child,
    limit: std::time::Duration,
    what: &str,
    ready: impl Fn() -> bool,
) {
    let started = std::time::Instant::now();
    while !ready() {
        assert!(started.elapsed() < limit, "{what}: not after {limit:?}");
        assert!(
            child.try_wait().unwrap().is_none(),
            "{what}: the process ended first"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
}
