//! Builds the C static library (feature `ffi`), compiles `tests/c/smoke.c` against
//! `include/patchmix.h` with the system C compiler (`$CC`, default `cc`), runs it and checks
//! every line it prints against the Rust API. This makes "embed in other runtimes" a tested fact.
//!
//! The library is built with `cargo rustc --crate-type staticlib` into `<target>/c-abi`, where
//! `<target>` is `$CARGO_TARGET_DIR` or the workspace's `target/`. A missing C compiler is a
//! test failure with a clear message, never a silent skip.

use patchmix_core::{
    ImageShape, LabelSpec, MixGeometry, apply_nchw, cosine_schedule, fill_inverse,
    fill_mix_to_mix_targets, fill_mix_to_origin_targets, fill_origin_targets, fill_permutation,
    fill_source, momentum_schedule, temperature_schedule,
};
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("core/ has a parent directory")
        .to_path_buf()
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) if !dir.is_empty() => {
            let dir = PathBuf::from(dir);
            if dir.is_absolute() {
                dir
            } else {
                workspace_root().join(dir)
            }
        }
        _ => workspace_root().join("target"),
    }
}

/// Builds `libpatchmix_core.a` and returns its path.
fn build_staticlib() -> PathBuf {
    let dir = target_dir().join("c-abi");
    let status = Command::new(env!("CARGO"))
        .current_dir(workspace_root())
        .env("CARGO_TARGET_DIR", &dir)
        .args([
            "rustc",
            "-p",
            "patchmix-core",
            "--lib",
            "--features",
            "ffi",
            "--crate-type",
            "staticlib",
        ])
        .status()
        .expect("failed to run cargo to build the patchmix-core staticlib");
    assert!(
        status.success(),
        "building the patchmix-core staticlib failed: {status}"
    );
    let lib = dir.join("debug").join("libpatchmix_core.a");
    assert!(lib.exists(), "cargo did not produce {}", lib.display());
    lib
}

fn compile_and_run_smoke() -> String {
    let lib = build_staticlib();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let exe = lib.with_file_name("patchmix_smoke");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".to_string());
    let mut cmd = Command::new(&cc);
    cmd.arg("-std=c99")
        .arg("-Wall")
        .arg("-Wextra")
        .arg("-Werror")
        .arg("-I")
        .arg(root.join("include"))
        .arg(root.join("tests/c/smoke.c"))
        .arg(&lib)
        .arg("-o")
        .arg(&exe);
    // The system libraries Rust's std needs in a static link (`--print native-static-libs`).
    if cfg!(target_os = "macos") {
        cmd.args(["-lSystem", "-lc", "-lm"]);
    } else {
        cmd.args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ]);
    }
    let out = cmd.output().unwrap_or_else(|err| {
        panic!(
            "could not run the C compiler `{cc}` ({err}): the C ABI test needs a C compiler; \
             install one (e.g. `apt-get install gcc`) or point $CC at it"
        )
    });
    assert!(
        out.status.success(),
        "compiling tests/c/smoke.c failed:\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let run = Command::new(&exe)
        .output()
        .expect("failed to run the compiled C smoke test");
    let stdout = String::from_utf8(run.stdout).expect("smoke output is UTF-8");
    assert!(
        run.status.success(),
        "the C smoke test failed ({}):\nstdout:\n{stdout}\nstderr:\n{}",
        run.status,
        String::from_utf8_lossy(&run.stderr)
    );
    stdout
}

fn line<'a>(output: &'a str, key: &str) -> &'a str {
    output
        .lines()
        .find_map(|l| l.strip_prefix(key).and_then(|rest| rest.strip_prefix(' ')))
        .unwrap_or_else(|| panic!("no `{key}` line in the C output:\n{output}"))
}

fn join<T: ToString>(values: &[T]) -> String {
    values
        .iter()
        .map(T::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// C's `%.9g` for the f32 values written by the smoke test, parsed back to f32 for comparison.
fn floats(text: &str) -> Vec<f32> {
    text.split(' ')
        .map(|v| v.parse().expect("a float"))
        .collect()
}

#[test]
fn c_program_matches_rust_api() {
    let out = compile_and_run_smoke();
    let (b, grid, mix, t) = (4usize, 4usize, 2usize, 16usize);

    assert_eq!(line(&out, "abi"), "1");

    let mut perm = [0u32; 16];
    fill_permutation(42, &mut perm).unwrap();
    assert_eq!(line(&out, "perm"), join(&perm));
    let mut inv = [0u32; 16];
    fill_inverse(&perm, &mut inv).unwrap();
    assert_eq!(line(&out, "inv"), join(&inv));
    let geometry = MixGeometry::new(b, grid, mix).unwrap();
    let mut source = vec![0u32; b * t];
    fill_source(&geometry, &perm, &mut source).unwrap();
    assert_eq!(line(&out, "source"), join(&source));

    let n = b * 3 * 8 * 8;
    let images: Vec<f32> = (0..n).map(|i| i as f32 * 0.5).collect();
    let mut mixed = vec![0.0f32; n];
    apply_nchw(
        &geometry,
        &source,
        ImageShape::square(3, 8),
        &images,
        &mut mixed,
    )
    .unwrap();
    assert_eq!(floats(line(&out, "mixed")), mixed);

    let spec = LabelSpec::new(b, 2, 1, 0.1).unwrap();
    let mut labels = vec![0.0f32; spec.len()];
    fill_origin_targets(&spec, &mut labels).unwrap();
    assert_eq!(floats(line(&out, "origin")), labels);
    fill_mix_to_origin_targets(&spec, mix, &mut labels).unwrap();
    assert_eq!(floats(line(&out, "soft_target")), labels);
    fill_mix_to_mix_targets(&spec, mix, &mut labels).unwrap();
    assert_eq!(floats(line(&out, "soft_mix_target")), labels);

    let parse = |key| line(&out, key).parse::<f64>().unwrap();
    assert_eq!(
        parse("cosine"),
        cosine_schedule(1e-3, 1e-5, 100, 10, 0.0, 37).unwrap()
    );
    assert_eq!(
        parse("momentum"),
        momentum_schedule(0.99, 12.5, 100.0).unwrap()
    );
    assert_eq!(
        parse("temperature"),
        temperature_schedule(0.1, 0.2, 30, 7).unwrap()
    );

    let errors: Vec<&str> = out.lines().filter(|l| l.starts_with("error ")).collect();
    let message = "mix m = 5 exceeds the token count T = 4";
    assert_eq!(
        errors[0],
        format!(
            "error -5 {} {message} | mix m exceeds the token count T",
            message.len()
        )
    );
    assert_eq!(
        errors[1],
        "error -8 grid = 3 does not divide the image side 8"
    );
    assert_eq!(line(&out, "failures"), "0");
}
