//! Blocked top-k search by dot product.
//!
//! Queries are processed `block_rows` at a time: one `[block_rows, D] × [D, N]` matrix
//! product (ndarray `dot`, i.e. `matrixmultiply`'s SIMD GEMM) gives the similarities of the
//! block against the whole bank, and each row keeps its top `k` with a bounded min-heap
//! (`O(N log k)` worst case, `O(N)` typical: most candidates fail one comparison against the
//! current k-th best). Blocks are independent and run in parallel on the rayon pool, so peak
//! extra memory is about `threads × block_rows × N × 4` bytes — never `queries × N`.
//!
//! Ordering is deterministic: by decreasing similarity, ties broken by increasing bank
//! index (`-0.0` and `+0.0` tie; NaN, which [`FeatureIndex`](super::FeatureIndex) rejects,
//! ranks by [`f32::total_cmp`]).

use std::cmp::{Ordering, Reverse};
use std::collections::BinaryHeap;

use ndarray::{Array2, ArrayView2, Axis, Slice};
use rayon::prelude::*;

use super::KnnError;

/// Tuning of [`topk_dot`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SearchOptions {
    /// Queries per matrix product (default 256). Each in-flight block holds a
    /// `block_rows × N` f32 similarity matrix: 256 × 50 000 × 4 B ≈ 51 MB.
    pub block_rows: usize,
    /// Run blocks in parallel on the rayon global pool (default `true`; set the thread
    /// count with `RAYON_NUM_THREADS`).
    pub parallel: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        Self {
            block_rows: 256,
            parallel: true,
        }
    }
}

/// The result of a top-k search over `Q` queries.
#[derive(Debug, Clone, PartialEq)]
pub struct TopK {
    /// Bank row indices `[Q, k']`, where `k' = min(k, N)`; each row best first.
    pub indices: Array2<usize>,
    /// The matching similarities `[Q, k']`, non-increasing along each row.
    pub similarities: Array2<f32>,
}

impl TopK {
    /// `k' = min(k, N)`, the number of neighbours per query actually returned.
    #[must_use]
    pub fn k(&self) -> usize {
        self.indices.ncols()
    }
}

/// A candidate neighbour; `Ord` says which is *better* (greater = better).
#[derive(Debug, Clone, Copy)]
struct Cand {
    sim: f32,
    idx: usize,
}

impl Ord for Cand {
    fn cmp(&self, other: &Self) -> Ordering {
        self.sim
            .total_cmp(&other.sim)
            .then_with(|| other.idx.cmp(&self.idx))
    }
}

impl PartialOrd for Cand {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Cand {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Cand {}

/// Keeps the best `k` of `row` (indices are positions in `row`), best first, in `out`.
fn select_row(row: &[f32], k: usize, heap: &mut BinaryHeap<Reverse<Cand>>, out: &mut Vec<Cand>) {
    heap.clear();
    for (idx, &sim) in row.iter().enumerate() {
        // `+ 0.0` maps -0.0 to +0.0 so that the two zeros tie (total_cmp orders them).
        let sim = sim + 0.0;
        let cand = Cand { sim, idx };
        if heap.len() < k {
            heap.push(Reverse(cand));
        } else if let Some(mut worst) = heap.peek_mut() {
            // Indices increase, so an equal similarity never beats the current worst.
            if sim.total_cmp(&worst.0.sim) == Ordering::Greater {
                *worst = Reverse(cand);
            }
        }
    }
    out.clear();
    out.extend(heap.drain().map(|Reverse(c)| c));
    out.sort_unstable_by(|a, b| b.cmp(a));
}

/// Top-`k` rows of `bank` `[N, D]` by dot product with each row of `queries` `[Q, D]`.
///
/// With L2-normalised rows (as in [`FeatureIndex`](super::FeatureIndex)) this is cosine
/// similarity. `k` is clipped to `N`. See the [module docs](self) for the algorithm,
/// memory bound and tie order.
///
/// # Errors
///
/// [`KnnError::EmptyIndex`] if `N == 0`, [`KnnError::InvalidK`] if `k == 0`,
/// [`KnnError::DimMismatch`], [`KnnError::InvalidBlockRows`].
///
/// # Examples
///
/// ```
/// use ndarray::array;
/// use patchmix_export::knn::{topk_dot, SearchOptions};
/// let bank = array![[1.0f32, 0.0], [0.0, 1.0], [0.6, 0.8]];
/// let q = array![[0.0f32, 1.0], [1.0, 0.0]];
/// let top = topk_dot(bank.view(), q.view(), 2, &SearchOptions::default())?;
/// assert_eq!(top.indices, array![[1, 2], [0, 2]]);
/// assert_eq!(top.similarities, array![[1.0, 0.8], [1.0, 0.6]]);
/// # Ok::<(), patchmix_export::knn::KnnError>(())
/// ```
pub fn topk_dot(
    bank: ArrayView2<'_, f32>,
    queries: ArrayView2<'_, f32>,
    k: usize,
    opts: &SearchOptions,
) -> Result<TopK, KnnError> {
    let n = bank.nrows();
    if n == 0 {
        return Err(KnnError::EmptyIndex);
    }
    if k == 0 {
        return Err(KnnError::InvalidK(vec![k]));
    }
    if opts.block_rows == 0 {
        return Err(KnnError::InvalidBlockRows);
    }
    if queries.ncols() != bank.ncols() {
        return Err(KnnError::DimMismatch {
            index_dim: bank.ncols(),
            query_dim: queries.ncols(),
        });
    }
    let k = k.min(n);
    let q = queries.nrows();
    let bank_t = bank.t();

    let run_block = |start: usize| -> Vec<Cand> {
        let end = (start + opts.block_rows).min(q);
        let sims = queries
            .slice_axis(Axis(0), Slice::from(start..end))
            .dot(&bank_t);
        let mut heap = BinaryHeap::with_capacity(k + 1);
        let mut row_out = Vec::with_capacity(k);
        let mut block_out = Vec::with_capacity((end - start) * k);
        for row in sims.axis_iter(Axis(0)) {
            // `dot` returns a standard-layout array, so rows are contiguous.
            match row.as_slice() {
                Some(r) => select_row(r, k, &mut heap, &mut row_out),
                None => select_row(&row.to_vec(), k, &mut heap, &mut row_out),
            }
            block_out.extend_from_slice(&row_out);
        }
        block_out
    };

    let starts: Vec<usize> = (0..q).step_by(opts.block_rows).collect();
    let blocks: Vec<Vec<Cand>> = if opts.parallel {
        starts.par_iter().map(|&s| run_block(s)).collect()
    } else {
        starts.iter().map(|&s| run_block(s)).collect()
    };

    let mut indices = Array2::<usize>::zeros((q, k));
    let mut similarities = Array2::<f32>::zeros((q, k));
    for (flat, c) in blocks.into_iter().flatten().enumerate() {
        let (r, j) = (flat / k, flat % k);
        indices[[r, j]] = c.idx;
        similarities[[r, j]] = c.sim;
    }
    Ok(TopK {
        indices,
        similarities,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn select_row_orders_and_breaks_ties_by_index() {
        let mut heap = BinaryHeap::new();
        let mut out = Vec::new();
        select_row(&[0.5, 0.9, 0.5, 0.9, 0.1], 3, &mut heap, &mut out);
        let got: Vec<(usize, f32)> = out.iter().map(|c| (c.idx, c.sim)).collect();
        assert_eq!(got, vec![(1, 0.9), (3, 0.9), (0, 0.5)]);
    }

    #[test]
    fn select_row_k_equal_len_returns_all_sorted() {
        let mut heap = BinaryHeap::new();
        let mut out = Vec::new();
        select_row(&[0.1, -0.2, 0.3], 3, &mut heap, &mut out);
        let idx: Vec<usize> = out.iter().map(|c| c.idx).collect();
        assert_eq!(idx, vec![2, 0, 1]);
    }
}
