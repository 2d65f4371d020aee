//! The precision a training run asks for (`--precision`, `precision` in configs), and the
//! graph IR's [`Compute`] mode it compiles to.

use patchmix_export::graph::{Compute, DType};

/// The precision a training run asks for (`--precision`).
///
/// # Examples
/// ```
/// use patchmix_export::graph::{Compute, DType};
/// use patchmix_train::step::Precision;
/// let p: Precision = "bf16".parse().unwrap();
/// assert_eq!(p.low_dtype(), Some(DType::BF16));
/// assert_eq!(p.compute(true), Compute::Emulated(DType::BF16));
/// assert_eq!(p.to_string(), "bf16");
/// ```
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32.
    #[default]
    Fp32,
    /// Matrix products in bfloat16 (f32 accumulation), no loss scaling.
    Bf16,
    /// Matrix products in IEEE half, with dynamic loss scaling.
    Fp16,
}

/// A precision name that is not `fp32`, `bf16` or `fp16`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("unknown precision `{0}` (expected fp32, bf16 or fp16)")]
pub struct UnknownPrecision(pub String);

impl Precision {
    /// The half-precision element type, `None` for f32.
    pub fn low_dtype(self) -> Option<DType> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(DType::BF16),
            Precision::Fp16 => Some(DType::F16),
        }
    }

    /// The name used on the command line and in configs.
    pub fn name(self) -> &'static str {
        match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        }
    }

    /// How the matrix products of a step in this precision are computed: in its low type
    /// natively, or emulated in f32 kernels when `emulate` is set.
    pub fn compute(self, emulate: bool) -> Compute {
        Compute::of(self.low_dtype(), emulate)
    }
}

impl std::str::FromStr for Precision {
    type Err = UnknownPrecision;

    fn from_str(s: &str) -> Result<Precision, UnknownPrecision> {
        match s {
            "fp32" | "f32" => Ok(Precision::Fp32),
            "bf16" => Ok(Precision::Bf16),
            "fp16" | "f16" => Ok(Precision::Fp16),
            other => Err(UnknownPrecision(other.to_string())),
        }
    }
}

impl std::fmt::Display for Precision {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn precision_names_parse_back() {
        for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
            assert_eq!(p.name().parse::<Precision>().unwrap(), p);
        }
        assert!(
            "int8"
                .parse::<Precision>()
                .unwrap_err()
                .to_string()
                .contains("fp32, bf16 or fp16")
        );
        assert_eq!(
            Precision::Bf16.compute(true),
            Compute::Emulated(DType::BF16)
        );
        assert_eq!(Precision::Fp16.compute(false), Compute::Native(DType::F16));
        assert_eq!(Precision::Fp32.compute(true), Compute::F32);
    }
}
