//! `patchmix mix-plan`: the JSON agrees with the patchmix-core API, and bad input is a one-line
//! error with a failing exit status.

use patchmix_core::{LabelSpec, MixPlan, mix_to_mix_targets, mix_to_origin_targets};
use serde_json::Value;
use std::process::{Command, Output};

fn patchmix(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_patchmix"))
        .arg("mix-plan")
        .args(args)
        .output()
        .expect("failed to run patchmix")
}

fn json(args: &[&str]) -> Value {
    let out = patchmix(args);
    assert!(
        out.status.success(),
        "patchmix mix-plan {args:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one JSON object on one line");
    serde_json::from_str(&text).expect("valid JSON")
}

fn u32s(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

fn rows(v: &Value) -> Vec<f64> {
    v.as_array()
        .unwrap()
        .iter()
        .flat_map(|row| row.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()))
        .collect()
}

fn error_line(args: &[&str]) -> String {
    let out = patchmix(args);
    assert!(
        !out.status.success(),
        "patchmix mix-plan {args:?} should fail"
    );
    assert!(out.stdout.is_empty(), "nothing on stdout on error");
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert!(!stderr.contains("panicked"), "{stderr}");
    stderr.trim_end().to_string()
}

#[test]
fn seeded_plan_matches_core() {
    let doc = json(&[
        "--batch",
        "6",
        "--grid",
        "4",
        "--mix",
        "3",
        "--seed",
        "42",
        "--smoothing",
        "0.2",
        "--world-size",
        "2",
        "--rank",
        "1",
        "--json",
    ]);
    let plan = MixPlan::from_seed(6, 4, 3, 42).unwrap();
    assert_eq!(doc["batch"], 6);
    assert_eq!(doc["tokens"], 16);
    assert_eq!(doc["mix"], 3);
    assert_eq!(doc["seed"], 42);
    assert_eq!(u32s(&doc["perm"]), plan.perm());
    assert_eq!(u32s(&doc["source"]), plan.source());
    assert_eq!(doc["source"].as_array().unwrap().len(), 6 * 16);

    let spec = LabelSpec::new(6, 2, 1, 0.2).unwrap();
    assert_eq!(doc["num_classes"], 12);
    let soft = &doc["soft_target"];
    assert_eq!(soft.as_array().unwrap().len(), 6);
    assert!(
        soft.as_array()
            .unwrap()
            .iter()
            .all(|r| r.as_array().unwrap().len() == 12)
    );
    assert_eq!(rows(soft), mix_to_origin_targets::<f64>(&spec, 3).unwrap());
    assert_eq!(
        rows(&doc["soft_mix_target"]),
        mix_to_mix_targets::<f64>(&spec, 3).unwrap()
    );
}

#[test]
fn given_perm_matches_core() {
    let doc = json(&[
        "--batch", "3", "--grid", "2", "--mix", "2", "--perm", "3,1,0,2", "--json",
    ]);
    let plan = MixPlan::from_permutation(3, 2, 2, &[3u32, 1, 0, 2]).unwrap();
    assert_eq!(u32s(&doc["perm"]), [3, 1, 0, 2]);
    assert_eq!(u32s(&doc["source"]), plan.source());
    assert_eq!(doc["seed"], Value::Null);
    assert_eq!(doc["smoothing"], 0.1);
    let spec = LabelSpec::single(3, 0.1).unwrap();
    assert_eq!(
        rows(&doc["soft_target"]),
        mix_to_origin_targets::<f64>(&spec, 2).unwrap()
    );
}

#[test]
fn picture_without_json() {
    let out = patchmix(&[
        "--batch",
        "2",
        "--grid",
        "3",
        "--mix",
        "2",
        "--perm",
        "8,0,7,1,6,2,5,3,4",
    ]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.starts_with("PatchMix plan: B = 2, grid = 3 (T = 9), m = 2, S = 4"),
        "{text}"
    );
    assert!(
        text.contains("mixed image 0 (sources 0, 1):\n  0  0  1\n  1 0*  1\n  1  0  0\n"),
        "{text}"
    );
}

#[test]
fn bad_input_is_a_one_line_error() {
    let cases: [(&[&str], &str); 7] = [
        (
            &["--batch", "2", "--grid", "2", "--mix", "5", "--seed", "1"],
            "error: mix m = 5 exceeds the token count T = 4",
        ),
        (
            &["--batch", "0", "--grid", "2", "--mix", "1", "--seed", "1"],
            "error: batch B = 0: the batch must hold at least one image",
        ),
        (
            &["--batch", "2", "--grid", "2", "--mix", "0", "--seed", "1"],
            "error: mix m = 0: at least one image must be mixed",
        ),
        (
            &[
                "--batch", "2", "--grid", "2", "--mix", "2", "--perm", "0,1,x,3",
            ],
            "error: invalid --perm: entry 2 (`x`) is not a non-negative integer",
        ),
        (
            &[
                "--batch", "2", "--grid", "2", "--mix", "2", "--perm", "0,1,1,3",
            ],
            "error: invalid --perm: perm[1] = perm[2] = 1: perm is not a permutation",
        ),
        (
            &[
                "--batch", "2", "--grid", "2", "--mix", "2", "--perm", "0,1,2",
            ],
            "error: invalid --perm: perm has length 3 but must have length T = 4",
        ),
        (
            &[
                "--batch",
                "2",
                "--grid",
                "2",
                "--mix",
                "2",
                "--seed",
                "1",
                "--world-size",
                "2",
                "--rank",
                "2",
            ],
            "error: rank = 2 is not below the world size 2",
        ),
    ];
    for (args, want) in cases {
        assert_eq!(error_line(args), want, "args {args:?}");
    }
    // Smoothing out of range, and neither --perm nor --seed (a clap usage error).
    assert!(
        error_line(&[
            "--batch",
            "2",
            "--grid",
            "2",
            "--mix",
            "2",
            "--seed",
            "1",
            "--smoothing",
            "2"
        ])
        .contains("smoothing s = 2")
    );
    assert!(error_line(&["--batch", "2", "--grid", "2", "--mix", "2"]).contains("--perm"));
}
