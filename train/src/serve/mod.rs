//! `patchmix serve`: an HTTP retrieval service (axum on tokio) over a gallery index.
//!
//! * `POST /v1/embed` — PNG/JPEG bytes (`Content-Type: image/png|image/jpeg`), or
//!   `{"images": [base64, …]}` (`application/json`) → `{"dim": D, "vectors": [[…], …]}`;
//! * `POST /v1/search?k=10[&label=L]` — image bytes, or `{"vector": […]}` →
//!   `{"results": [{"id", "label", "score"}, …]}`, best first;
//! * `POST /v1/index` — `{"items": [{"id", "label", "image"}, …]}` → the images are embedded,
//!   added (all or nothing) and the gallery file is rewritten atomically before the answer;
//! * `GET /healthz`, `GET /metrics` (Prometheus text).
//!
//! Images are decoded under [`ImageLimits`] (checked from the header, before decoding) and
//! preprocessed with the gallery's preprocessing by [`crate::query`], the path
//! `patchmix search` uses. Encoder calls are batched dynamically ([`batcher`]). Every error is
//! `{"error": …}` with a 4xx status for bad input ([`ServeError`]).
//!
//! [`Server::start`] binds (port 0 for a free one), serves on the current tokio runtime and
//! returns the bound address; [`Server::shutdown`] stops accepting, finishes the requests in
//! flight and returns.

pub mod batcher;
mod error;
mod metrics;
mod routes;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use ndarray::Array2;
use patchmix_export::data::Preprocess;
use patchmix_export::index::{Gallery, SearchMethod};
use patchmix_export::runtime::Embed;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tower_http::timeout::TimeoutLayer;

pub use crate::query::ImageLimits;
pub use batcher::{BatchConfig, Batcher};
pub use error::ServeError;
pub use metrics::Metrics;

/// The settings of a server.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ServeConfig {
    /// Dynamic batching.
    pub batch: BatchConfig,
    /// Largest request body (413 above).
    pub max_body_bytes: usize,
    /// Largest decoded image (413 above, refused from the header).
    pub image_limits: ImageLimits,
    /// Longest a request may take (503 after).
    pub request_timeout: Duration,
    /// Exact search (default) or HNSW.
    pub search: SearchMethod,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            batch: BatchConfig::default(),
            max_body_bytes: 16 << 20,
            image_limits: ImageLimits::default(),
            request_timeout: Duration::from_secs(30),
            search: SearchMethod::Exact,
        }
    }
}

/// What the handlers share.
pub(crate) struct AppState {
    gallery: Arc<RwLock<Gallery>>,
    index_path: PathBuf,
    preprocess: Preprocess,
    batcher: Batcher,
    metrics: Metrics,
    limits: ImageLimits,
    max_body_bytes: usize,
    search: SearchMethod,
}

impl AppState {
    fn read_gallery(&self) -> Result<RwLockReadGuard<'_, Gallery>, ServeError> {
        self.gallery
            .read()
            .map_err(|_| ServeError::Internal("the gallery lock is poisoned".into()))
    }

    /// Adds items (labels by class name, new names appended) and rewrites the gallery file
    /// atomically; on a failed write the items are taken out again. Returns the new size.
    fn add_and_save(
        &self,
        features: &Array2<f32>,
        labels: &[String],
        ids: &[String],
    ) -> Result<usize, ServeError> {
        let mut g = self
            .gallery
            .write()
            .map_err(|_| ServeError::Internal("the gallery lock is poisoned".into()))?;
        let classes_before = g.classes().len();
        let label_ids: Vec<u32> = labels.iter().map(|l| g.class_label_or_insert(l)).collect();
        if let Err(e) = g.add(features.view(), &label_ids, ids) {
            if g.classes().len() != classes_before {
                // Rebuild the class list without the names just appended: reload is the
                // simple way to restore exactly what is on disk.
                *g = Gallery::load(&self.index_path, patchmix_export::index::AnnLoad::View)
                    .map_err(|e| ServeError::Internal(e.to_string()))?;
            }
            return Err(ServeError::from_gallery(e));
        }
        if let Err(e) = g.save(&self.index_path) {
            let refs: Vec<&str> = ids.iter().map(String::as_str).collect();
            let undo = g.remove(&refs);
            return Err(ServeError::Internal(format!(
                "cannot write the gallery, nothing was added: {e}{}",
                undo.err()
                    .map(|u| format!(" (and undoing it in memory failed: {u})"))
                    .unwrap_or_default()
            )));
        }
        Ok(g.len())
    }
}

/// A running server.
pub struct Server {
    addr: SocketAddr,
    metrics: Metrics,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<std::io::Result<()>>,
}

impl Server {
    /// Binds `addr` (port 0: any free port), and serves `gallery` (whose file is `index_path`;
    /// `/v1/index` rewrites it) with `encoder` on the current tokio runtime.
    ///
    /// The caller checks that `encoder` is the gallery's (see
    /// [`Gallery::check_model`]); its image side must be the gallery's crop.
    ///
    /// # Errors
    ///
    /// [`ServeError::Startup`] for an encoder of another image side, zero limits, or an address
    /// that cannot be bound.
    pub async fn start(
        addr: SocketAddr,
        config: ServeConfig,
        encoder: Box<dyn Embed + Send>,
        gallery: Gallery,
        index_path: PathBuf,
    ) -> Result<Self, ServeError> {
        let preprocess = *gallery.preprocess();
        if encoder.image_size() != preprocess.crop as usize {
            return Err(ServeError::Startup(format!(
                "the model takes {s}×{s} images, the gallery was embedded at {c}×{c}",
                s = encoder.image_size(),
                c = preprocess.crop
            )));
        }
        if config.max_body_bytes == 0 || config.request_timeout.is_zero() {
            return Err(ServeError::Startup(
                "--max-body-bytes and --request-timeout-ms must be at least 1".into(),
            ));
        }
        let metrics = Metrics::new().map_err(|e| ServeError::Startup(e.to_string()))?;
        let batcher = Batcher::start(encoder, config.batch, metrics.clone())?;
        let state = Arc::new(AppState {
            gallery: Arc::new(RwLock::new(gallery)),
            index_path,
            preprocess,
            batcher,
            metrics: metrics.clone(),
            limits: config.image_limits,
            max_body_bytes: config.max_body_bytes,
            search: config.search,
        });
        let app = router(state, config);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .map_err(|e| ServeError::Startup(format!("cannot listen on {addr}: {e}")))?;
        let addr = listener
            .local_addr()
            .map_err(|e| ServeError::Startup(format!("cannot listen on {addr}: {e}")))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stopped.await;
                })
                .await
        });
        Ok(Self {
            addr,
            metrics,
            stop: Some(stop),
            task,
        })
    }

    /// The bound address.
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's metrics (what `GET /metrics` renders).
    #[must_use]
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// Stops accepting connections, finishes the requests in flight, and returns when the
    /// server has stopped.
    ///
    /// # Errors
    ///
    /// [`ServeError::Internal`] when the server failed while running.
    pub async fn shutdown(mut self) -> Result<(), ServeError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        match (&mut self.task).await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(ServeError::Internal(format!("the server failed: {e}"))),
            Err(e) => Err(ServeError::Internal(format!("the server task failed: {e}"))),
        }
    }
}

/// The routes and their layers (outermost first: metrics, timeout-as-JSON, timeout, body
/// limit).
fn router(state: Arc<AppState>, config: ServeConfig) -> Router {
    let timeout_ms = u64::try_from(config.request_timeout.as_millis()).unwrap_or(u64::MAX);
    Router::new()
        .route("/v1/embed", post(routes::embed))
        .route("/v1/search", post(routes::search))
        .route("/v1/index", post(routes::index))
        .route("/healthz", get(routes::healthz))
        .route("/metrics", get(routes::metrics))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::SERVICE_UNAVAILABLE,
            config.request_timeout,
        ))
        .layer(middleware::map_response(move |r: Response| async move {
            timeout_as_json(r, timeout_ms)
        }))
        .layer(middleware::from_fn_with_state(state.clone(), track))
        .with_state(state)
}

/// The timeout layer answers with an empty body; give it the JSON error every other answer
/// has.
fn timeout_as_json(response: Response, timeout_ms: u64) -> Response {
    if response.status() == StatusCode::SERVICE_UNAVAILABLE
        && !response.headers().contains_key(header::CONTENT_TYPE)
    {
        return ServeError::Timeout(timeout_ms).into_response();
    }
    response
}

/// Counts each request by endpoint and status and records its latency.
async fn track(State(state): State<Arc<AppState>>, request: Request, next: Next) -> Response {
    let endpoint = request
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "other".to_string(), |p| p.as_str().to_string());
    let start = Instant::now();
    let response = next.run(request).await;
    let m = &state.metrics;
    m.requests
        .with_label_values(&[endpoint.as_str(), response.status().as_str()])
        .inc();
    m.latency
        .with_label_values(&[endpoint.as_str()])
        .observe(start.elapsed().as_secs_f64());
    response
}
