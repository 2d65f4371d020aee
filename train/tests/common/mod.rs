//! Helpers shared by the integration tests that run the `patchmix` binary.

use std::process::Command;

/// Runs `patchmix ARGS` and returns (success, stdout, stderr).
pub fn patchmix(args: &[&str]) -> (bool, String, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .args(args)
        .output()
        .expect("run patchmix");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}
