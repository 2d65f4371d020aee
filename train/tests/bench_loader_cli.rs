//! `patchmix bench loader`: one JSON line per loader thread count with the throughput and its
//! split, and bad arguments as one-line errors (never a panic).

use serde_json::Value;
use std::process::{Command, Output};

fn bench_loader(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .args(["bench", "loader"])
        .args(args)
        .output()
        .expect("failed to run patchmix")
}

fn json_lines(args: &[&str]) -> Vec<Value> {
    let out = bench_loader(args);
    assert!(
        out.status.success(),
        "patchmix bench loader {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON: {l}: {e}")))
        .collect()
}

fn positive(v: &Value, key: &str) -> f64 {
    let x = v[key]
        .as_f64()
        .unwrap_or_else(|| panic!("{key} missing in {v}"));
    assert!(x.is_finite() && x > 0.0, "{key} = {x} in {v}");
    x
}

fn error_line(args: &[&str]) -> String {
    let out = bench_loader(args);
    assert!(
        !out.status.success(),
        "patchmix bench loader {args:?} should fail"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(stderr.trim_end().lines().count(), 1, "one line: {stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn one_json_line_per_thread_count() {
    let lines = json_lines(&[
        "--config",
        "tiny",
        "--batches",
        "2",
        "--threads",
        "1,2",
        "--json",
    ]);
    assert_eq!(lines.len(), 2, "{lines:?}");
    for (line, threads) in lines.iter().zip([1, 2]) {
        assert_eq!(line["config"], "tiny");
        assert_eq!(line["batch"], 8, "the tiny config's batch");
        assert_eq!(line["threads"], threads);
        assert_eq!(line["batches"], 2);
        assert_eq!(line["local_crops"], 0);
        let ips = positive(line, "img_per_s");
        let wall = positive(line, "wall_s");
        assert!((ips - 16.0 / wall).abs() <= 1e-6 * ips, "{line}");
        positive(line, "loader_img_per_s");
        positive(line, "prepare_img_per_s");
        positive(line, "prepare_s");
        let wait = line["loader_wait_s"].as_f64().expect("loader_wait_s");
        let prep = line["prepare_s"].as_f64().unwrap();
        assert!(wait >= 0.0 && wait + prep <= wall * 1.01 + 1e-3, "{line}");
    }
}

#[test]
fn batch_override_and_multi_crop() {
    let lines = json_lines(&[
        "--config",
        "tiny",
        "--batch",
        "4",
        "--batches",
        "1",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--local-crops",
        "2",
        "--local-size",
        "4",
        "--drop-path",
        "0.1",
        "--json",
    ]);
    assert_eq!(lines.len(), 1);
    assert_eq!(lines[0]["batch"], 4);
    assert_eq!(lines[0]["local_crops"], 2);
    assert_eq!(lines[0]["local_size"], 4);
    positive(&lines[0], "img_per_s");
}

#[test]
fn finetune_path_is_timed_beside_the_loader() {
    let lines = json_lines(&[
        "--config",
        "tiny",
        "--batches",
        "2",
        "--warmup",
        "0",
        "--threads",
        "1",
        "--finetune",
        "--json",
    ]);
    assert_eq!(lines.len(), 1);
    let l = &lines[0];
    let ips = positive(l, "finetune_img_per_s");
    let secs = positive(l, "finetune_s");
    assert!((ips - 16.0 / secs).abs() <= 1e-6 * ips, "{l}");
    let ratio = positive(l, "finetune_vs_loader");
    assert!(
        (ratio - ips / positive(l, "loader_img_per_s")).abs() <= 1e-9 * ratio,
        "{l}"
    );
    // Without the flag, no fine-tuning fields.
    let plain = json_lines(&[
        "--config",
        "tiny",
        "--batches",
        "1",
        "--threads",
        "1",
        "--json",
    ]);
    assert!(plain[0].get("finetune_img_per_s").is_none());
    let e = error_line(&[
        "--config",
        "tiny",
        "--batch",
        "3",
        "--finetune",
        "--batches",
        "1",
    ]);
    assert!(e.contains("even batch"), "{e}");
}

#[test]
fn human_table_has_a_row_per_thread_count() {
    let out = bench_loader(&["--config", "tiny", "--batches", "1", "--threads", "1,2"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("pipeline img/s"), "{text}");
    let rows = text
        .lines()
        .filter(|l| {
            l.split_whitespace()
                .next()
                .is_some_and(|w| w == "1" || w == "2")
        })
        .count();
    assert_eq!(rows, 2, "{text}");
}

#[test]
fn bad_arguments_are_clear_errors() {
    let e = error_line(&["--config", "tiny", "--threads", "0", "--json"]);
    assert!(e.contains("--threads") && e.contains('0'), "{e}");
    let e = error_line(&["--config", "tiny", "--threads", "1,x"]);
    assert!(e.contains("--threads") && e.contains("`x`"), "{e}");
    let e = error_line(&["--config", "huge", "--json"]);
    assert!(
        e.contains("unknown bench config `huge`") && e.contains("vit-t2"),
        "{e}"
    );
    let e = error_line(&["--config", "tiny", "--batches", "0"]);
    assert!(e.contains("--batches"), "{e}");
    let e = error_line(&["--config", "tiny", "--batch", "1"]);
    assert!(e.contains("batch 1 is too small"), "{e}");
    let e = error_line(&[
        "--config",
        "tiny",
        "--local-crops",
        "2",
        "--local-size",
        "3",
    ]);
    assert!(e.contains("multiple of the patch size"), "{e}");
    let e = error_line(&["--config", "tiny", "--data", "/nonexistent/patchmix-data"]);
    assert!(e.contains("/nonexistent/patchmix-data"), "{e}");
}
