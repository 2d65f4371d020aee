//! Device selection without a GPU: `--device cuda` fails with a message that names the missing
//! CUDA provider library and how to provide it (never a silent CPU fallback, never a panic),
//! `--device auto` falls back to the CPU and says so, bad device strings are rejected with the
//! accepted forms; the CUDA preflight on real shared libraries (`ldd`, pip library
//! directories, preloading); and the IoBinding path that CUDA uses, run on the CPU, giving the
//! same losses and state as the plain path.

use patchmix_export::runtime::ort_env::{self, SHARED_PROVIDER_LIB};
use patchmix_train::device::{
    self, CUDA_PROVIDER_LIB, Device, DeviceError, DeviceOptions, Placement, preflight_cuda_with,
};
use patchmix_train::session::{EngineError, SessionOptions, StepSession};
use patchmix_train::step::HostState;
use patchmix_train::step::{Frame, StepConfig, build_step, init_state, prepare_batch};
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn patchmix() -> Command {
    Command::new(env!("CARGO_BIN_EXE_patchmix"))
}

/// The CPU build in use (provisioned like every other test), as ORT_DYLIB_PATH for children.
fn cpu_ort() -> PathBuf {
    ort_env::locate_ort_library().expect("the CPU ONNX Runtime")
}

fn text(o: &Output) -> (String, String) {
    (
        String::from_utf8_lossy(&o.stdout).into_owned(),
        String::from_utf8_lossy(&o.stderr).into_owned(),
    )
}

fn bench_tiny(device: &str, env_lib: Option<&Path>, cache: Option<&Path>) -> Output {
    let mut c = patchmix();
    c.args([
        "bench", "step", "--config", "tiny", "--steps", "1", "--device", device,
    ]);
    match env_lib {
        Some(l) => c.env("ORT_DYLIB_PATH", l),
        None => c.env_remove("ORT_DYLIB_PATH"),
    };
    if let Some(d) = cache {
        c.env("PATCHMIX_CACHE", d);
    }
    c.output().expect("run patchmix")
}

#[test]
fn cuda_on_a_cpu_build_fails_naming_the_provider_library_and_the_fix() {
    let lib = cpu_ort();
    if device::has_cuda_provider(&lib) {
        eprintln!("SKIPPED: the ONNX Runtime in use is a CUDA build");
        return;
    }
    for device in ["cuda", "cuda:1"] {
        let o = bench_tiny(device, Some(&lib), None);
        let (out, err) = text(&o);
        assert!(!o.status.success(), "{device}: {out}\n{err}");
        assert_eq!(o.status.code(), Some(1), "{err}");
        assert!(!err.contains("panicked"), "{err}");
        assert!(err.contains(CUDA_PROVIDER_LIB), "{err}");
        let dir = lib.parent().unwrap().display().to_string();
        assert!(err.contains(&dir), "names the directory looked in: {err}");
        assert!(err.contains("pip install onnxruntime-gpu==1.31.1"), "{err}");
        assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
        assert!(!out.contains("img/s"), "no silent CPU run: {out}");
    }
}

#[test]
fn cuda_without_any_gpu_build_lists_what_was_looked_at() {
    if device::nvidia_driver_present() {
        eprintln!("SKIPPED: this machine has an NVIDIA driver (the GPU wheel would be fetched)");
        return;
    }
    let cache = tempfile::tempdir().unwrap();
    let o = bench_tiny("cuda", None, Some(cache.path()));
    let (out, err) = text(&o);
    assert_eq!(o.status.code(), Some(1), "{out}\n{err}");
    assert!(!err.contains("panicked"), "{err}");
    assert!(err.contains(CUDA_PROVIDER_LIB), "{err}");
    assert!(err.contains("ORT_DYLIB_PATH"), "{err}");
    assert!(
        err.contains("1.31.1-gpu"),
        "names the cache looked in: {err}"
    );
    assert!(err.contains("no NVIDIA driver"), "{err}");
    assert!(err.contains("pip install onnxruntime-gpu==1.31.1"), "{err}");
    // Nothing was fetched into the cache.
    assert!(!cache.path().join("ort/1.31.1-gpu/wheels").exists());
}

#[test]
fn auto_falls_back_to_the_cpu_and_says_so() {
    let lib = cpu_ort();
    if device::has_cuda_provider(&lib) {
        eprintln!("SKIPPED: the ONNX Runtime in use is a CUDA build");
        return;
    }
    let o = bench_tiny("auto", Some(&lib), None);
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(err.contains("--device auto: using the CPU"), "{err}");
    assert!(err.contains(CUDA_PROVIDER_LIB), "says why: {err}");
    assert!(out.contains("device cpu (requested auto)"), "{out}");
    assert!(out.contains("img/s"), "{out}");
}

#[test]
fn a_bogus_device_is_rejected_with_the_accepted_forms() {
    for bad in ["bogus", "cuda:x", "gpu"] {
        let o = bench_tiny(bad, Some(&cpu_ort()), None);
        let (out, err) = text(&o);
        assert_eq!(o.status.code(), Some(2), "{out}\n{err}");
        assert!(err.contains(&format!("`{bad}`")), "{err}");
        for form in ["cpu", "cuda", "cuda:N", "auto"] {
            assert!(err.contains(form), "{form}: {err}");
        }
    }
}

fn tiny(frame: Frame, drop_path: f32) -> StepConfig {
    StepConfig::tiny(frame, drop_path)
}

#[test]
fn the_library_refuses_cuda_with_a_device_error_not_a_cpu_session() {
    let lib = cpu_ort();
    if device::has_cuda_provider(&lib) {
        eprintln!("SKIPPED: the ONNX Runtime in use is a CUDA build");
        return;
    }
    let cfg = tiny(Frame::NoMomentum, 0.0);
    let step = build_step(&cfg).unwrap();
    let init = init_state(&cfg, &step.layout, 0);
    let dev = DeviceOptions {
        device: Device::Cuda(0),
        ..DeviceOptions::default()
    };
    match StepSession::new_on_device(step, &SessionOptions::default(), &dev, &init) {
        Err(EngineError::Device(DeviceError::CudaUnavailable(m))) => {
            assert!(
                m.contains(CUDA_PROVIDER_LIB) || m.contains("NVIDIA driver"),
                "{m}"
            );
        }
        Err(e) => panic!("wrong error: {e}"),
        Ok(s) => panic!("got a session on {}", s.placement()),
    }
}

/// Runs `steps` steps from seed 0 with the given device options; returns every step's losses
/// and the final state.
fn train(cfg: &StepConfig, dev: &DeviceOptions, steps: usize) -> (Vec<[f32; 4]>, HostState) {
    let step = build_step(cfg).unwrap();
    let init = init_state(cfg, &step.layout, 0);
    let mut s = StepSession::new_on_device(step, &SessionOptions::default(), dev, &init).unwrap();
    assert_eq!(s.placement(), Placement::Cpu);
    assert_eq!(s.is_bound(), dev.io_binding);
    assert_eq!(
        s.to_host().unwrap(),
        init,
        "load then to_host is the identity"
    );
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let mut losses = Vec::new();
    for i in 0..steps {
        let v1: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
        let v2: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
        let b = prepare_batch(cfg, v1, v2, i as u64, 0.0).unwrap();
        let l = s.run(&b.inputs(1e-3, 0.05, 0.2, 0.99)).unwrap();
        assert!(l.total.is_finite());
        losses.push([l.src, l.mix, l.mix2, l.total]);
    }
    (losses, s.to_host().unwrap())
}

#[test]
fn the_io_binding_path_matches_the_plain_path_on_the_cpu() {
    for (frame, drop_path) in [(Frame::NoMomentum, 0.0), (Frame::Momentum, 0.1)] {
        let cfg = tiny(frame, drop_path);
        let plain = train(&cfg, &DeviceOptions::default(), 3);
        let bound = train(
            &cfg,
            &DeviceOptions {
                io_binding: true,
                ..DeviceOptions::default()
            },
            3,
        );
        assert_eq!(plain.0, bound.0, "{frame:?}: losses of 3 steps");
        assert_eq!(plain.1, bound.1, "{frame:?}: state after 3 steps");
        assert_eq!(bound.1.step, 3);
        // The state moved: the ping-pong buffers were written, not just read.
        let step = build_step(&cfg).unwrap();
        assert_ne!(bound.1.params, init_state(&cfg, &step.layout, 0).params);
    }
}

#[test]
fn a_bound_session_resumes_from_a_checkpoint_like_the_plain_one() {
    let cfg = tiny(Frame::NoMomentum, 0.0);
    let bound = DeviceOptions {
        io_binding: true,
        ..DeviceOptions::default()
    };
    let (_, after3) = train(&cfg, &DeviceOptions::default(), 3);
    // Load a plain session's state into a bound one mid-run (odd parity) and back out.
    let step = build_step(&cfg).unwrap();
    let init = init_state(&cfg, &step.layout, 0);
    let mut s =
        StepSession::new_on_device(step, &SessionOptions::default(), &bound, &init).unwrap();
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(9);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let v1: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
    let b = prepare_batch(&cfg, v1.clone(), v1, 0, 0.0).unwrap();
    s.run(&b.inputs(1e-3, 0.05, 0.2, 0.99)).unwrap();
    s.load(&after3).unwrap();
    assert_eq!(s.steps_taken(), 3);
    assert_eq!(s.to_host().unwrap(), after3);
    // A wrong-sized state is refused.
    let mut bad = after3.clone();
    bad.buffers.pop();
    assert!(matches!(s.load(&bad), Err(EngineError::Size { .. })));
}

#[test]
fn bench_step_runs_the_io_binding_path_and_writes_json() {
    let dir = tempfile::tempdir().unwrap();
    let json = dir.path().join("bench.json");
    let o = patchmix()
        .args([
            "bench", "step", "--config", "tiny", "--steps", "2", "--warmup", "1",
        ])
        .args(["--io-binding", "--json"])
        .arg(&json)
        .env("ORT_DYLIB_PATH", cpu_ort())
        .output()
        .unwrap();
    let (out, err) = text(&o);
    assert!(o.status.success(), "{out}\n{err}");
    assert!(out.contains("IoBinding"), "{out}");
    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).unwrap()).unwrap();
    let run = &doc["runs"][0];
    assert_eq!(run["placement"], "cpu");
    assert_eq!(run["io_binding"], true);
    assert_eq!(run["losses"].as_array().unwrap().len(), 3);
    assert_eq!(run["step_s"].as_array().unwrap().len(), 2);
    assert!(run["img_per_s"].as_f64().unwrap() > 0.0);
    assert_eq!(doc["device"], "cpu");
}

// --- The CUDA preflight on real ELF files (needs a C compiler; skipped without one). ---

fn cc() -> Option<&'static str> {
    ["cc", "gcc"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok())
}

/// Builds a shared library `name` with soname `name` into `dir`, linked against `needs`
/// (sonames of libraries built before into `dir`).
fn build_so(cc: &str, dir: &Path, name: &str, needs: &[&str]) {
    let src = dir.join(format!("{name}.c"));
    std::fs::write(
        &src,
        format!("int f_{}(void) {{ return 1; }}\n", name.len()),
    )
    .unwrap();
    let mut c = Command::new(cc);
    c.args(["-shared", "-fPIC", "-o"])
        .arg(dir.join(name))
        .arg(&src)
        .arg(format!("-Wl,-soname,{name}"))
        .arg(format!("-L{}", dir.display()))
        .arg("-Wl,--no-as-needed");
    for n in needs {
        c.arg(format!("-l:{n}"));
    }
    let o = c.output().unwrap();
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
}

#[test]
fn preflight_lists_unresolved_cuda_libraries_then_preloads_them_from_pip_dirs() {
    let Some(cc) = cc() else {
        eprintln!("SKIPPED: no C compiler");
        return;
    };
    let t = tempfile::tempdir().unwrap();
    let ort_dir = t.path().join("capi");
    let pip_lib = t.path().join("site-packages/nvidia/cu13/lib");
    std::fs::create_dir_all(&ort_dir).unwrap();
    std::fs::create_dir_all(&pip_lib).unwrap();
    // A provider that needs libcudart.so.13 and libcublas.so.13, which are then removed.
    build_so(cc, &ort_dir, "libcudart.so.13", &[]);
    build_so(cc, &ort_dir, "libcublas.so.13", &[]);
    build_so(
        cc,
        &ort_dir,
        CUDA_PROVIDER_LIB,
        &["libcudart.so.13", "libcublas.so.13"],
    );
    std::fs::rename(
        ort_dir.join("libcudart.so.13"),
        pip_lib.join("libcudart.so.13"),
    )
    .unwrap();
    std::fs::remove_file(ort_dir.join("libcublas.so.13")).unwrap();
    std::fs::write(ort_dir.join(SHARED_PROVIDER_LIB), b"fake").unwrap();
    let lib = ort_dir.join("libonnxruntime.so.1.31.1");
    std::fs::write(&lib, b"fake").unwrap();

    // Neither is found without the pip directory: both are listed with their packages.
    let e = preflight_cuda_with(&lib, true, &[], false)
        .unwrap_err()
        .to_string();
    assert!(e.contains(CUDA_PROVIDER_LIB), "{e}");
    assert!(
        e.contains("libcudart.so.13") && e.contains("nvidia-cuda-runtime==13.*"),
        "{e}"
    );
    assert!(
        e.contains("libcublas.so.13") && e.contains("nvidia-cublas==13.*"),
        "{e}"
    );
    assert!(e.contains("LD_LIBRARY_PATH"), "{e}");

    // With the pip directory only libcublas is still missing.
    let dirs =
        patchmix_train::device::nvidia_lib_dirs_under(&t.path().join("site-packages/nvidia"));
    assert_eq!(dirs, std::slice::from_ref(&pip_lib));
    let e = preflight_cuda_with(&lib, true, &dirs, false)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("libcublas.so.13") && !e.contains("libcudart.so.13:"),
        "{e}"
    );

    // Once both are there, they are preloaded (dependencies first) and the preflight passes.
    build_so(cc, &pip_lib, "libcublas.so.13", &[]);
    let ok = preflight_cuda_with(&lib, true, &dirs, true).unwrap();
    assert_eq!(ok.provider, ort_dir.join(CUDA_PROVIDER_LIB));
    assert_eq!(
        ok.preloaded,
        [
            pip_lib.join("libcudart.so.13"),
            pip_lib.join("libcublas.so.13")
        ]
    );
}

/// `scripts/stage-gpu-check.sh --part-size` refuses anything that is not a size, naming it,
/// before it looks for a binary or fetches anything.
#[test]
fn stage_gpu_check_refuses_a_bad_part_size() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/stage-gpu-check.sh");
    for bad in ["4X", "0", "-5", "48 M"] {
        let out = Command::new("bash")
            .arg(&script)
            .args(["--part-size", bad])
            .output()
            .expect("bash runs");
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "--part-size {bad}: {err}");
        assert!(
            err.contains(&format!("--part-size '{bad}' is not a size")),
            "--part-size {bad}: {err}"
        );
    }
    let out = Command::new("bash")
        .arg(&script)
        .arg("--part-size")
        .output()
        .expect("bash runs");
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--part-size needs a size"));
}
