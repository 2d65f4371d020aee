//! Running the `patchmix` binary from CLI tests: raw output, a run that must succeed, and a
//! run that must fail with one `error: …` line. Included with `#[path]` by the tests that use
//! all of it (`common/mod.rs` is shared more widely).

use std::path::Path;
use std::process::{Command, Output};

/// Runs `patchmix ARGS`.
pub fn patchmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .args(args)
        .output()
        .expect("failed to run patchmix")
}

/// Runs a command that must succeed; returns stdout.
pub fn ok(args: &[&str]) -> String {
    let out = patchmix(args);
    assert!(
        out.status.success(),
        "patchmix {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs a command that must fail with one `error: ...` line on stderr, no panic and nothing on
/// stdout; returns the line.
pub fn error_line(args: &[&str]) -> String {
    let out = patchmix(args);
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(
        !out.status.success(),
        "patchmix {args:?} should fail; stderr: {stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert!(
        out.stdout.is_empty(),
        "nothing on stdout on error: {:?}",
        String::from_utf8_lossy(&out.stdout)
    );
    let line = stderr.trim_end();
    assert_eq!(line.lines().count(), 1, "one-line error expected: {line}");
    assert!(line.starts_with("error: "), "{line}");
    line.to_string()
}

/// A path as a command-line argument.
pub fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}
