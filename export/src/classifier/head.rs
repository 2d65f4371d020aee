//! The classification head `Linear(D, classes)` in timm's layout.

use ndarray::{Array1, Array2, ArrayD, IxDyn};

use super::ClassifierError;
use crate::weights::StateDict;

/// The timm name of the head's weight, `[classes, D]`.
pub const HEAD_WEIGHT: &str = "head.weight";
/// The timm name of the head's bias, `[classes]`.
pub const HEAD_BIAS: &str = "head.bias";

/// A linear head `logits = features · weightᵀ + bias`, in PyTorch's `nn.Linear` layout.
#[derive(Debug, Clone, PartialEq)]
pub struct ClassifierHead {
    /// `[classes, D]`.
    pub weight: Array2<f32>,
    /// `[classes]`.
    pub bias: Array1<f32>,
}

impl ClassifierHead {
    /// A head from its weight `[classes, D]` and bias `[classes]`.
    ///
    /// # Errors
    /// [`ClassifierError::Head`] when the bias length is not the weight's row count, or there
    /// are no classes or no inputs.
    ///
    /// # Examples
    /// ```
    /// use ndarray::{Array1, Array2};
    /// use patchmix_export::classifier::ClassifierHead;
    /// let h = ClassifierHead::new(Array2::zeros((10, 192)), Array1::zeros(10))?;
    /// assert_eq!((h.classes(), h.dim()), (10, 192));
    /// assert!(ClassifierHead::new(Array2::zeros((10, 192)), Array1::zeros(9)).is_err());
    /// # Ok::<(), patchmix_export::classifier::ClassifierError>(())
    /// ```
    pub fn new(weight: Array2<f32>, bias: Array1<f32>) -> Result<Self, ClassifierError> {
        let (c, d) = weight.dim();
        if c == 0 || d == 0 {
            return Err(ClassifierError::Head(format!(
                "{HEAD_WEIGHT} is [{c}, {d}]; it needs at least one class and one input"
            )));
        }
        if bias.len() != c {
            return Err(ClassifierError::Head(format!(
                "{HEAD_BIAS} has {} entries but {HEAD_WEIGHT} has {c} rows (classes)",
                bias.len()
            )));
        }
        Ok(Self { weight, bias })
    }

    /// The head of a timm state dict (`head.weight`, `head.bias`).
    ///
    /// # Errors
    /// [`ClassifierError::Head`] when a key is missing or has the wrong rank, naming `origin`
    /// (the file the state dict came from).
    ///
    /// # Examples
    /// ```
    /// use ndarray::ArrayD;
    /// use patchmix_export::classifier::ClassifierHead;
    /// use patchmix_export::weights::StateDict;
    /// let sd = StateDict::from([
    ///     ("head.weight".to_string(), ArrayD::zeros(vec![3, 8])),
    ///     ("head.bias".to_string(), ArrayD::zeros(vec![3])),
    /// ]);
    /// assert_eq!(ClassifierHead::from_state_dict(&sd, "h.safetensors")?.classes(), 3);
    /// # Ok::<(), patchmix_export::classifier::ClassifierError>(())
    /// ```
    pub fn from_state_dict(sd: &StateDict, origin: &str) -> Result<Self, ClassifierError> {
        let get = |name: &str| {
            sd.get(name)
                .ok_or_else(|| ClassifierError::Head(format!("{origin}: `{name}` is missing")))
        };
        let (w, b) = (get(HEAD_WEIGHT)?, get(HEAD_BIAS)?);
        let weight = w
            .clone()
            .into_dimensionality::<ndarray::Ix2>()
            .map_err(|_| {
                ClassifierError::Head(format!(
                    "{origin}: `{HEAD_WEIGHT}` has shape {:?}, expected [classes, D]",
                    w.shape()
                ))
            })?;
        let bias = b
            .clone()
            .into_dimensionality::<ndarray::Ix1>()
            .map_err(|_| {
                ClassifierError::Head(format!(
                    "{origin}: `{HEAD_BIAS}` has shape {:?}, expected [classes]",
                    b.shape()
                ))
            })?;
        Self::new(weight, bias).map_err(|e| ClassifierError::Head(format!("{origin}: {e}")))
    }

    /// Number of classes.
    #[must_use]
    pub fn classes(&self) -> usize {
        self.weight.nrows()
    }

    /// Input width D.
    #[must_use]
    pub fn dim(&self) -> usize {
        self.weight.ncols()
    }

    /// The head as timm state-dict entries (`head.weight`, `head.bias`).
    #[must_use]
    pub fn to_state_dict(&self) -> StateDict {
        let w = ArrayD::from_shape_vec(
            IxDyn(&[self.classes(), self.dim()]),
            self.weight.iter().copied().collect(),
        )
        .expect("a [C, D] array has C·D elements");
        let b = self.bias.clone().into_dyn();
        StateDict::from([(HEAD_WEIGHT.to_string(), w), (HEAD_BIAS.to_string(), b)])
    }
}
