//! DINO weighted kNN: vote arithmetic by hand, report semantics, errors.

use ndarray::{Array2, array};
use patchmix_export::knn::{
    DEFAULT_KS, DINO_TEMPERATURE, FeatureIndex, KnnError, KnnReport, SearchOptions, class_rank,
    knn_predict, knn_report, knn_report_with, weighted_votes,
};

/// A unit vector in 2-D with cosine `s` to `[1, 0]`.
fn at_cos(s: f32) -> [f32; 2] {
    [s, (1.0 - s * s).sqrt()]
}

fn rows(v: &[[f32; 2]]) -> Array2<f32> {
    Array2::from_shape_vec((v.len(), 2), v.iter().flatten().copied().collect()).unwrap()
}

/// Query `[1, 0]`; neighbours a (sim 1.0, class 0), c (0.8, class 1), b (0.6, class 1),
/// d (0.0, class 2).
fn three_class_index() -> FeatureIndex {
    FeatureIndex::new(
        rows(&[at_cos(1.0), at_cos(0.6), at_cos(0.8), at_cos(0.0)]),
        vec![0, 1, 1, 2],
        None,
    )
    .unwrap()
}

#[test]
fn votes_by_hand() {
    // k = 3 at T = 0.07: class 0 gets e^(1/0.07) = e^14.2857 ≈ 1.600 32e6, class 1 gets
    // e^(0.8/0.07) + e^(0.6/0.07) = e^11.4286 + e^8.5714 ≈ 91 910.6 + 5 278.7 = 97 189.2.
    let v = weighted_votes(&[1.0, 0.8, 0.6], &[0, 1, 1], 3, 0.07);
    assert!((v[0] / 1.600_320e6 - 1.0).abs() < 1e-5, "{}", v[0]);
    assert!((v[1] / 97_189.25 - 1.0).abs() < 1e-5, "{}", v[1]);
    assert_eq!(v[2], 0.0);
    // At T = 1: class 0 gets e = 2.718, class 1 gets e^0.8 + e^0.6 = 2.2255 + 1.8221 = 4.0477.
    let v = weighted_votes(&[1.0, 0.8, 0.6], &[0, 1, 1], 3, 1.0);
    assert!((v[0] - std::f64::consts::E).abs() < 1e-6);
    assert!((v[1] - 4.047_7).abs() < 1e-4, "{}", v[1]);
}

#[test]
fn temperature_changes_the_prediction_as_computed_by_hand() {
    let idx = three_class_index();
    let q = array![[1.0f32, 0.0]];
    let d = SearchOptions::default();
    assert_eq!(knn_predict(&idx, q.view(), 3, 0.07, &d).unwrap(), vec![0]);
    assert_eq!(knn_predict(&idx, q.view(), 3, 1.0, &d).unwrap(), vec![1]);
    assert_eq!(knn_predict(&idx, q.view(), 1, 1.0, &d).unwrap(), vec![0]);

    let r = knn_report(&idx, q.view(), &[1], &[1, 3], 0.07).unwrap();
    assert_eq!((r.rows[0].top1, r.rows[1].top1), (0.0, 0.0));
    let r = knn_report(&idx, q.view(), &[1], &[1, 3], 1.0).unwrap();
    assert_eq!((r.rows[0].top1, r.rows[1].top1), (0.0, 100.0));
    // Three classes: top-5 is always a hit.
    assert_eq!((r.rows[0].top5, r.rows[1].top5), (100.0, 100.0));
}

#[test]
fn ranks_follow_stable_sort_semantics() {
    assert_eq!(class_rank(&[0.0, 2.0, 1.0], 1), 0);
    assert_eq!(class_rank(&[0.0, 2.0, 1.0], 2), 1);
    assert_eq!(class_rank(&[0.0, 2.0, 1.0], 0), 2);
    assert_eq!(class_rank(&[1.0, 1.0, 1.0], 2), 2);
}

/// Seven classes, class `c` at cosine `1 - 0.1 c` to the query, one sample each.
fn seven_class_index() -> FeatureIndex {
    let pts: Vec<[f32; 2]> = (0..7).map(|c| at_cos(1.0 - 0.1 * c as f32)).collect();
    FeatureIndex::new(rows(&pts), (0..7).collect(), None).unwrap()
}

#[test]
fn top5_boundary_with_seven_classes() {
    let idx = seven_class_index();
    let q = array![[1.0f32, 0.0], [1.0, 0.0], [1.0, 0.0]];
    // k = 7: ranks are the class ids. Label 4 is 5th (hit), label 5 is 6th (miss).
    let r = knn_report(&idx, q.view(), &[4, 5, 0], &[7], DINO_TEMPERATURE).unwrap();
    assert!((r.rows[0].top1 - 100.0 / 3.0).abs() < 1e-9);
    assert!((r.rows[0].top5 - 200.0 / 3.0).abs() < 1e-9);
    // k = 2: only classes 0 and 1 vote; the zero-vote classes 2..6 tie and follow in id
    // order, so label 4 has rank 4 (hit) and label 5 rank 5 (miss), as with a stable sort.
    let r = knn_report(&idx, q.view(), &[4, 5, 0], &[2], DINO_TEMPERATURE).unwrap();
    assert!((r.rows[0].top5 - 200.0 / 3.0).abs() < 1e-9);
}

#[test]
fn many_ks_from_one_search_equal_separate_runs() {
    // Random-ish data: each k from the combined run equals a run with that k alone.
    let n = 300;
    let d = 8;
    let feats = Array2::from_shape_fn((n, d), |(i, j)| ((i * 7 + j * 13) % 17) as f32 - 8.0);
    let labels: Vec<u32> = (0..n as u32).map(|i| (i * 5) % 11).collect();
    let idx = FeatureIndex::new(feats, labels, None).unwrap();
    let q = Array2::from_shape_fn((50, d), |(i, j)| ((i * 3 + j * 11) % 19) as f32 - 9.0);
    let ql: Vec<u32> = (0..50u32).map(|i| i % 11).collect();
    let ks = [10, 20, 100, 200];
    let all = knn_report(&idx, q.view(), &ql, &ks, DINO_TEMPERATURE).unwrap();
    for (i, &k) in ks.iter().enumerate() {
        let one = knn_report_with(
            &idx,
            q.view(),
            &ql,
            &[k],
            DINO_TEMPERATURE,
            &SearchOptions {
                block_rows: 7,
                parallel: false,
            },
        )
        .unwrap();
        assert_eq!(one.rows[0], all.rows[i], "k = {k}");
        // top-1 from the report agrees with knn_predict.
        let pred = knn_predict(
            &idx,
            q.view(),
            k,
            DINO_TEMPERATURE,
            &SearchOptions::default(),
        )
        .unwrap();
        let hits = pred.iter().zip(&ql).filter(|(p, l)| p == l).count();
        assert!((all.rows[i].top1 - 100.0 * hits as f64 / 50.0).abs() < 1e-9);
    }
}

#[test]
fn k_clipping_duplicates_and_order_are_kept() {
    let idx = three_class_index();
    let q = array![[1.0f32, 0.0]];
    let r = knn_report(&idx, q.view(), &[0], &[200, 10, 4, 10], DINO_TEMPERATURE).unwrap();
    let ks: Vec<(usize, usize)> = r.rows.iter().map(|r| (r.k, r.k_used)).collect();
    assert_eq!(ks, vec![(200, 4), (10, 4), (4, 4), (10, 4)]);
    assert!(r.rows.iter().all(|row| row.top1 == 100.0));
    let text = r.to_string();
    assert!(text.contains("*"), "{text}");
    assert!(
        text.contains("k clipped to the 4 training samples"),
        "{text}"
    );
    assert!(text.contains("trivially 100%"), "{text}");
}

#[test]
fn display_and_json() {
    let idx = seven_class_index();
    let q = array![[1.0f32, 0.0]];
    let r = knn_report(&idx, q.view(), &[0], &[1, 5], DINO_TEMPERATURE).unwrap();
    let text = r.to_string();
    let expected = "weighted kNN (T = 0.07): 7 train, 1 test, 7 classes, D = 2\n     k |  top-1 |  top-5\n-------+--------+--------\n     1 | 100.00 | 100.00\n     5 | 100.00 | 100.00\n";
    assert_eq!(text, expected);
    let json = r.to_json_pretty();
    let back: KnnReport = serde_json::from_str(&json).unwrap();
    assert_eq!(back, r);
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["rows"][1]["k"], 5);
    assert_eq!(v["rows"][1]["top1"], 100.0);
    assert!(r.row(5).is_some() && r.row(6).is_none());
}

#[test]
fn report_errors() {
    let idx = three_class_index();
    let q = array![[1.0f32, 0.0]];
    let t = DINO_TEMPERATURE;
    assert!(matches!(
        knn_report(&idx, q.view(), &[0], &[], t),
        Err(KnnError::InvalidK(_))
    ));
    assert!(matches!(
        knn_report(&idx, q.view(), &[0], &[0, 10], t),
        Err(KnnError::InvalidK(_))
    ));
    assert!(matches!(
        knn_report(&idx, q.view(), &[0], &DEFAULT_KS, 0.0),
        Err(KnnError::InvalidTemperature(_))
    ));
    assert!(matches!(
        knn_report(&idx, q.view(), &[0], &DEFAULT_KS, f32::NAN),
        Err(KnnError::InvalidTemperature(_))
    ));
    assert!(matches!(
        knn_report(&idx, q.view(), &[0, 1], &DEFAULT_KS, t),
        Err(KnnError::LabelCount {
            what: "test",
            features: 1,
            labels: 2
        })
    ));
    let err = knn_report(&idx, q.view(), &[3], &DEFAULT_KS, t).unwrap_err();
    assert!(err.to_string().contains("test label #0 is 3"), "{err}");
    assert!(matches!(
        knn_report(&idx, Array2::zeros((0, 2)).view(), &[], &DEFAULT_KS, t),
        Err(KnnError::NoQueries)
    ));
    assert!(matches!(
        knn_report(
            &idx,
            array![[1.0f32, 0.0, 0.0]].view(),
            &[0],
            &DEFAULT_KS,
            t
        ),
        Err(KnnError::DimMismatch { .. })
    ));
}
