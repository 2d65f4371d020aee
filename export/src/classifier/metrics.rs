//! Top-1/top-5 accuracy and the confusion matrix of a stream of logits.

use ndarray::ArrayView2;
use serde::Serialize;

use super::ClassifierError;
use crate::knn::class_rank;

/// The `k` of "top-5" with `classes` classes: `min(5, classes)`. With 5 classes or fewer every
/// label is within the top 5, so top-5 is 100 % by definition (as in `patchmix knn` and
/// `patchmix linear`); reports say so.
///
/// # Examples
/// ```
/// assert_eq!(patchmix_export::classifier::top5_k(10), 5);
/// assert_eq!(patchmix_export::classifier::top5_k(3), 3);
/// ```
#[must_use]
pub fn top5_k(classes: usize) -> usize {
    classes.min(5)
}

/// Counts of a classifier's predictions: the confusion matrix (rows: true class, columns:
/// predicted class, the prediction being the largest logit with ties to the lower class) and
/// the top-1/top-5 hits (a label is within the top k when fewer than k classes rank before it,
/// see [`class_rank`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Confusion {
    matrix: Vec<Vec<u64>>,
    top1: u64,
    top5: u64,
    count: u64,
}

impl Confusion {
    /// Empty counts over `classes` classes.
    #[must_use]
    pub fn new(classes: usize) -> Self {
        Self {
            matrix: vec![vec![0; classes]; classes],
            top1: 0,
            top5: 0,
            count: 0,
        }
    }

    /// Adds a batch of logits `[B, classes]` and its labels.
    ///
    /// # Errors
    /// [`ClassifierError::Scores`] when the widths or counts differ, a label is not below the
    /// class count, or a row holds a NaN or infinite logit (naming the row, counted from the
    /// first image added). Nothing is counted from a batch that fails.
    ///
    /// # Examples
    /// ```
    /// use ndarray::array;
    /// use patchmix_export::classifier::Confusion;
    /// let mut c = Confusion::new(3);
    /// c.add(array![[0.1f32, 2.0, 0.3], [1.0, 0.0, 0.5]].view(), &[1, 2])?;
    /// assert_eq!(c.matrix()[1][1], 1);
    /// assert_eq!(c.matrix()[2][0], 1);
    /// assert_eq!(c.top1(), 50.0);
    /// # Ok::<(), patchmix_export::classifier::ClassifierError>(())
    /// ```
    pub fn add(
        &mut self,
        logits: ArrayView2<'_, f32>,
        labels: &[u32],
    ) -> Result<(), ClassifierError> {
        let classes = self.classes();
        let (b, c) = logits.dim();
        if c != classes {
            return Err(ClassifierError::Scores(format!(
                "logits have {c} columns but the classifier has {classes} classes"
            )));
        }
        if labels.len() != b {
            return Err(ClassifierError::Scores(format!(
                "{b} rows of logits but {} labels",
                labels.len()
            )));
        }
        let mut ranked = Vec::with_capacity(b);
        for (i, (row, &y)) in logits.outer_iter().zip(labels).enumerate() {
            let image = self.count as usize + i;
            let y = y as usize;
            if y >= classes {
                return Err(ClassifierError::Scores(format!(
                    "image {image}: label {y} is not below the {classes} classes"
                )));
            }
            let row: Vec<f32> = row.to_vec();
            if row.iter().any(|v| !v.is_finite()) {
                return Err(ClassifierError::Scores(format!(
                    "image {image}: the model's logits are not finite (NaN or infinite)"
                )));
            }
            let predicted = (0..classes)
                .find(|&k| class_rank(&row, k) == 0)
                .expect("finite logits have a top class");
            ranked.push((y, predicted, class_rank(&row, y)));
        }
        let k5 = top5_k(classes);
        for (y, predicted, rank) in ranked {
            self.matrix[y][predicted] += 1;
            self.top1 += u64::from(rank < 1);
            self.top5 += u64::from(rank < k5);
            self.count += 1;
        }
        Ok(())
    }

    /// Number of classes.
    #[must_use]
    pub fn classes(&self) -> usize {
        self.matrix.len()
    }

    /// Images counted.
    #[must_use]
    pub fn count(&self) -> u64 {
        self.count
    }

    /// `matrix()[true][predicted]`: images of class `true` predicted as `predicted`.
    #[must_use]
    pub fn matrix(&self) -> &[Vec<u64>] {
        &self.matrix
    }

    /// Top-1 accuracy in percent (0 before any image).
    #[must_use]
    pub fn top1(&self) -> f64 {
        self.percent(self.top1)
    }

    /// Top-5 accuracy in percent (top-[`top5_k`] with fewer than 5 classes, so 100).
    #[must_use]
    pub fn top5(&self) -> f64 {
        self.percent(self.top5)
    }

    fn percent(&self, hits: u64) -> f64 {
        if self.count == 0 {
            0.0
        } else {
            100.0 * hits as f64 / self.count as f64
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::array;

    #[test]
    fn hand_worked_counts() {
        // 6 classes so that top-5 can miss. Row 0: label 0 ranks 5th-last (rank 5) -> miss.
        let z = array![
            [0.0f32, 1.0, 2.0, 3.0, 4.0, 5.0],
            [9.0, 1.0, 1.0, 1.0, 1.0, 1.0],
            [1.0, 3.0, 3.0, 0.0, 0.0, 0.0],
        ];
        let mut c = Confusion::new(6);
        c.add(z.view(), &[0, 0, 2]).unwrap();
        // Row 0 predicts 5, row 1 predicts 0, row 2 ties 1 and 2 -> 1.
        assert_eq!(c.matrix()[0][5], 1);
        assert_eq!(c.matrix()[0][0], 1);
        assert_eq!(c.matrix()[2][1], 1);
        assert_eq!(c.count(), 3);
        assert!((c.top1() - 100.0 / 3.0).abs() < 1e-12);
        assert!((c.top5() - 200.0 / 3.0).abs() < 1e-12);
    }

    #[test]
    fn bad_batches_are_errors_and_count_nothing() {
        let mut c = Confusion::new(3);
        assert!(c.add(array![[0.0f32, 1.0]].view(), &[0]).is_err());
        assert!(c.add(array![[0.0f32, 1.0, 2.0]].view(), &[3]).is_err());
        let e = c
            .add(
                array![[0.0f32, 1.0, 2.0], [f32::NAN, 0.0, 0.0]].view(),
                &[0, 1],
            )
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "image 1: the model's logits are not finite (NaN or infinite)"
        );
        assert_eq!(c.count(), 0);
        assert_eq!(c.top1(), 0.0);
    }
}
