//! `patchmix serve`: the HTTP retrieval service ([`patchmix_train::serve`]) over a gallery
//! index and its encoder, until SIGTERM or Ctrl-C (then the requests in flight are finished).

use anyhow::{Result, anyhow, bail};
use patchmix_export::index::{AnnLoad, SearchMethod};
use patchmix_export::runtime::Runtime;
use patchmix_train::serve::{BatchConfig, ImageLimits, ServeConfig, Server};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use super::embed::{open_model, runtime_name};
use super::index::{fingerprint, load_gallery};

/// The server's settings shared by `patchmix serve` and `patchmix bench serve`.
#[derive(clap::Args, Debug, Clone)]
pub struct ServeFlags {
    /// Most images per encoder call (dynamic batching; 1 turns batching off).
    #[arg(long, default_value_t = BatchConfig::default().max_batch)]
    pub max_batch: usize,
    /// Longest wait for more requests after the first of a batch, in milliseconds.
    #[arg(long, default_value_t = 5)]
    pub max_wait_ms: u64,
    /// Requests waiting for the encoder before new ones get 503 + Retry-After.
    #[arg(long, default_value_t = BatchConfig::default().queue)]
    pub queue: usize,
    /// Largest request body in bytes (413 above).
    #[arg(long, default_value_t = ServeConfig::default().max_body_bytes)]
    pub max_body_bytes: usize,
    /// Largest decoded image in pixels, checked from the header before decoding (413 above).
    #[arg(long, default_value_t = ImageLimits::default().max_pixels)]
    pub max_image_pixels: u64,
    /// Longest a request may take, in milliseconds (503 after).
    #[arg(long, default_value_t = 30_000)]
    pub request_timeout_ms: u64,
    /// Search the gallery's HNSW graph instead of every item.
    #[arg(long)]
    pub ann: bool,
    /// With --ann: the candidate list size (ef; default: the gallery's).
    #[arg(long, requires = "ann", value_name = "EF")]
    pub ef: Option<usize>,
}

impl ServeFlags {
    /// The library's settings.
    pub fn config(&self) -> Result<ServeConfig> {
        if self.max_image_pixels == 0 {
            bail!("--max-image-pixels must be at least 1");
        }
        Ok(ServeConfig {
            batch: BatchConfig {
                max_batch: self.max_batch,
                max_wait: Duration::from_millis(self.max_wait_ms),
                queue: self.queue,
            },
            max_body_bytes: self.max_body_bytes,
            image_limits: ImageLimits {
                max_pixels: self.max_image_pixels,
                max_side: ImageLimits::default().max_side,
            },
            request_timeout: Duration::from_millis(self.request_timeout_ms),
            search: if self.ann {
                SearchMethod::Hnsw { expansion: self.ef }
            } else {
                SearchMethod::Exact
            },
        })
    }
}

/// Arguments of `patchmix serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gallery's ONNX encoder.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The gallery (from `patchmix index build`); `POST /v1/index` rewrites it atomically.
    #[arg(long, value_name = "FILE")]
    pub index: PathBuf,
    /// Address to listen on (port 0: any free port, printed at start).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub addr: SocketAddr,
    /// The inference runtime: tract or ort.
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    #[command(flatten)]
    pub flags: ServeFlags,
}

/// Opens the gallery and the encoder as `patchmix search` does (same checks, same errors) and
/// starts a server on the current runtime.
pub(super) async fn start(
    model: &std::path::Path,
    index: &std::path::Path,
    runtime: Runtime,
    addr: SocketAddr,
    flags: &ServeFlags,
) -> Result<Server> {
    let config = flags.config()?;
    // The graph is viewed even for exact search, so that `/v1/index` keeps it up to date.
    let gallery = load_gallery(index, AnnLoad::View)?;
    let fp = fingerprint(model)?;
    gallery
        .check_model(&fp, model)
        .map_err(|e| anyhow!("--model: {e}"))?;
    if flags.ann && gallery.hnsw().is_none() {
        bail!(
            "--ann: {} has no HNSW graph; rebuild it with `patchmix index build --ann hnsw`",
            index.display()
        );
    }
    let encoder = open_model(model, runtime)?;
    Server::start(addr, config, encoder, gallery, index.to_path_buf())
        .await
        .map_err(|e| anyhow!("{e}"))
}

/// Waits for SIGTERM or Ctrl-C.
async fn stop_signal() -> Result<()> {
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .map_err(|e| anyhow!("cannot watch SIGTERM: {e}"))?;
        tokio::select! {
            r = tokio::signal::ctrl_c() => r.map_err(|e| anyhow!("cannot watch Ctrl-C: {e}")),
            _ = term.recv() => Ok(()),
        }
    }
    #[cfg(not(unix))]
    tokio::signal::ctrl_c()
        .await
        .map_err(|e| anyhow!("cannot watch Ctrl-C: {e}"))
}

/// Runs `patchmix serve`.
///
/// # Errors
/// Bad flags, unreadable files, an encoder that is not the gallery's, an address in use.
pub fn run(args: Args) -> Result<()> {
    let rt = tokio::runtime::Runtime::new().map_err(|e| anyhow!("cannot start tokio: {e}"))?;
    rt.block_on(async {
        let server = start(
            &args.model,
            &args.index,
            args.runtime,
            args.addr,
            &args.flags,
        )
        .await?;
        log::info!(
            "serving {} with {} ({}) on http://{} (max batch {}, max wait {} ms)",
            args.index.display(),
            args.model.display(),
            runtime_name(args.runtime),
            server.addr(),
            args.flags.max_batch,
            args.flags.max_wait_ms
        );
        stop_signal().await?;
        log::info!("shutting down: finishing the requests in flight");
        server.shutdown().await.map_err(|e| anyhow!("{e}"))
    })
}
