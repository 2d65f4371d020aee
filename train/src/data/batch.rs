//! A prepared training batch.

use ndarray::Array4;

/// One batch of the loader: two global views, optional local views, labels.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The epoch it belongs to.
    pub epoch: u64,
    /// Its step within the epoch (0-based).
    pub step: usize,
    /// Dataset indices of its samples, in batch order.
    pub indices: Vec<usize>,
    /// Their labels (kNN / monitoring only; the pretraining loss does not use them).
    pub labels: Vec<u32>,
    /// View 1, normalised, `[B, 3, size, size]`.
    pub view1: Array4<f32>,
    /// View 2, normalised, `[B, 3, size, size]`.
    pub view2: Array4<f32>,
    /// Local crops, each `[B, 3, local_size, local_size]` (empty without multi-crop).
    pub locals: Vec<Array4<f32>>,
}

impl Batch {
    /// Number of samples.
    pub fn len(&self) -> usize {
        self.indices.len()
    }

    /// Whether the batch is empty (never, for batches from the loader).
    pub fn is_empty(&self) -> bool {
        self.indices.is_empty()
    }
}
