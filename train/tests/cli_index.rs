//! `patchmix index build|add|remove|info` and `patchmix search` end to end through the binary,
//! on an ImageFolder of real MNIST digits (from `data/mnist10k`) and a random-init encoder:
//! the search equals a brute-force kNN over `patchmix embed`'s features of the same images
//! (an independent path: the embed command plus a plain loop here), `--label`, `--ann`,
//! add/remove semantics, and bad input (bad `--k`, another encoder, a truncated gallery,
//! unknown ids) giving a one-line error.

use patchmix_export::data::{Dataset, DatasetRef};
use patchmix_export::knn::FeatureIndex;
use std::path::Path;
use std::process::Command;

#[path = "common/cli.rs"]
mod cli;
#[path = "common/gallery.rs"]
mod gallery;
use cli::{error_line, ok, s};
use gallery::{export_random, mnist_folder};

#[derive(serde::Deserialize, Debug, PartialEq)]
struct Hit {
    id: String,
    label: String,
    score: f32,
}

#[derive(serde::Deserialize, Debug)]
struct Results {
    results: Vec<Hit>,
}

fn search(args: &[&str]) -> Vec<Hit> {
    let mut all = vec!["search", "--json"];
    all.extend_from_slice(args);
    serde_json::from_str::<Results>(&ok(&all)).unwrap().results
}

/// The brute-force reference: `patchmix embed` features of the gallery folder and of the
/// query (a folder holding only it), every row scored, best first (ties by row).
struct Reference {
    ids: Vec<String>,
    labels: Vec<String>,
    features: FeatureIndex,
    query: Vec<f32>,
}

impl Reference {
    fn new(dir: &Path, model: &Path, gallery: &Path, query_png: &Path) -> Self {
        let feats = dir.join("ref.safetensors");
        ok(&[
            "embed",
            "--model",
            s(model),
            "--data",
            s(gallery),
            "--out",
            s(&feats),
        ]);
        let qdir = dir.join("query-folder/q");
        std::fs::create_dir_all(&qdir).unwrap();
        std::fs::copy(query_png, qdir.join("q.png")).unwrap();
        let qfeats = dir.join("query.safetensors");
        let qroot = dir.join("query-folder");
        ok(&[
            "embed",
            "--model",
            s(model),
            "--data",
            s(&qroot),
            "--out",
            s(&qfeats),
        ]);
        let ds = Dataset::open(&s(gallery).parse::<DatasetRef>().unwrap()).unwrap();
        Self {
            ids: (0..ds.len()).map(|i| ds.item_id(i)).collect(),
            labels: (0..ds.len())
                .map(|i| ds.class_names()[ds.label(i) as usize].clone())
                .collect(),
            features: FeatureIndex::load(&feats).unwrap(),
            query: FeatureIndex::load(&qfeats)
                .unwrap()
                .features()
                .row(0)
                .to_vec(),
        }
    }

    fn top(&self, k: usize, label: Option<&str>) -> Vec<(String, String, f64)> {
        let mut scored: Vec<(usize, f64)> = self
            .features
            .features()
            .rows()
            .into_iter()
            .enumerate()
            .filter(|(i, _)| label.is_none_or(|l| self.labels[*i] == l))
            .map(|(i, r)| {
                let dot = r
                    .iter()
                    .zip(&self.query)
                    .map(|(a, b)| f64::from(*a) * f64::from(*b))
                    .sum();
                (i, dot)
            })
            .collect();
        scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
        scored
            .into_iter()
            .take(k)
            .map(|(i, d)| (self.ids[i].clone(), self.labels[i].clone(), d))
            .collect()
    }
}

fn assert_same(hits: &[Hit], reference: &[(String, String, f64)]) {
    assert_eq!(hits.len(), reference.len());
    for (h, (id, label, score)) in hits.iter().zip(reference) {
        assert_eq!((&h.id, &h.label), (id, label), "{hits:?}\nvs {reference:?}");
        assert!(
            (f64::from(h.score) - score).abs() < 1e-5,
            "{h:?} vs {score}"
        );
    }
}

#[test]
fn search_equals_brute_force_knn_over_embed_features() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = export_random(d, "enc.onnx", "3");
    let gallery_dir = mnist_folder(&d.join("gallery"), 0, 60);
    let query_png = mnist_folder(&d.join("queries"), 100, 1);
    let query_png = std::fs::read_dir(&query_png)
        .unwrap()
        .flat_map(|e| std::fs::read_dir(e.unwrap().path()).unwrap())
        .next()
        .unwrap()
        .unwrap()
        .path();
    let pmx = d.join("g.pmx");
    ok(&[
        "index",
        "build",
        "--model",
        s(&model),
        "--data",
        s(&gallery_dir),
        "--out",
        s(&pmx),
    ]);
    let reference = Reference::new(d, &model, &gallery_dir, &query_png);

    let base = [
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--image",
        s(&query_png),
    ];
    let hits = search(&base);
    assert_same(&hits, &reference.top(10, None));
    assert!(
        hits[0].id.starts_with(s(&gallery_dir)) && hits[0].id.ends_with(".png"),
        "{:?}",
        hits[0]
    );

    let mut args = base.to_vec();
    args.extend(["--k", "60"]);
    assert_same(&search(&args), &reference.top(60, None));

    // --label: only that digit, the reference restricted to it.
    let label = reference.labels[7].clone();
    let mut args = base.to_vec();
    args.extend(["--k", "3", "--label", &label]);
    let hits = search(&args);
    assert!(hits.iter().all(|h| h.label == label));
    assert_same(&hits, &reference.top(3, Some(&label)));

    // The table prints the same neighbours, best first.
    let mut args = vec!["search"];
    args.extend_from_slice(&base);
    let table = ok(&args);
    let lines: Vec<&str> = table.lines().collect();
    assert!(
        lines[0].contains("score") && lines[0].contains("id"),
        "{table}"
    );
    assert!(
        lines[1].trim_start().starts_with('1') && lines[1].ends_with(&reference.top(1, None)[0].0),
        "{table}"
    );

    // An HNSW gallery of the same images: --ann finds the same neighbours on 60 items.
    let ann = d.join("ann.pmx");
    ok(&[
        "index",
        "build",
        "--model",
        s(&model),
        "--data",
        s(&gallery_dir),
        "--out",
        s(&ann),
        "--ann",
        "hnsw",
    ]);
    let ann_base = [
        "--index",
        s(&ann),
        "--model",
        s(&model),
        "--image",
        s(&query_png),
    ];
    let mut args = ann_base.to_vec();
    args.push("--ann");
    assert_same(&search(&args), &reference.top(10, None));
    assert_same(&search(&ann_base), &reference.top(10, None));
    let info: serde_json::Value =
        serde_json::from_str(&ok(&["index", "info", "--index", s(&ann), "--json"])).unwrap();
    assert_eq!(info["items"], 60);
    assert_eq!(info["hnsw"]["connectivity"], 16);
}

#[test]
fn add_and_remove_through_the_cli() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = export_random(d, "enc.onnx", "4");
    let first = mnist_folder(&d.join("first"), 0, 20);
    let second = mnist_folder(&d.join("second"), 20, 10);
    let pmx = d.join("g.pmx");
    ok(&[
        "index",
        "build",
        "--model",
        s(&model),
        "--data",
        s(&first),
        "--out",
        s(&pmx),
        "--ann",
        "hnsw",
    ]);
    let items = |p: &Path| -> u64 {
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["index", "info", "--index", s(p), "--json"])).unwrap();
        v["items"].as_u64().unwrap()
    };
    assert_eq!(items(&pmx), 20);

    ok(&[
        "index",
        "add",
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--data",
        s(&second),
    ]);
    assert_eq!(items(&pmx), 30);
    // Adding the same images again: their ids (file paths) are taken; nothing changes.
    let before = std::fs::read(&pmx).unwrap();
    let e = error_line(&[
        "index",
        "add",
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--data",
        s(&second),
    ]);
    assert!(e.contains("already in the gallery"), "{e}");
    assert_eq!(std::fs::read(&pmx).unwrap(), before);
    // MNIST's own ids are dataset indices: a prefix keeps them apart.
    let mnist = Path::new(env!("CARGO_MANIFEST_DIR")).join("../data/mnist10k:test");
    ok(&[
        "index",
        "add",
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--data",
        s(&mnist),
        "--limit",
        "5",
        "--id-prefix",
        "test-",
    ]);
    assert_eq!(items(&pmx), 35);

    // An item added is found by its own image; removed, it is gone.
    let png = std::fs::read_dir(second.join("7"))
        .ok()
        .and_then(|mut r| r.next())
        .map(|e| e.unwrap().path());
    let png = png.unwrap_or_else(|| {
        std::fs::read_dir(
            std::fs::read_dir(&second)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path()
    });
    let id = png.display().to_string();
    let q = [
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--image",
        &id,
        "--k",
        "1",
    ];
    for ann in [false, true] {
        let mut args = q.to_vec();
        if ann {
            args.push("--ann");
        }
        let hits = search(&args);
        assert_eq!(hits[0].id, id);
        assert!((hits[0].score - 1.0).abs() < 1e-5, "{:?}", hits[0]);
    }
    // Unknown id: error, nothing removed.
    let before = std::fs::read(&pmx).unwrap();
    let e = error_line(&[
        "index",
        "remove",
        "--index",
        s(&pmx),
        "--id",
        &id,
        "--id",
        "no-such-id",
    ]);
    assert!(
        e.contains("\"no-such-id\" is not in the gallery") && e.contains("nothing was removed"),
        "{e}"
    );
    assert_eq!(std::fs::read(&pmx).unwrap(), before);
    ok(&[
        "index",
        "remove",
        "--index",
        s(&pmx),
        "--id",
        &id,
        "--id",
        "test-0",
    ]);
    assert_eq!(items(&pmx), 33);
    for ann in [false, true] {
        let mut args = q.to_vec();
        if ann {
            args.push("--ann");
        }
        assert_ne!(search(&args)[0].id, id);
    }
    // One gallery file and one graph file remain.
    let mut names: Vec<String> = std::fs::read_dir(d)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("g.pmx"))
        .collect();
    names.sort();
    assert_eq!(names.len(), 2, "{names:?}");
    assert!(names[1].ends_with(".hnsw"), "{names:?}");
}

#[test]
fn bad_input_is_a_one_line_error() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = export_random(d, "enc.onnx", "5");
    let other = export_random(d, "other.onnx", "6");
    let folder = mnist_folder(&d.join("g"), 0, 12);
    let pmx = d.join("g.pmx");
    ok(&[
        "index",
        "build",
        "--model",
        s(&model),
        "--data",
        s(&folder),
        "--out",
        s(&pmx),
    ]);
    let png = std::fs::read_dir(
        std::fs::read_dir(&folder)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .path(),
    )
    .unwrap()
    .next()
    .unwrap()
    .unwrap()
    .path();
    let base = [
        "search",
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--image",
        s(&png),
    ];
    let with = |extra: &[&str]| {
        let mut a = base.to_vec();
        a.extend_from_slice(extra);
        error_line(&a)
    };
    assert!(with(&["--k", "0"]).contains("at least 1"));
    let e = with(&["--k", "13"]);
    assert!(e.contains("--k") && e.contains("only 12 items"), "{e}");
    let e = with(&["--label", "cat"]);
    assert!(
        e.contains("--label") && e.contains("unknown label \"cat\""),
        "{e}"
    );
    let e = with(&["--ann"]);
    assert!(e.contains("no HNSW graph"), "{e}");

    // Another encoder: refused, naming both files.
    let e = error_line(&[
        "search",
        "--index",
        s(&pmx),
        "--model",
        s(&other),
        "--image",
        s(&png),
    ]);
    assert!(
        e.contains("other.onnx") && e.contains("g.pmx") && e.contains("not the encoder"),
        "{e}"
    );
    let e = error_line(&[
        "index",
        "add",
        "--index",
        s(&pmx),
        "--model",
        s(&other),
        "--data",
        s(&folder),
    ]);
    assert!(e.contains("not the encoder"), "{e}");

    // A truncated gallery and a non-image query.
    let bytes = std::fs::read(&pmx).unwrap();
    let cut = d.join("cut.pmx");
    std::fs::write(&cut, &bytes[..bytes.len() - 10]).unwrap();
    let e = error_line(&[
        "search",
        "--index",
        s(&cut),
        "--model",
        s(&model),
        "--image",
        s(&png),
    ]);
    assert!(
        e.contains("cut.pmx") && e.contains("not a patchmix gallery"),
        "{e}"
    );
    let e = error_line(&[
        "search",
        "--index",
        s(&pmx),
        "--model",
        s(&model),
        "--image",
        s(&cut),
    ]);
    assert!(e.contains("--image") && e.contains("cut.pmx"), "{e}");
    let e = error_line(&["index", "remove", "--index", s(&cut), "--id", "x"]);
    assert!(e.contains("cut.pmx"), "{e}");
    let e = error_line(&[
        "index",
        "build",
        "--model",
        s(&model),
        "--data",
        s(&folder),
        "--out",
        s(&d.join("no/such/dir/g.pmx")),
    ]);
    assert!(e.contains("--out"), "{e}");
}

#[test]
fn bench_search_reports_recall_and_speed() {
    let out = ok(&[
        "bench",
        "search",
        "--n",
        "3000",
        "--dim",
        "32",
        "--queries",
        "50",
        "--clusters",
        "20",
        "--ef",
        "64",
        "--quantization",
        "f32,i8",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["n"], 3000);
    let q = v["quantizations"].as_array().unwrap();
    assert_eq!(q.len(), 2);
    for row in q {
        let r = &row["rows"][0];
        assert!(r["recall"].as_f64().unwrap() >= 0.9, "{row}");
        assert!(r["queries_per_s"].as_f64().unwrap() > 0.0);
        assert!(row["graph_bytes"].as_u64().unwrap() > 0);
    }
    assert_eq!(v["persistence"]["view_equals_memory"], true);

    // Rows of a feature file (as `patchmix embed` writes) as the centres, repeated with noise.
    let dir = tempfile::tempdir().unwrap();
    let feats = dir.path().join("f.safetensors");
    let rows =
        ndarray::Array2::from_shape_fn((50, 24), |(i, j)| ((i * 7 + j * 3) % 11) as f32 - 5.0);
    FeatureIndex::new(rows, vec![0; 50], None)
        .unwrap()
        .save(&feats)
        .unwrap();
    let out = ok(&[
        "bench",
        "search",
        "--features",
        s(&feats),
        "--n",
        "2000",
        "--queries",
        "20",
        "--ef",
        "64",
        "--quantization",
        "f16",
        "--json",
    ]);
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["dim"], 24);
    assert!(
        v["features"].as_str().unwrap().contains("50 rows of"),
        "{v}"
    );
    assert!(
        v["quantizations"][0]["rows"][0]["recall"].as_f64().unwrap() >= 0.9,
        "{v}"
    );
}

#[test]
fn kill_9_during_writes_leaves_the_old_or_the_new_gallery() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let model = export_random(d, "enc.onnx", "7");
    let first = mnist_folder(&d.join("first"), 0, 30);
    let pmx = d.join("g.pmx");
    ok(&[
        "index",
        "build",
        "--model",
        s(&model),
        "--data",
        s(&first),
        "--out",
        s(&pmx),
        "--ann",
        "hnsw",
    ]);
    let synthetic = "synthetic:40,size=28,classes=3,seed=2";
    let mut seen = std::collections::BTreeSet::new();
    // Kill `index add` after growing delays: before, during and after its write.
    for (round, ms) in [5u64, 20, 40, 80, 120, 160, 240, 400, 800, 3000]
        .into_iter()
        .enumerate()
    {
        let prefix = format!("r{round}-");
        let mut child = Command::new(env!("CARGO_BIN_EXE_patchmix"))
            .args([
                "index",
                "add",
                "--index",
                s(&pmx),
                "--model",
                s(&model),
                "--data",
                synthetic,
                "--id-prefix",
                &prefix,
            ])
            .stderr(std::process::Stdio::null())
            .spawn()
            .unwrap();
        std::thread::sleep(std::time::Duration::from_millis(ms));
        let _ = child.kill(); // SIGKILL on Unix
        let _ = child.wait();
        let v: serde_json::Value =
            serde_json::from_str(&ok(&["index", "info", "--index", s(&pmx), "--json"])).unwrap();
        let items = v["items"].as_u64().unwrap();
        assert_eq!((items - 30) % 40, 0, "a torn gallery: {items} items");
        seen.insert(items);
        // The graph named by the gallery is there and matches it.
        let png = std::fs::read_dir(
            std::fs::read_dir(&first)
                .unwrap()
                .next()
                .unwrap()
                .unwrap()
                .path(),
        )
        .unwrap()
        .next()
        .unwrap()
        .unwrap()
        .path();
        let hits = search(&[
            "--index",
            s(&pmx),
            "--model",
            s(&model),
            "--image",
            s(&png),
            "--k",
            "1",
            "--ann",
        ]);
        assert_eq!(hits[0].id, png.display().to_string());
    }
    eprintln!("gallery sizes seen after the kills: {seen:?}");
}
