//! Evaluation of the base encoder during and after pretraining: weighted kNN of its CLS
//! features (DINO's protocol) on a held-out split, through an exported ONNX encoder in ORT.

use super::error::PretrainError;
use crate::step::HostState;
use crate::step::{StateLayout, to_named};
use ndarray::Array4;
use patchmix_export::data::{Dataset, Preprocess};
use patchmix_export::knn::{DEFAULT_KS, DINO_TEMPERATURE, FeatureIndex, KnnReport, knn_report};
use patchmix_export::runtime::Embed;
use patchmix_export::vit::VitConfig;
use patchmix_export::weights::StateDict;

/// The base encoder's weights under timm names.
pub fn encoder_weights(layout: &StateLayout, h: &HostState) -> StateDict {
    to_named(&layout.params, &h.params, "")
        .into_iter()
        .filter_map(|(k, v)| {
            k.strip_prefix("base_encoder.")
                .filter(|r| !r.starts_with("head."))
                .map(|r| (r.to_string(), v))
        })
        .collect()
}

/// Embeds up to `limit` images of a dataset (all when `None`), preprocessed to `img`.
///
/// # Errors
/// Data or runtime errors.
pub fn embed_dataset(
    enc: &mut dyn Embed,
    ds: &Dataset,
    img: usize,
    limit: Option<usize>,
) -> Result<(ndarray::Array2<f32>, Vec<u32>), PretrainError> {
    let n = limit.map_or(ds.len(), |l| l.min(ds.len()));
    let pre = Preprocess::new(img as u32, img as u32);
    let per = pre.floats_per_image();
    let mut feats = Vec::new();
    let batch = 256;
    let mut start = 0;
    while start < n {
        let idx: Vec<usize> = (start..(start + batch).min(n)).collect();
        let mut buf = vec![0.0f32; idx.len() * per];
        pre.fill_batch(ds, &idx, &mut buf)?;
        let x = Array4::from_shape_vec((idx.len(), 3, img, img), buf).map_err(|source| {
            PretrainError::Shape {
                what: "a batch of images",
                source,
            }
        })?;
        feats.push(enc.embed(x.view())?);
        start += batch;
    }
    let views: Vec<_> = feats.iter().map(|f| f.view()).collect();
    let all =
        ndarray::concatenate(ndarray::Axis(0), &views).map_err(|source| PretrainError::Shape {
            what: "the features",
            source,
        })?;
    Ok((all, ds.labels()[..n].to_vec()))
}

/// kNN accuracy of an encoder: train-split features as the bank, the eval split as queries.
///
/// # Errors
/// Data, runtime or kNN errors.
pub fn knn_eval(
    enc: &mut dyn Embed,
    img: usize,
    train: &Dataset,
    eval: &Dataset,
    train_limit: Option<usize>,
) -> Result<KnnReport, PretrainError> {
    let (tf, tl) = embed_dataset(enc, train, img, train_limit)?;
    let (qf, ql) = embed_dataset(enc, eval, img, None)?;
    let classes = train.num_classes().max(eval.num_classes());
    let index = FeatureIndex::new(tf, tl, Some(classes))?;
    let mut q = qf;
    patchmix_export::knn::l2_normalize_rows(&mut q, "test features")?;
    Ok(knn_report(
        &index,
        q.view(),
        &ql,
        &DEFAULT_KS,
        DINO_TEMPERATURE,
    )?)
}

/// An ORT encoder for the current weights.
///
/// # Errors
/// Graph or runtime errors.
pub fn ort_encoder(
    vit: &VitConfig,
    weights: &StateDict,
) -> Result<patchmix_export::runtime::OrtEncoder, PretrainError> {
    let g = patchmix_export::vit::encoder_graph(vit, weights, false)?;
    Ok(patchmix_export::runtime::OrtEncoder::from_bytes(
        &patchmix_export::onnx::to_onnx_bytes(&g),
    )?)
}

/// Raw normalised pixels, flattened, as features.
///
/// # Errors
/// Data errors.
pub fn pixel_features(
    ds: &Dataset,
    img: usize,
) -> Result<(ndarray::Array2<f32>, Vec<u32>), PretrainError> {
    let pre = Preprocess::new(img as u32, img as u32);
    let per = pre.floats_per_image();
    let idx: Vec<usize> = (0..ds.len()).collect();
    let mut buf = vec![0.0f32; idx.len() * per];
    pre.fill_batch(ds, &idx, &mut buf)?;
    let a = ndarray::Array2::from_shape_vec((idx.len(), per), buf).map_err(|source| {
        PretrainError::Shape {
            what: "the pixels",
            source,
        }
    })?;
    Ok((a, ds.labels().to_vec()))
}

/// kNN on raw pixels (the baseline every encoder is judged against).
///
/// # Errors
/// Data or kNN errors.
pub fn pixel_knn(train: &Dataset, eval: &Dataset, img: usize) -> Result<KnnReport, PretrainError> {
    let (tf, tl) = pixel_features(train, img)?;
    let (mut qf, ql) = pixel_features(eval, img)?;
    let classes = train.num_classes().max(eval.num_classes());
    let index = FeatureIndex::new(tf, tl, Some(classes))?;
    patchmix_export::knn::l2_normalize_rows(&mut qf, "test pixels")?;
    Ok(knn_report(
        &index,
        qf.view(),
        &ql,
        &DEFAULT_KS,
        DINO_TEMPERATURE,
    )?)
}
