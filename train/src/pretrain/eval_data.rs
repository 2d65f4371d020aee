//! The held-out data of the kNN monitor and the final evaluation: which data that is when the
//! training data changes, and the check that its classes are the training data's.
//!
//! A preset's `eval_data` belongs to the preset's `data`. When the training data is given (by
//! `--data` or the config file's `data`) and the eval data is not (by `--eval-data` or the
//! config file's `eval_data`), the eval data becomes the same dataset's test split where it
//! has one ([`DatasetRef::test_split`] says what that is for each format); otherwise the
//! monitor and the final evaluation are off, with one warning.

use super::PretrainConfig;
use patchmix_export::data::{Dataset, DatasetKind, DatasetRef};

/// Which of the data fields the user set (by a flag or in the config file) rather than
/// inheriting them from the preset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct GivenData {
    /// `--data` or the file's `data`.
    pub data: bool,
    /// `--eval-data` or the file's `eval_data`.
    pub eval_data: bool,
}

/// What [`follow_training_data`] decided.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EvalChoice {
    /// The eval data stays as configured (the training data was not given, or the eval data
    /// was).
    Unchanged,
    /// The eval data is now the training dataset's test split.
    TestSplit(String),
    /// The training data has no test split: the monitor and the final evaluation are off.
    Off,
    /// The training data cannot be located; its error comes when it is opened, and there is
    /// no eval data meanwhile.
    Unknown,
}

/// Applies the rule of this module to `cfg` (see the module documentation), logging the
/// choice: `info` for a test split, one `warn` when the evaluation is off.
///
/// # Examples
///
/// ```
/// use patchmix_train::pretrain::PretrainConfig;
/// use patchmix_train::pretrain::eval_data::{EvalChoice, GivenData, follow_training_data};
///
/// let mut c = PretrainConfig::preset("demo").unwrap();
/// c.data = "synthetic:64,size=8".into();
/// let given = GivenData { data: true, eval_data: false };
/// let choice = follow_training_data(&mut c, given);
/// assert_eq!(choice, EvalChoice::TestSplit("synthetic:64,size=8:test".into()));
/// assert_eq!(c.eval_data.as_deref(), Some("synthetic:64,size=8:test"));
/// ```
pub fn follow_training_data(cfg: &mut PretrainConfig, given: GivenData) -> EvalChoice {
    if !given.data || given.eval_data {
        return EvalChoice::Unchanged;
    }
    let test = cfg.data.parse::<DatasetRef>().and_then(|r| r.test_split());
    match test {
        Ok(Some(t)) => {
            let t = t.to_string();
            log::info!(
                "evaluating on {t}, the test split of the training data {} (give --eval-data to choose other data)",
                cfg.data
            );
            cfg.eval_data = Some(t.clone());
            EvalChoice::TestSplit(t)
        }
        Ok(None) => {
            log::warn!(
                "the training data {} has no separate test split (MNIST t10k-* files, CIFAR test_batch.bin or test.bin, or test/ or val/ beside train/ in an image folder); the kNN monitor and the final evaluation are off (give --eval-data PATH:test to turn them on)",
                cfg.data
            );
            cfg.eval_data = None;
            EvalChoice::Off
        }
        Err(_) => {
            cfg.eval_data = None;
            EvalChoice::Unknown
        }
    }
}

/// A kNN bank (the training data) and queries (the eval data) that cannot be scored together.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum EvalDataError {
    /// Different numbers of classes.
    #[error(
        "eval data {queries} has {query_classes} classes but the training data {bank} has {bank_classes}; the kNN evaluation needs the same classes (give --eval-data from the same dataset as --data)"
    )]
    ClassCount {
        /// The training data (the bank).
        bank: String,
        /// Its number of classes.
        bank_classes: usize,
        /// The eval data (the queries).
        queries: String,
        /// Its number of classes.
        query_classes: usize,
    },
    /// The same number of classes under other names (an image folder on either side).
    #[error(
        "eval data {queries} names its classes differently from the training data {bank} (`{query_class}` vs `{bank_class}`); the kNN evaluation needs the same classes (give --eval-data from the same dataset as --data)"
    )]
    ClassNames {
        /// The training data (the bank).
        bank: String,
        /// Its first class whose name differs.
        bank_class: String,
        /// The eval data (the queries).
        queries: String,
        /// The queries' class of the same label.
        query_class: String,
    },
}

/// Checks that the training data (the kNN bank, `bank` its spec) and the eval data (the
/// queries, `queries` its spec) label the same classes: the same number, and, when either is
/// an image folder (whose class names are its folder names), the same names in label order.
///
/// # Errors
///
/// [`EvalDataError`] naming both datasets and what differs.
///
/// # Examples
///
/// ```
/// use patchmix_export::data::Dataset;
/// use patchmix_train::pretrain::eval_data::check_classes;
///
/// let ten = Dataset::synthetic("synthetic:20".parse()?, Default::default());
/// let five = Dataset::synthetic("synthetic:20,classes=5".parse()?, Default::default());
/// assert!(check_classes(&ten, "a", &ten, "a").is_ok());
/// assert!(check_classes(&ten, "a", &five, "b").unwrap_err().to_string().contains("5 classes"));
/// # Ok::<(), patchmix_export::data::DataError>(())
/// ```
pub fn check_classes(
    bank: &Dataset,
    bank_spec: &str,
    queries: &Dataset,
    queries_spec: &str,
) -> Result<(), EvalDataError> {
    if bank.num_classes() != queries.num_classes() {
        return Err(EvalDataError::ClassCount {
            bank: bank_spec.into(),
            bank_classes: bank.num_classes(),
            queries: queries_spec.into(),
            query_classes: queries.num_classes(),
        });
    }
    let folder = [bank, queries]
        .iter()
        .any(|d| d.kind() == DatasetKind::ImageFolder);
    if let Some((b, q)) = bank
        .class_names()
        .iter()
        .zip(queries.class_names())
        .find(|(b, q)| b != q)
        .filter(|_| folder)
    {
        return Err(EvalDataError::ClassNames {
            bank: bank_spec.into(),
            bank_class: b.clone(),
            queries: queries_spec.into(),
            query_class: q.clone(),
        });
    }
    Ok(())
}
