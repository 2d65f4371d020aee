//! Top-k search: hand-worked cases and blocked-vs-brute-force property tests.

use ndarray::{Array2, array};
use patchmix_export::knn::{FeatureIndex, KnnError, SearchOptions, topk_dot};
use proptest::prelude::*;

fn opts(block_rows: usize, parallel: bool) -> SearchOptions {
    SearchOptions {
        block_rows,
        parallel,
    }
}

/// Brute force: all dot products (as `f32`, in index order), sorted by (-sim, index).
fn brute_force(
    bank: &Array2<f32>,
    queries: &Array2<f32>,
    k: usize,
) -> (Vec<Vec<usize>>, Vec<Vec<f32>>) {
    let k = k.min(bank.nrows());
    let mut idx = Vec::new();
    let mut sims = Vec::new();
    for q in queries.rows() {
        let mut all: Vec<(f32, usize)> = bank
            .rows()
            .into_iter()
            .enumerate()
            // `+ 0.0`: -0.0 and +0.0 are the same similarity.
            .map(|(j, b)| {
                (
                    q.iter().zip(b.iter()).map(|(x, y)| x * y).sum::<f32>() + 0.0,
                    j,
                )
            })
            .collect();
        all.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        idx.push(all[..k].iter().map(|p| p.1).collect());
        sims.push(all[..k].iter().map(|p| p.0).collect());
    }
    (idx, sims)
}

#[test]
fn two_d_neighbours_are_the_obvious_ones() {
    // Unit vectors at 0°, 30°, 60°, 90°, 180°.
    let (c30, s30) = (3f32.sqrt() / 2.0, 0.5);
    let bank = array![[1.0, 0.0], [c30, s30], [s30, c30], [0.0, 1.0], [-1.0, 0.0]];
    let q = array![[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]];
    let top = topk_dot(bank.view(), q.view(), 3, &SearchOptions::default()).unwrap();
    assert_eq!(top.indices, array![[0, 1, 2], [3, 2, 1], [4, 3, 2]]);
    assert_eq!(top.k(), 3);
    let expect = array![[1.0, c30, s30], [1.0, c30, s30], [1.0, 0.0, -s30]];
    for (a, b) in top.similarities.iter().zip(expect.iter()) {
        assert!((a - b).abs() < 1e-6, "{a} vs {b}");
    }
}

#[test]
fn k_larger_than_bank_is_clipped() {
    let bank = array![[1.0, 0.0], [0.0, 1.0]];
    let q = array![[1.0, 1.0]];
    let top = topk_dot(bank.view(), q.view(), 200, &SearchOptions::default()).unwrap();
    assert_eq!(top.indices.shape(), &[1, 2]);
    // Equal similarities: lower index first.
    assert_eq!(top.indices, array![[0, 1]]);
}

#[test]
fn no_queries_gives_empty_result() {
    let bank = array![[1.0, 0.0]];
    let q = Array2::<f32>::zeros((0, 2));
    let top = topk_dot(bank.view(), q.view(), 5, &SearchOptions::default()).unwrap();
    assert_eq!(top.indices.shape(), &[0, 1]);
}

#[test]
fn argument_errors() {
    let bank = array![[1.0, 0.0]];
    let q = array![[1.0, 0.0]];
    let d = SearchOptions::default();
    assert!(matches!(
        topk_dot(bank.view(), q.view(), 0, &d),
        Err(KnnError::InvalidK(_))
    ));
    assert!(matches!(
        topk_dot(bank.view(), array![[1.0, 0.0, 0.0]].view(), 1, &d),
        Err(KnnError::DimMismatch {
            index_dim: 2,
            query_dim: 3
        })
    ));
    assert!(matches!(
        topk_dot(Array2::<f32>::zeros((0, 2)).view(), q.view(), 1, &d),
        Err(KnnError::EmptyIndex)
    ));
    assert!(matches!(
        topk_dot(bank.view(), q.view(), 1, &opts(0, true)),
        Err(KnnError::InvalidBlockRows)
    ));
}

#[test]
fn index_search_normalises_queries_and_rejects_nan() {
    let idx = FeatureIndex::new(array![[1.0, 0.0], [0.0, 1.0]], vec![0, 1], None).unwrap();
    let top = idx
        .search(array![[10.0, 0.0]].view(), 1, &SearchOptions::default())
        .unwrap();
    assert_eq!(top.similarities[[0, 0]], 1.0);
    let err = idx
        .search(
            array![[1.0, 0.0], [f32::NAN, 0.0]].view(),
            1,
            &SearchOptions::default(),
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            KnnError::NonFinite {
                what: "query",
                row: 1
            }
        ),
        "{err}"
    );
    let err = idx
        .search(array![[1.0]].view(), 1, &SearchOptions::default())
        .unwrap_err();
    assert!(
        err.to_string().contains("D = 2") && err.to_string().contains("D = 1"),
        "{err}"
    );
}

fn int_matrix(rows: usize, cols: usize) -> impl Strategy<Value = Array2<f32>> {
    proptest::collection::vec(-3i8..=3, rows * cols).prop_map(move |v| {
        Array2::from_shape_vec((rows, cols), v.into_iter().map(f32::from).collect()).unwrap()
    })
}

fn float_matrix(rows: usize, cols: usize) -> impl Strategy<Value = Array2<f32>> {
    proptest::collection::vec(-1.0f32..1.0, rows * cols)
        .prop_map(move |v| Array2::from_shape_vec((rows, cols), v).unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Small-integer features make every dot product exact, so ties are exact too and the
    /// blocked search must reproduce brute force bit for bit, tie order included.
    #[test]
    fn blocked_equals_brute_force_exactly(
        (bank, queries) in (1usize..60, 0usize..40, 1usize..9)
            .prop_flat_map(|(n, q, d)| (int_matrix(n, d), int_matrix(q, d))),
        k in 1usize..70,
        block in 1usize..50,
        parallel in any::<bool>(),
    ) {
        let top = topk_dot(bank.view(), queries.view(), k, &opts(block, parallel)).unwrap();
        let (idx, sims) = brute_force(&bank, &queries, k);
        prop_assert_eq!(top.k(), k.min(bank.nrows()));
        for r in 0..queries.nrows() {
            prop_assert_eq!(top.indices.row(r).to_vec(), idx[r].clone());
            prop_assert_eq!(top.similarities.row(r).to_vec(), sims[r].clone());
        }
    }

    /// Random real features through `FeatureIndex::search`: the similarities match brute
    /// force in f64 to rounding, and each returned index really has the returned similarity.
    #[test]
    fn index_search_matches_f64_brute_force(
        (bank, queries) in (1usize..80, 1usize..30, 1usize..17)
            .prop_flat_map(|(n, q, d)| (float_matrix(n, d), float_matrix(q, d))),
        k in 1usize..90,
        block in 1usize..40,
    ) {
        let n = bank.nrows();
        let labels = vec![0u32; n];
        let idx = FeatureIndex::new(bank, labels, None).unwrap();
        let top = idx.search(queries.view(), k, &opts(block, true)).unwrap();
        let feats = idx.features();
        for (r, q) in queries.rows().into_iter().enumerate() {
            let qn = q.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>().sqrt().max(1e-12);
            let exact: Vec<f64> = feats.rows().into_iter().map(|b| {
                b.iter().zip(q.iter()).map(|(&x, &y)| f64::from(x) * f64::from(y)).sum::<f64>() / qn
            }).collect();
            let mut sorted = exact.clone();
            sorted.sort_by(|a, b| b.total_cmp(a));
            let got = top.similarities.row(r);
            for j in 0..k.min(n) {
                prop_assert!((f64::from(got[j]) - sorted[j]).abs() < 1e-5);
                prop_assert!((f64::from(got[j]) - exact[top.indices[[r, j]]]).abs() < 1e-5);
                if j > 0 { prop_assert!(got[j - 1] >= got[j]); }
            }
        }
    }
}
