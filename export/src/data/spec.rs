//! Dataset references: `PATH`, `PATH:train`, `PATH:test`, `synthetic:N,...[:split]`.

use std::fmt;
use std::path::PathBuf;
use std::str::FromStr;

use super::DataError;

/// Which half of a dataset to read.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Split {
    /// The training split (MNIST `train-*`, CIFAR-10 `data_batch_*`, CIFAR-100 `train.bin`, `train/`).
    #[default]
    Train,
    /// The test split (MNIST `t10k-*`, CIFAR-10 `test_batch.bin`, CIFAR-100 `test.bin`, `test/` or `val/`).
    Test,
}

impl fmt::Display for Split {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Split::Train => "train",
            Split::Test => "test",
        })
    }
}

impl FromStr for Split {
    type Err = DataError;

    /// `train`, or `test` (alias `val`), case-insensitive.
    fn from_str(s: &str) -> Result<Self, DataError> {
        match s.to_ascii_lowercase().as_str() {
            "train" => Ok(Split::Train),
            "test" | "val" => Ok(Split::Test),
            _ => Err(DataError::BadSpec {
                spec: s.to_owned(),
                detail: "unknown split; use train or test (val is an alias of test)".into(),
            }),
        }
    }
}

/// A dataset location plus a split, as given on the command line.
///
/// Syntax: `PATH`, `PATH:train` or `PATH:test` (`:val` is an alias of `:test`); the split
/// defaults to train. `PATH` is a folder or file of a supported format (see
/// [`Dataset::open`](super::Dataset::open)) or `synthetic:N[,size=S][,classes=C][,seed=K]`.
/// A colon followed by text that contains a path separator is part of the path.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::{DatasetRef, Split};
///
/// let r: DatasetRef = "data/mnist10k:test".parse().unwrap();
/// assert_eq!(r.path, std::path::PathBuf::from("data/mnist10k"));
/// assert_eq!(r.split, Split::Test);
/// let r: DatasetRef = "synthetic:64,size=8".parse().unwrap();
/// assert_eq!(r.split, Split::Train);
/// assert!("data/cifar:tset".parse::<DatasetRef>().is_err());
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct DatasetRef {
    /// The folder, file, or `synthetic:...` spec.
    pub path: PathBuf,
    /// The split to read.
    pub split: Split,
}

impl DatasetRef {
    /// A reference to `path` with `split`.
    pub fn new(path: impl Into<PathBuf>, split: Split) -> Self {
        Self {
            path: path.into(),
            split,
        }
    }

    /// The same location with another split.
    #[must_use]
    pub fn with_split(&self, split: Split) -> Self {
        Self::new(self.path.clone(), split)
    }
}

impl fmt::Display for DatasetRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.path.display(), self.split)
    }
}

impl FromStr for DatasetRef {
    type Err = DataError;

    fn from_str(s: &str) -> Result<Self, DataError> {
        let bad = |detail: &str| DataError::BadSpec {
            spec: s.to_owned(),
            detail: format!("{detail}; use PATH, PATH:train or PATH:test"),
        };
        if s.trim().is_empty() {
            return Err(bad("empty dataset path"));
        }
        // `synthetic:N,...` has a colon of its own: only a second one introduces the split.
        let (head, body) = match s.strip_prefix(super::SyntheticSpec::PREFIX) {
            Some(rest) => (super::SyntheticSpec::PREFIX, rest),
            None => ("", s),
        };
        let Some((path, suffix)) = body.rsplit_once(':') else {
            return Ok(Self::new(s, Split::Train));
        };
        if suffix.contains(['/', '\\']) {
            // A colon inside a path (e.g. `C:\data` or `/mnt/a:b/c`).
            return Ok(Self::new(s, Split::Train));
        }
        if path.is_empty() && head.is_empty() {
            return Err(bad("empty dataset path before ':'"));
        }
        let split = suffix.parse::<Split>().map_err(|_| {
            bad(&format!(
                "'{suffix}' after the last ':' is not a split (train, test or val)"
            ))
        })?;
        Ok(Self::new(format!("{head}{path}"), split))
    }
}
