//! The endpoints: `POST /v1/embed`, `POST /v1/search`, `POST /v1/index`, `GET /healthz`,
//! `GET /metrics`, and the JSON answers to unknown paths and methods.
//!
//! Bodies are read as bytes and parsed here (not by axum's `Json` extractor) so that every
//! rejection — too large, wrong content type, bad JSON, bad base64 — is a [`ServeError`] and
//! answered as `{"error": …}`. Decoding and preprocessing run on blocking threads, the
//! encoder behind the [`Batcher`](super::batcher::Batcher), exact search on a blocking thread.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use ndarray::{Array2, Array4};
use patchmix_export::index::Hit;
use patchmix_export::knn::l2_normalize_rows;

use super::AppState;
use super::error::ServeError;
use crate::query::{decode_image, preprocess_batch};

/// What a body holds, by its content type.
enum Body {
    /// Encoded image bytes (`image/png`, `image/jpeg`, `application/octet-stream`).
    Image(Bytes),
    /// A JSON document (`application/json`).
    Json(Bytes),
}

/// The body's bytes, or the reason they could not be read (413 past `--max-body-bytes`).
fn body_bytes(body: Result<Bytes, BytesRejection>, max: usize) -> Result<Bytes, ServeError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServeError::PayloadTooLarge(format!(
                "the body is larger than the server's limit of {max} bytes (--max-body-bytes)"
            ))
        } else {
            ServeError::BadRequest(format!("cannot read the body: {}", r.body_text()))
        }
    })
}

/// Classifies the body by its `Content-Type`; `json_use` says what the JSON must hold.
fn classify(headers: &HeaderMap, bytes: Bytes, json_use: &str) -> Result<Body, ServeError> {
    let expected =
        format!("send image/png or image/jpeg bytes, or application/json with {json_use}");
    let Some(value) = headers.get(header::CONTENT_TYPE) else {
        return Err(ServeError::UnsupportedMediaType(format!(
            "no Content-Type header; {expected}"
        )));
    };
    let mime = value
        .to_str()
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match mime.as_str() {
        "image/png" | "image/jpeg" | "image/jpg" | "application/octet-stream" => {
            Ok(Body::Image(bytes))
        }
        "application/json" => Ok(Body::Json(bytes)),
        other => Err(ServeError::UnsupportedMediaType(format!(
            "Content-Type {other:?} is not accepted; {expected}"
        ))),
    }
}

/// Parses a JSON body into `T`, naming what was expected.
fn parse_json<T: serde::de::DeserializeOwned>(bytes: &[u8], shape: &str) -> Result<T, ServeError> {
    serde_json::from_slice(bytes)
        .map_err(|e| ServeError::BadRequest(format!("bad JSON body ({e}); expected {shape}")))
}

/// Decodes base64 image `i` of a JSON batch.
fn base64_image(i: usize, field: &str, text: &str) -> Result<Bytes, ServeError> {
    base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .map(Bytes::from)
        .map_err(|e| ServeError::BadRequest(format!("{field}[{i}]: not base64: {e}")))
}

/// Decodes and preprocesses `images` (named for errors) on a blocking thread; one batch.
async fn prepare(
    state: &AppState,
    images: Vec<(String, Bytes)>,
) -> Result<Array4<f32>, ServeError> {
    let limits = state.limits;
    let pre = state.preprocess;
    tokio::task::spawn_blocking(move || {
        let decoded = images
            .iter()
            .map(|(what, bytes)| {
                decode_image(bytes, limits).map_err(|source| ServeError::Image {
                    what: what.clone(),
                    source,
                })
            })
            .collect::<Result<Vec<_>, _>>()?;
        preprocess_batch(&pre, &decoded).map_err(|e| ServeError::Internal(e.to_string()))
    })
    .await
    .map_err(|e| ServeError::Internal(format!("the decoding thread failed: {e}")))?
}

/// Embeds `images` through the batcher.
async fn embed_images(
    state: &AppState,
    images: Vec<(String, Bytes)>,
) -> Result<Array2<f32>, ServeError> {
    let batch = prepare(state, images).await?;
    state.batcher.embed(batch).await
}

/// `{"images": ["<base64>", …]}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct EmbedRequest {
    images: Vec<String>,
}

/// `{"dim": D, "vectors": [[…], …]}`, one row per image, in order.
#[derive(serde::Serialize)]
pub(super) struct EmbedResponse {
    dim: usize,
    vectors: Vec<Vec<f32>>,
}

/// `POST /v1/embed`: image bytes, or `{"images": [base64, …]}` → the features, L2-normalised
/// as `patchmix embed` writes them.
pub(super) async fn embed(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<EmbedResponse>, ServeError> {
    let bytes = body_bytes(body, state.max_body_bytes)?;
    let images = match classify(&headers, bytes, "{\"images\": [base64, …]}")? {
        Body::Image(b) => vec![("the body".to_string(), b)],
        Body::Json(b) => {
            let req: EmbedRequest = parse_json(&b, "{\"images\": [base64, …]}")?;
            if req.images.is_empty() {
                return Err(ServeError::BadRequest("\"images\" is empty".into()));
            }
            req.images
                .iter()
                .enumerate()
                .map(|(i, t)| Ok((format!("images[{i}]"), base64_image(i, "images", t)?)))
                .collect::<Result<_, ServeError>>()?
        }
    };
    let mut features = embed_images(&state, images).await?;
    // L2-normalised, as `patchmix embed` writes them (the same function).
    l2_normalize_rows(&mut features, "the encoder's features")
        .map_err(|e| ServeError::Internal(e.to_string()))?;
    Ok(Json(EmbedResponse {
        dim: features.ncols(),
        vectors: features.outer_iter().map(|r| r.to_vec()).collect(),
    }))
}

/// The query string of `/v1/search`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchParams {
    /// Neighbours (default 10).
    k: Option<usize>,
    /// Only items of this class (name or number).
    label: Option<String>,
}

/// `{"vector": [f32; D]}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct VectorQuery {
    vector: Vec<f32>,
}

/// `{"results": [{"id", "label", "score"}, …]}`, best first.
#[derive(serde::Serialize)]
pub(super) struct SearchResponse {
    results: Vec<Hit>,
}

/// `POST /v1/search?k=10[&label=L]`: image bytes or `{"vector": […]}` → the `k` nearest
/// gallery items.
pub(super) async fn search(
    State(state): State<Arc<AppState>>,
    params: Result<Query<SearchParams>, QueryRejection>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<SearchResponse>, ServeError> {
    let Query(params) = params.map_err(|e| {
        ServeError::BadRequest(format!(
            "bad query string ({}); expected ?k=N[&label=L]",
            e.body_text()
        ))
    })?;
    let k = params.k.unwrap_or(10);
    if k == 0 {
        return Err(ServeError::BadRequest(
            "k = 0: ask for at least 1 neighbour".into(),
        ));
    }
    // Cheap checks first: a bad label is refused before the encoder runs.
    let label = match &params.label {
        Some(l) => Some(
            state
                .read_gallery()?
                .resolve_label(l)
                .map_err(ServeError::from_gallery)?,
        ),
        None => None,
    };
    let bytes = body_bytes(body, state.max_body_bytes)?;
    let query = match classify(&headers, bytes, "{\"vector\": [f32, …]}")? {
        Body::Image(b) => embed_images(&state, vec![("the body".to_string(), b)]).await?,
        Body::Json(b) => {
            let q: VectorQuery = parse_json(&b, "{\"vector\": [f32, …]}")?;
            let n = q.vector.len();
            Array2::from_shape_vec((1, n), q.vector)
                .map_err(|e| ServeError::Internal(e.to_string()))?
        }
    };
    let method = state.search;
    let gallery = Arc::clone(&state.gallery);
    let hits = tokio::task::spawn_blocking(move || {
        let g = gallery
            .read()
            .map_err(|_| ServeError::Internal("the gallery lock is poisoned".into()))?;
        g.search(query.view(), k, label, method)
            .map_err(ServeError::from_gallery)
    })
    .await
    .map_err(|e| ServeError::Internal(format!("the search thread failed: {e}")))??;
    Ok(Json(SearchResponse {
        results: hits.into_iter().next().unwrap_or_default(),
    }))
}

/// One item to add.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct NewItem {
    /// Its id (unique in the gallery).
    id: String,
    /// Its class name (a new name adds a class).
    label: String,
    /// The image, base64.
    image: String,
}

/// `{"items": [{"id", "label", "image"}, …]}`.
#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct IndexRequest {
    items: Vec<NewItem>,
}

/// `{"added": M, "total": N}`.
#[derive(serde::Serialize)]
pub(super) struct IndexResponse {
    added: usize,
    total: usize,
}

const INDEX_SHAPE: &str = "{\"items\": [{\"id\": …, \"label\": …, \"image\": base64}, …]}";

/// `POST /v1/index`: `{"items": [{"id", "label", "image"}, …]}` → embeds the images, adds them
/// to the gallery (all or nothing) and rewrites the gallery file atomically before answering.
pub(super) async fn index(
    State(state): State<Arc<AppState>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<IndexResponse>, ServeError> {
    let bytes = body_bytes(body, state.max_body_bytes)?;
    let Body::Json(b) = classify(&headers, bytes, INDEX_SHAPE)? else {
        return Err(ServeError::UnsupportedMediaType(format!(
            "/v1/index takes application/json: {INDEX_SHAPE}"
        )));
    };
    let req: IndexRequest = parse_json(&b, INDEX_SHAPE)?;
    if req.items.is_empty() {
        return Err(ServeError::BadRequest("\"items\" is empty".into()));
    }
    let ids: Vec<String> = req.items.iter().map(|it| it.id.clone()).collect();
    check_new_ids(&state, &ids)?;
    let images = req
        .items
        .iter()
        .enumerate()
        .map(|(i, it)| Ok((format!("items[{i}]"), base64_image(i, "items", &it.image)?)))
        .collect::<Result<Vec<_>, ServeError>>()?;
    let features = embed_images(&state, images).await?;
    let labels: Vec<String> = req.items.into_iter().map(|it| it.label).collect();
    let added = ids.len();
    let st = Arc::clone(&state);
    let total = tokio::task::spawn_blocking(move || st.add_and_save(&features, &labels, &ids))
        .await
        .map_err(|e| ServeError::Internal(format!("the index thread failed: {e}")))??;
    Ok(Json(IndexResponse { added, total }))
}

/// Refuses ids that are empty, repeated or already in the gallery (before any embedding).
fn check_new_ids(state: &AppState, ids: &[String]) -> Result<(), ServeError> {
    let g = state.read_gallery()?;
    let mut seen = std::collections::HashSet::new();
    for (i, id) in ids.iter().enumerate() {
        if id.is_empty() {
            return Err(ServeError::BadRequest(format!(
                "items[{i}]: the id is empty"
            )));
        }
        if g.row_of(id).is_some() || !seen.insert(id.as_str()) {
            return Err(ServeError::Conflict(format!(
                "items[{i}]: id {id:?} is already in the gallery (or repeated); ids must be unique"
            )));
        }
    }
    Ok(())
}

/// `{"status": "ok", "items": N, "dim": D}`.
#[derive(serde::Serialize)]
pub(super) struct Health {
    status: &'static str,
    items: usize,
    dim: usize,
}

/// `GET /healthz`: the server answers and its gallery is readable.
pub(super) async fn healthz(
    State(state): State<Arc<AppState>>,
) -> Result<Json<Health>, ServeError> {
    let g = state.read_gallery()?;
    Ok(Json(Health {
        status: "ok",
        items: g.len(),
        dim: g.dim(),
    }))
}

/// `GET /metrics`: Prometheus text.
pub(super) async fn metrics(State(state): State<Arc<AppState>>) -> Result<Response, ServeError> {
    state
        .metrics
        .queue_depth
        .set(i64::try_from(state.batcher.depth()).unwrap_or(i64::MAX));
    let text = state
        .metrics
        .render()
        .map_err(|e| ServeError::Internal(format!("cannot render the metrics: {e}")))?;
    Ok(([(header::CONTENT_TYPE, prometheus::TEXT_FORMAT)], text).into_response())
}

/// Unknown paths.
pub(super) async fn not_found() -> ServeError {
    ServeError::NotFound(
        "no such endpoint; the endpoints are POST /v1/embed, POST /v1/search, POST /v1/index, \
         GET /healthz, GET /metrics"
            .into(),
    )
}

/// Known paths with the wrong method.
pub(super) async fn method_not_allowed() -> ServeError {
    ServeError::MethodNotAllowed(
        "wrong method: /v1/embed, /v1/search and /v1/index take POST; /healthz and /metrics GET"
            .into(),
    )
}
