//! Element types and shapes of graph values.

use std::fmt;

/// Element type of a graph value. The discriminants are ONNX `TensorProto.DataType` codes.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub enum DType {
    /// 32-bit float (the default).
    #[default]
    F32,
    /// 64-bit float (used by the gradient checks).
    F64,
    /// 16-bit IEEE float.
    F16,
    /// bfloat16.
    BF16,
    /// 64-bit signed integer (indices, shapes).
    I64,
    /// Boolean (comparison results).
    Bool,
}

impl DType {
    /// The ONNX `TensorProto.DataType` code.
    pub fn onnx_code(self) -> i32 {
        match self {
            DType::F32 => 1,
            DType::Bool => 9,
            DType::I64 => 7,
            DType::F16 => 10,
            DType::F64 => 11,
            DType::BF16 => 16,
        }
    }

    /// Whether values of this type can carry gradients.
    pub fn is_float(self) -> bool {
        matches!(self, DType::F32 | DType::F64 | DType::F16 | DType::BF16)
    }
}

/// One dimension: `n` or `n·batch`, where `batch` is the single symbolic dimension a graph may
/// have (the dynamic batch size of exported encoders). Training graphs are fully static.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Dim {
    /// The constant factor.
    pub n: usize,
    /// Whether the dimension is multiplied by the symbolic batch size.
    pub batch: bool,
}

impl Dim {
    /// A fixed dimension.
    pub const fn fixed(n: usize) -> Dim {
        Dim { n, batch: false }
    }

    /// The symbolic batch dimension.
    pub const BATCH: Dim = Dim { n: 1, batch: true };

    /// The fixed size, if the dimension is not symbolic.
    pub fn as_fixed(self) -> Option<usize> {
        (!self.batch).then_some(self.n)
    }
}

impl From<usize> for Dim {
    fn from(n: usize) -> Dim {
        Dim::fixed(n)
    }
}

impl fmt::Display for Dim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.batch, self.n) {
            (false, n) => write!(f, "{n}"),
            (true, 1) => write!(f, "batch"),
            (true, n) => write!(f, "batch*{n}"),
        }
    }
}

/// A shape: one [`Dim`] per axis.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Shape(pub Vec<Dim>);

impl Shape {
    /// A fully static shape.
    pub fn fixed(dims: &[usize]) -> Shape {
        Shape(dims.iter().map(|&n| Dim::fixed(n)).collect())
    }

    /// The rank.
    pub fn rank(&self) -> usize {
        self.0.len()
    }

    /// The static dimensions, or `None` if any dimension is symbolic.
    pub fn as_fixed(&self) -> Option<Vec<usize>> {
        self.0.iter().map(|d| d.as_fixed()).collect()
    }

    /// The number of elements as a `Dim` (`None` if it would need `batch²`).
    pub fn numel(&self) -> Option<Dim> {
        let mut acc = Dim::fixed(1);
        for d in &self.0 {
            if acc.batch && d.batch {
                return None;
            }
            acc = Dim {
                n: acc.n * d.n,
                batch: acc.batch || d.batch,
            };
        }
        Some(acc)
    }
}

impl fmt::Display for Shape {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "[")?;
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                write!(f, ", ")?;
            }
            write!(f, "{d}")?;
        }
        write!(f, "]")
    }
}
