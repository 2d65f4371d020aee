//! Tests of the gallery index: the file format (round trip, corrupt, truncated and foreign
//! files), the encoder fingerprint check, add/remove semantics, atomic saves, exact search
//! against a brute-force reference, and the HNSW graph against exact search.

use std::path::{Path, PathBuf};

use ndarray::{Array2, array};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::*;
use crate::data::Preprocess;

fn tmpdir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

fn fp(tag: &str) -> ModelFingerprint {
    ModelFingerprint::of_bytes(tag.as_bytes())
}

/// `n` random rows of width `d` around `c` cluster centres, labels = cluster % classes.
fn clustered(n: usize, d: usize, c: usize, spread: f32, seed: u64) -> (Array2<f32>, Vec<u32>) {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((c, d), |_| rng.random_range(-1.0f32..1.0));
    let mut labels = Vec::with_capacity(n);
    let mut x = Array2::<f32>::zeros((n, d));
    for mut row in x.rows_mut() {
        let j = rng.random_range(0..c);
        for (v, &m) in row.iter_mut().zip(centres.row(j)) {
            *v = m + spread * rng.random_range(-1.0f32..1.0);
        }
        labels.push((j % 4) as u32);
    }
    (x, labels)
}

fn gallery(n: usize, d: usize, seed: u64) -> Gallery {
    let (x, labels) = clustered(n, d, 8, 0.3, seed);
    let ids = (0..n).map(|i| format!("img/{i:05}.png")).collect();
    let classes = ["zero", "one", "two", "three"].map(String::from).to_vec();
    Gallery::new(x, labels, ids, classes, fp("enc"), Preprocess::new(36, 32))
        .unwrap()
        .with_metadata("dataset", "unit-test")
}

/// Brute-force reference: all rows scored in f64 after normalising in f64, best first, ties by
/// row; only rows passing `keep`.
fn brute_force(
    bank: &Array2<f32>,
    q: &[f32],
    k: usize,
    keep: impl Fn(usize) -> bool,
) -> Vec<(usize, f64)> {
    let norm = |v: &mut Vec<f64>| {
        let n = v.iter().map(|x| x * x).sum::<f64>().sqrt();
        v.iter_mut().for_each(|x| *x /= n);
    };
    let mut qv: Vec<f64> = q.iter().map(|&x| f64::from(x)).collect();
    norm(&mut qv);
    let mut scored: Vec<(usize, f64)> = (0..bank.nrows())
        .filter(|&i| keep(i))
        .map(|i| {
            let mut r: Vec<f64> = bank.row(i).iter().map(|&x| f64::from(x)).collect();
            norm(&mut r);
            (i, r.iter().zip(&qv).map(|(a, b)| a * b).sum())
        })
        .collect();
    scored.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
    scored.truncate(k);
    scored
}

fn assert_matches_reference(hits: &[Hit], reference: &[(usize, f64)]) {
    assert_eq!(hits.len(), reference.len());
    for (h, (row, score)) in hits.iter().zip(reference) {
        assert!(
            (f64::from(h.score) - score).abs() < 1e-5,
            "{h:?} vs {score}"
        );
        // Rows may only differ where the reference scores tie to within rounding.
        if h.row != *row {
            let other = reference.iter().find(|(r, _)| *r == h.row).map(|x| x.1);
            assert!(
                other.is_some_and(|s| (s - score).abs() < 1e-6),
                "{h:?} vs row {row}"
            );
        }
    }
}

#[test]
fn save_load_round_trips_every_field_bit_for_bit() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    let mut g = gallery(50, 12, 1);
    // Ids with separators, unicode and spaces survive.
    g.add(
        array![[1.0f32; 12]].view(),
        &[2],
        &["photos/ünïcode dir/ç,a:t.jpg".to_string()],
    )
    .unwrap();
    g.save(&path).unwrap();
    let back = Gallery::load(&path, AnnLoad::View).unwrap();
    assert_eq!(back.features(), g.features());
    assert_eq!(back.labels(), g.labels());
    assert_eq!(back.ids(), g.ids());
    assert_eq!(back.classes(), g.classes());
    assert_eq!(back.model(), g.model());
    assert_eq!(back.preprocess(), g.preprocess());
    assert_eq!(back.metadata(), g.metadata());
    assert_eq!(back.row_of("photos/ünïcode dir/ç,a:t.jpg"), Some(50));
    assert_eq!(back.path(), Some(path.as_path()));
    assert!(back.hnsw_params().is_none());
    // Saving what was loaded and loading it again changes nothing.
    let again = dir.path().join("again.pmx");
    back.save(&again).unwrap();
    let again = Gallery::load(&again, AnnLoad::View).unwrap();
    assert_eq!(again.features(), g.features());
    assert_eq!((again.ids(), again.labels()), (g.ids(), g.labels()));
}

#[test]
fn the_file_is_plain_safetensors_with_the_documented_layout() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    let g = gallery(5, 3, 2);
    g.save(&path).unwrap();
    let c = crate::weights::load_safetensors(&path).unwrap();
    assert_eq!(c.metadata["format"], "patchmix-gallery");
    assert_eq!(c.metadata["format_version"], "1");
    assert_eq!(c.metadata["model_sha256"], fp("enc").to_string());
    assert_eq!(c.metadata["ann"], "none");
    assert_eq!(c.tensors["features"].shape(), &[5, 3]);
    let offsets = &c.ints["id_offsets"];
    let bytes: Vec<u8> = c.ints["ids"].iter().map(|&b| b as u8).collect();
    let third = std::str::from_utf8(&bytes[offsets[2] as usize..offsets[3] as usize]).unwrap();
    assert_eq!(third, "img/00002.png");
    let labels: Vec<i64> = c.ints["labels"].iter().copied().collect();
    assert_eq!(
        labels,
        g.labels().iter().map(|&l| i64::from(l)).collect::<Vec<_>>()
    );
}

fn load_err(path: &Path) -> String {
    let err = Gallery::load(path, AnnLoad::View).unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains(&path.display().to_string()),
        "names the file: {msg}"
    );
    msg
}

#[test]
fn truncated_files_are_errors_naming_the_file() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    gallery(20, 4, 3).save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let cut = dir.path().join("cut.pmx");
    for len in [0, 3, 8, 40, bytes.len() / 2, bytes.len() - 1] {
        std::fs::write(&cut, &bytes[..len]).unwrap();
        let msg = load_err(&cut);
        assert!(msg.contains("not a patchmix gallery index"), "{len}: {msg}");
    }
    // Trailing garbage is refused too.
    let mut longer = bytes.clone();
    longer.extend_from_slice(b"junk");
    std::fs::write(&cut, &longer).unwrap();
    load_err(&cut);
}

#[test]
fn corrupt_and_foreign_files_are_errors_naming_the_file() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    gallery(6, 4, 4).save(&path).unwrap();
    let good = std::fs::read(&path).unwrap();
    let bad = dir.path().join("bad.pmx");

    // A PNG renamed .pmx.
    std::fs::write(&bad, b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR").unwrap();
    assert!(load_err(&bad).contains("not a valid safetensors container"));

    // A kNN feature file from `patchmix embed`.
    crate::knn::FeatureIndex::new(array![[1.0f32, 0.0]], vec![0], None)
        .unwrap()
        .save(&bad)
        .unwrap();
    assert!(load_err(&bad).contains("patchmix embed"));

    // A weights file (no format key).
    let sd = crate::weights::StateDict::from([(
        "w".to_string(),
        ndarray::ArrayD::<f32>::zeros(ndarray::IxDyn(&[2])),
    )]);
    crate::weights::save_safetensors(&bad, &sd, None).unwrap();
    assert!(load_err(&bad).contains("no `format` metadata"));

    // Header edits of the same length: another version, broken JSON, a tampered offset.
    let edit = |from: &str, to: &str| {
        assert_eq!(from.len(), to.len());
        let text = String::from_utf8_lossy(&good).into_owned();
        let at = text.find(from).expect(from);
        let mut b = good.clone();
        b[at..at + from.len()].copy_from_slice(to.as_bytes());
        std::fs::write(&bad, &b).unwrap();
    };
    edit("\"format_version\":\"1\"", "\"format_version\":\"9\"");
    assert!(matches!(
        Gallery::load(&bad, AnnLoad::View),
        Err(GalleryError::Version { .. })
    ));
    edit("\"format_version\":\"1\"", "{format_version\":\"1\"");
    load_err(&bad);
    edit("\"ann\":\"none\"", "\"ann\":\"nope\"");
    assert!(load_err(&bad).contains("`ann`"));
    let first_hex = format!("\"model_sha256\":\"{}", &fp("enc").to_string()[..1]);
    edit(&first_hex, "\"model_sha256\":\"z");
    assert!(load_err(&bad).contains("model_sha256"));
}

#[test]
fn bad_id_tables_are_refused() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    let g = gallery(3, 2, 5);
    g.save(&path).unwrap();
    // Rewrite the file with an `id_offsets` that points past the end, and with a duplicate id,
    // through the encoder with hand-made tables.
    let c = crate::weights::load_safetensors(&path).unwrap();
    let mut meta: std::collections::HashMap<String, String> = c.metadata.into_iter().collect();
    meta.insert("count".into(), "3".into());
    let feats: Vec<u8> = g.features().iter().flat_map(|v| v.to_le_bytes()).collect();
    let labels: Vec<u8> = [0i64, 1, 2].iter().flat_map(|v| v.to_le_bytes()).collect();
    let write = |ids: &[u8], offsets: &[i64], out: &PathBuf| {
        use safetensors::tensor::{Dtype, TensorView};
        let off: Vec<u8> = offsets.iter().flat_map(|v| v.to_le_bytes()).collect();
        let t = vec![
            (
                "features",
                TensorView::new(Dtype::F32, vec![3, 2], &feats).unwrap(),
            ),
            (
                "labels",
                TensorView::new(Dtype::I64, vec![3], &labels).unwrap(),
            ),
            (
                "ids",
                TensorView::new(Dtype::U8, vec![ids.len()], ids).unwrap(),
            ),
            (
                "id_offsets",
                TensorView::new(Dtype::I64, vec![4], &off).unwrap(),
            ),
        ];
        std::fs::write(
            out,
            safetensors::tensor::serialize(t, Some(meta.clone())).unwrap(),
        )
        .unwrap();
    };
    let bad = dir.path().join("bad.pmx");
    write(b"abc", &[0, 1, 2, 3], &bad);
    assert!(
        Gallery::load(&bad, AnnLoad::View).is_ok(),
        "the hand-made file is valid"
    );
    write(b"abc", &[0, 1, 2, 9], &bad);
    assert!(load_err(&bad).contains("byte range"));
    write(b"aac", &[0, 1, 2, 3], &bad);
    assert!(load_err(&bad).contains("occurs twice"));
    write(b"abc", &[0, 2, 1, 3], &bad);
    load_err(&bad);
    write(b"a\xffc", &[0, 1, 2, 3], &bad);
    assert!(load_err(&bad).contains("UTF-8"));
}

#[test]
fn fingerprint_mismatch_names_both_files() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    gallery(4, 2, 6).save(&path).unwrap();
    let g = Gallery::load(&path, AnnLoad::View).unwrap();
    g.check_model(&fp("enc"), Path::new("enc.onnx")).unwrap();
    let msg = g
        .check_model(&fp("other"), Path::new("other.onnx"))
        .unwrap_err()
        .to_string();
    assert!(
        msg.contains("other.onnx") && msg.contains(&path.display().to_string()),
        "{msg}"
    );
    assert!(
        msg.contains(&fp("other").to_string()) && msg.contains(&fp("enc").to_string()),
        "{msg}"
    );
}

#[test]
fn add_and_remove_keep_ids_unique_and_are_all_or_nothing() {
    let mut g = gallery(10, 3, 7);
    let before = (g.features().to_owned(), g.ids().to_vec());
    let row = array![[0.0f32, 0.0, 1.0]];
    // An existing id, or the same id twice in one batch: nothing is added.
    let err = g
        .add(row.view(), &[0], &["img/00003.png".into()])
        .unwrap_err();
    assert!(
        matches!(err, GalleryError::DuplicateId(ref id) if id == "img/00003.png"),
        "{err}"
    );
    let two = array![[0.0f32, 0.0, 1.0], [0.0, 1.0, 0.0]];
    let err = g
        .add(two.view(), &[0, 1], &["n".into(), "n".into()])
        .unwrap_err();
    assert!(matches!(err, GalleryError::DuplicateId(_)), "{err}");
    assert!(
        matches!(
            g.add(row.view(), &[4], &["x".into()]),
            Err(GalleryError::InvalidItems(_))
        ),
        "label 4 of 4 classes"
    );
    assert!(
        matches!(
            g.add(array![[1.0f32, 0.0]].view(), &[0], &["x".into()]),
            Err(GalleryError::InvalidItems(_))
        ),
        "wrong width"
    );
    assert_eq!((g.features().to_owned(), g.ids().to_vec()), before);

    g.add(two.view(), &[0, 3], &["new-a".into(), "new-b".into()])
        .unwrap();
    assert_eq!(g.len(), 12);
    assert_eq!(g.row_of("new-b"), Some(11));
    assert_eq!(g.labels()[11], 3);

    // An unknown id among known ones: nothing is removed.
    let err = g.remove(&["new-a", "missing"]).unwrap_err();
    assert!(
        matches!(err, GalleryError::UnknownId(ref id) if id == "missing"),
        "{err}"
    );
    assert_eq!(g.len(), 12);
    g.remove(&["new-a", "img/00000.png"]).unwrap();
    assert_eq!(g.len(), 10);
    assert_eq!(g.row_of("new-a"), None);
    assert_eq!(g.row_of("img/00001.png"), Some(0));
    assert_eq!(g.row_of("new-b"), Some(9));
    assert_eq!(g.features().row(9).to_vec(), vec![0.0, 1.0, 0.0]);
    // The search sees exactly the remaining rows.
    let hits = g
        .search(
            array![[0.0f32, 1.0, 0.0]].view(),
            1,
            None,
            SearchMethod::Exact,
        )
        .unwrap();
    assert_eq!(hits[0][0].id, "new-b");
    let ids = g.ids().to_vec();
    let all: Vec<&str> = ids.iter().map(String::as_str).collect();
    assert!(matches!(g.remove(&all), Err(GalleryError::WouldBeEmpty)));
    assert_eq!(g.len(), 10);
}

#[test]
fn class_labels_map_by_name() {
    let mut g = gallery(4, 2, 8);
    assert_eq!(g.class_label_or_insert("two"), 2);
    assert_eq!(g.class_label_or_insert("four"), 4);
    assert_eq!(g.classes().len(), 5);
    assert_eq!(g.resolve_label("four").unwrap(), 4);
    assert_eq!(g.resolve_label("1").unwrap(), 1);
    let err = g.resolve_label("seven").unwrap_err().to_string();
    assert!(
        err.contains("\"seven\"") && err.contains("\"zero\""),
        "{err}"
    );
    assert!(g.resolve_label("5").is_err());
}

#[test]
fn exact_search_equals_a_brute_force_reference_with_and_without_label() {
    let g = gallery(300, 16, 9);
    let (q, _) = clustered(7, 16, 8, 0.3, 99);
    let x = g.features().to_owned();
    let hits = g.search(q.view(), 10, None, SearchMethod::Exact).unwrap();
    for (i, h) in hits.iter().enumerate() {
        let reference = brute_force(&x, q.row(i).as_slice().unwrap(), 10, |_| true);
        assert_matches_reference(h, &reference);
        assert_eq!(h[0].id, g.ids()[reference[0].0]);
        assert_eq!(h[0].label, g.classes()[g.labels()[reference[0].0] as usize]);
    }
    let hits = g.search(q.view(), 5, Some(2), SearchMethod::Exact).unwrap();
    for (i, h) in hits.iter().enumerate() {
        assert!(h.iter().all(|x| x.label_id == 2 && x.label == "two"));
        let reference = brute_force(&x, q.row(i).as_slice().unwrap(), 5, |r| g.labels()[r] == 2);
        assert_matches_reference(h, &reference);
    }
}

#[test]
fn bad_k_and_labels_are_errors() {
    let g = gallery(30, 4, 10);
    let q = array![[1.0f32, 0.0, 0.0, 0.0]];
    let k_err = |k, label| match g.search(q.view(), k, label, SearchMethod::Exact) {
        Err(GalleryError::InvalidK { reason, .. }) => reason,
        other => panic!("{other:?}"),
    };
    assert!(k_err(0, None).contains("at least 1"));
    assert!(k_err(31, None).contains("only 30 items"));
    let of_two = g.labels().iter().filter(|&&l| l == 2).count();
    assert!(k_err(of_two + 1, Some(2)).contains(&format!("only {of_two} items of label \"two\"")));
    assert_eq!(
        g.search(q.view(), 30, None, SearchMethod::Exact).unwrap()[0].len(),
        30
    );
    assert!(matches!(
        g.search(q.view(), 1, Some(9), SearchMethod::Exact),
        Err(GalleryError::InvalidQuery(_))
    ));
    assert!(matches!(
        g.search(array![[1.0f32, 0.0]].view(), 1, None, SearchMethod::Exact),
        Err(GalleryError::Knn(_))
    ));
    assert!(matches!(
        g.search(q.view(), 1, None, SearchMethod::Hnsw { expansion: None }),
        Err(GalleryError::NoAnn { .. })
    ));
}

/// Files in `dir`, sorted.
fn entries(dir: &Path) -> Vec<String> {
    let mut v: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn a_failed_write_leaves_the_old_gallery_intact() {
    let dir = tmpdir();
    let path = dir.path().join("g.pmx");
    let old = gallery(20, 4, 11);
    old.save(&path).unwrap();
    let old_bytes = std::fs::read(&path).unwrap();
    let mut new = gallery(20, 4, 11);
    new.remove(&["img/00004.png"]).unwrap();
    // The disk fills half-way through the new file.
    let err = new
        .save_with(&path, |f, bytes| {
            std::io::Write::write_all(f, &bytes[..bytes.len() / 2])?;
            Err(std::io::Error::other("no space left on device"))
        })
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("no space left") && err.contains("g.pmx"),
        "{err}"
    );
    assert_eq!(std::fs::read(&path).unwrap(), old_bytes);
    assert_eq!(entries(dir.path()), vec!["g.pmx"]);
    assert_eq!(Gallery::load(&path, AnnLoad::View).unwrap().len(), 20);
}

#[cfg(feature = "hnsw")]
mod hnsw {
    use super::*;

    fn params(q: Quantization) -> HnswParams {
        HnswParams {
            quantization: q,
            ..HnswParams::default()
        }
    }

    fn recall(truth: &[Vec<Hit>], got: &[Vec<Hit>]) -> f64 {
        let mut found = 0;
        let mut total = 0;
        for (t, g) in truth.iter().zip(got) {
            total += t.len();
            found += g
                .iter()
                .filter(|h| t.iter().any(|x| x.row == h.row))
                .count();
        }
        found as f64 / total as f64
    }

    #[test]
    fn hnsw_recall_matches_exact_within_tolerance_and_scores_are_exact() {
        let mut g = gallery(3000, 32, 12);
        let (q, _) = clustered(200, 32, 8, 0.3, 13);
        let truth = g.search(q.view(), 10, None, SearchMethod::Exact).unwrap();
        // Built on one thread: parallel insertion gives a different graph each run (and a
        // recall that varies by a few thousandths); one thread makes the graph, and so the
        // recall checked here, the same on every run.
        let one_thread = rayon::ThreadPoolBuilder::new()
            .num_threads(1)
            .build()
            .unwrap();
        for quant in [Quantization::F32, Quantization::F16, Quantization::I8] {
            one_thread.install(|| g.build_hnsw(params(quant))).unwrap();
            let got = g
                .search(
                    q.view(),
                    10,
                    None,
                    SearchMethod::Hnsw {
                        expansion: Some(128),
                    },
                )
                .unwrap();
            let r = recall(&truth, &got);
            // The stated tolerance: recall@10 against exact search of at least 0.98 for f32
            // and f16 graphs, 0.90 for i8 (its 8-bit vectors misplace near ties), on 3000
            // clustered rows at ef 128.
            let min = if quant == Quantization::I8 {
                0.90
            } else {
                0.98
            };
            assert!(r >= min, "{quant}: recall@10 {r}");
            for (t, h) in truth.iter().zip(&got) {
                for hit in h {
                    // Re-scored exactly: the same score as the exact search for the same row
                    // (to f32 rounding of a different summation order).
                    if let Some(e) = t.iter().find(|e| e.row == hit.row) {
                        assert!((e.score - hit.score).abs() < 1e-5, "{e:?} {hit:?}");
                    }
                }
                assert!(h.windows(2).all(|w| w[0].score >= w[1].score));
            }
        }
    }

    #[test]
    fn hnsw_label_filter_returns_only_that_label() {
        let mut g = gallery(1000, 8, 14);
        g.build_hnsw(HnswParams::default()).unwrap();
        let (q, _) = clustered(20, 8, 8, 0.3, 15);
        let got = g
            .search(
                q.view(),
                5,
                Some(3),
                SearchMethod::Hnsw {
                    expansion: Some(100),
                },
            )
            .unwrap();
        let truth = g.search(q.view(), 5, Some(3), SearchMethod::Exact).unwrap();
        assert!(got.iter().flatten().all(|h| h.label_id == 3));
        assert!(recall(&truth, &got) >= 0.95, "{}", recall(&truth, &got));
    }

    #[test]
    fn graph_saved_beside_the_gallery_loads_and_views_to_the_same_results() {
        let dir = tmpdir();
        let path = dir.path().join("g.pmx");
        let mut g = gallery(800, 8, 16);
        g.build_hnsw(params(Quantization::F16)).unwrap();
        g.save(&path).unwrap();
        let files = entries(dir.path());
        assert_eq!(files.len(), 2, "{files:?}");
        assert!(
            files[1].starts_with("g.pmx.") && files[1].ends_with(".hnsw"),
            "{files:?}"
        );
        let (q, _) = clustered(30, 8, 8, 0.3, 17);
        let method = SearchMethod::Hnsw {
            expansion: Some(64),
        };
        let want = g.search(q.view(), 10, None, method).unwrap();
        for mode in [AnnLoad::View, AnnLoad::Load] {
            let back = Gallery::load(&path, mode).unwrap();
            assert_eq!(back.hnsw().unwrap().is_viewed(), mode == AnnLoad::View);
            assert_eq!(back.hnsw_params(), Some(params(Quantization::F16)));
            assert_eq!(back.search(q.view(), 10, None, method).unwrap(), want);
        }
        let skipped = Gallery::load(&path, AnnLoad::Skip).unwrap();
        assert!(skipped.hnsw().is_none());
        assert_eq!(skipped.hnsw_params(), Some(params(Quantization::F16)));

        // Rewriting replaces the graph file; the old one is deleted.
        let mut viewed = Gallery::load(&path, AnnLoad::View).unwrap();
        viewed
            .add(
                array![[1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]].view(),
                &[1],
                &["new".into()],
            )
            .unwrap();
        viewed.save(&path).unwrap();
        let after = entries(dir.path());
        assert_eq!(after.len(), 2, "{after:?}");
        assert_ne!(after[1], files[1]);
        let back = Gallery::load(&path, AnnLoad::View).unwrap();
        let hit = back
            .search(
                array![[1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]].view(),
                1,
                None,
                method,
            )
            .unwrap();
        assert_eq!(hit[0][0].id, "new");

        // Removing rebuilds the graph over the remaining rows.
        let mut removed = Gallery::load(&path, AnnLoad::View).unwrap();
        removed.remove(&["new"]).unwrap();
        assert_eq!(removed.hnsw().unwrap().len(), 800);
        let hit = removed
            .search(
                array![[1.0f32, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]].view(),
                1,
                None,
                method,
            )
            .unwrap();
        assert_ne!(hit[0][0].id, "new");
    }

    #[test]
    fn a_missing_or_foreign_graph_file_is_an_error_naming_it() {
        let dir = tmpdir();
        let a = dir.path().join("a.pmx");
        let mut g = gallery(100, 4, 18);
        g.build_hnsw(HnswParams::default()).unwrap();
        g.save(&a).unwrap();
        let graph = entries(dir.path())
            .into_iter()
            .find(|f| f.ends_with(".hnsw"))
            .unwrap();
        // Another gallery's graph (other size) under this gallery's graph name.
        let b = dir.path().join("b.pmx");
        let mut other = gallery(60, 4, 19);
        other.build_hnsw(HnswParams::default()).unwrap();
        other.save(&b).unwrap();
        let other_graph = entries(dir.path())
            .into_iter()
            .find(|f| f.starts_with("b.pmx.") && f.ends_with(".hnsw"))
            .unwrap();
        std::fs::copy(dir.path().join(&other_graph), dir.path().join(&graph)).unwrap();
        let msg = Gallery::load(&a, AnnLoad::View).unwrap_err().to_string();
        assert!(
            msg.contains(&graph) && msg.contains("another gallery"),
            "{msg}"
        );
        std::fs::remove_file(dir.path().join(&graph)).unwrap();
        let msg = Gallery::load(&a, AnnLoad::Load).unwrap_err().to_string();
        assert!(msg.contains(&graph) && msg.contains("missing"), "{msg}");
        // Exact search still works without the graph.
        let g = Gallery::load(&a, AnnLoad::Skip).unwrap();
        assert_eq!(g.len(), 100);
    }

    #[test]
    fn a_failed_write_keeps_the_old_graph_and_removes_the_new_one() {
        let dir = tmpdir();
        let path = dir.path().join("g.pmx");
        let mut g = gallery(200, 4, 20);
        g.build_hnsw(HnswParams::default()).unwrap();
        g.save(&path).unwrap();
        let before = entries(dir.path());
        g.remove(&["img/00001.png"]).unwrap();
        g.save_with(&path, |_, _| Err(std::io::Error::other("disk on fire")))
            .unwrap_err();
        assert_eq!(entries(dir.path()), before);
        let back = Gallery::load(&path, AnnLoad::View).unwrap();
        assert_eq!(back.len(), 200);
        assert_eq!(back.hnsw().unwrap().len(), 200);
    }
}
