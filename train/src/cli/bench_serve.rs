//! `patchmix bench serve`: a bounded load test of `patchmix serve` on localhost — dynamic
//! batching against batch-1 serving (`--max-batch 1`), side by side in one run.
//!
//! The server runs in this process (the library entry on `127.0.0.1:0`), with the model and
//! gallery of `patchmix serve`. `--clients` tasks each send one request after another for
//! `--seconds` (PNG images of `--data`, to `/v1/search` or `/v1/embed`) through real HTTP
//! (`reqwest`); the two modes alternate for `--rounds` rounds so that both see the same
//! machine load. Reported per mode: requests/s, p50 and p99 latency, the number of non-200
//! answers, and the mean encoder batch; then the speed-up. Clients and server share the
//! machine's cores.

use anyhow::{Result, anyhow, bail};
use patchmix_export::runtime::Runtime;
use patchmix_train::serve::Server;
use serde::Serialize;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::embed::{open_dataset, runtime_name, select_indices};
use super::serve::{ServeFlags, start};

/// The endpoint the clients call.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Endpoint {
    /// `POST /v1/search?k=10` with an image.
    Search,
    /// `POST /v1/embed` with an image.
    Embed,
}

/// Arguments of `patchmix bench serve`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The gallery's ONNX encoder.
    #[arg(long, value_name = "FILE")]
    pub model: PathBuf,
    /// The gallery (from `patchmix index build`). Only read: the load test sends no
    /// `/v1/index` requests.
    #[arg(long, value_name = "FILE")]
    pub index: PathBuf,
    /// Where the query images come from (a dataset spec, as for `patchmix embed`).
    #[arg(long, value_name = "DATASET")]
    pub data: String,
    /// Distinct query images (spread over the dataset).
    #[arg(long, default_value_t = 256)]
    pub images: usize,
    /// The inference runtime: tract or ort.
    #[arg(long, default_value = "tract")]
    pub runtime: Runtime,
    /// Concurrent clients.
    #[arg(long, default_value_t = 32)]
    pub clients: usize,
    /// Seconds per mode and round.
    #[arg(long, default_value_t = 10.0)]
    pub seconds: f64,
    /// Rounds (each runs both modes, alternating which goes first).
    #[arg(long, default_value_t = 2)]
    pub rounds: usize,
    /// The endpoint to load.
    #[arg(long, value_enum, default_value = "search")]
    pub endpoint: Endpoint,
    /// Neighbours per search.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// The dynamic mode's settings (`--max-batch 1` is the other mode).
    #[command(flatten)]
    pub flags: ServeFlags,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

/// What one mode measured over all its rounds.
#[derive(Serialize, Debug, Default)]
struct ModeReport {
    max_batch: usize,
    max_wait_ms: u64,
    requests: usize,
    errors: usize,
    seconds: f64,
    requests_per_s: f64,
    p50_ms: f64,
    p99_ms: f64,
    mean_batch: f64,
}

#[derive(Serialize, Debug)]
struct Report {
    endpoint: Endpoint,
    runtime: &'static str,
    clients: usize,
    seconds_per_round: f64,
    rounds: usize,
    cores: usize,
    dynamic: ModeReport,
    batch1: ModeReport,
    speedup: f64,
}

/// One client's record: latencies of the 200 answers, and the count of the others.
#[derive(Default)]
struct ClientLog {
    latencies: Vec<Duration>,
    errors: usize,
}

/// One client: requests one after another until `until`.
async fn client(
    http: reqwest::Client,
    url: String,
    images: Arc<Vec<Vec<u8>>>,
    offset: usize,
    until: Instant,
) -> ClientLog {
    let mut log = ClientLog::default();
    let mut i = offset;
    while Instant::now() < until {
        let body = images[i % images.len()].clone();
        i += 1;
        let start = Instant::now();
        let ok = match http
            .post(&url)
            .header("content-type", "image/png")
            .body(body)
            .send()
            .await
        {
            Ok(r) => r.status().is_success() && r.bytes().await.is_ok(),
            Err(_) => false,
        };
        if ok {
            log.latencies.push(start.elapsed());
        } else {
            log.errors += 1;
        }
    }
    log
}

/// The `q`-quantile of sorted latencies, in ms.
fn quantile_ms(sorted: &[Duration], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)].as_secs_f64() * 1e3
}

/// Per-mode accumulators across rounds.
#[derive(Default)]
struct Totals {
    latencies: Vec<Duration>,
    errors: usize,
    seconds: f64,
    calls: f64,
    images: f64,
}

/// Runs one mode for `seconds`: a fresh server, a short warm-up, then the clients.
async fn one_phase(args: &Args, flags: &ServeFlags, images: &Arc<Vec<Vec<u8>>>) -> Result<Totals> {
    let addr: SocketAddr = "127.0.0.1:0".parse()?;
    let server: Server = start(&args.model, &args.index, args.runtime, addr, flags).await?;
    let path = match args.endpoint {
        Endpoint::Search => format!("/v1/search?k={}", args.k),
        Endpoint::Embed => "/v1/embed".to_string(),
    };
    let url = format!("http://{}{path}", server.addr());
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.clients)
        .build()
        .map_err(|e| anyhow!("cannot build the HTTP client: {e}"))?;
    // Warm-up: every client's connection once, and the encoder.
    let warm = Instant::now() + Duration::from_millis(500);
    let warmups: Vec<_> = (0..args.clients)
        .map(|c| {
            tokio::spawn(client(
                http.clone(),
                url.clone(),
                Arc::clone(images),
                c,
                warm,
            ))
        })
        .collect();
    for w in warmups {
        let log = w.await?;
        if !log.latencies.is_empty() || log.errors == 0 {
            continue;
        }
        bail!("the server answers errors only (warm-up); check the model and gallery");
    }
    let calls_before = server.metrics().batch_size.get_sample_count() as f64;
    let images_before = server.metrics().batch_size.get_sample_sum();
    let start = Instant::now();
    let until = start + Duration::from_secs_f64(args.seconds);
    let tasks: Vec<_> = (0..args.clients)
        .map(|c| {
            tokio::spawn(client(
                http.clone(),
                url.clone(),
                Arc::clone(images),
                c * 7,
                until,
            ))
        })
        .collect();
    let mut totals = Totals::default();
    for t in tasks {
        let log = t.await?;
        totals.latencies.extend(log.latencies);
        totals.errors += log.errors;
    }
    totals.seconds = start.elapsed().as_secs_f64();
    totals.calls = server.metrics().batch_size.get_sample_count() as f64 - calls_before;
    totals.images = server.metrics().batch_size.get_sample_sum() - images_before;
    server.shutdown().await.map_err(|e| anyhow!("{e}"))?;
    Ok(totals)
}

fn report(flags: &ServeFlags, mut t: Totals) -> ModeReport {
    t.latencies.sort_unstable();
    ModeReport {
        max_batch: flags.max_batch,
        max_wait_ms: flags.max_wait_ms,
        requests: t.latencies.len(),
        errors: t.errors,
        seconds: t.seconds,
        requests_per_s: t.latencies.len() as f64 / t.seconds.max(1e-9),
        p50_ms: quantile_ms(&t.latencies, 0.5),
        p99_ms: quantile_ms(&t.latencies, 0.99),
        mean_batch: t.images / t.calls.max(1.0),
    }
}

fn add(into: &mut Totals, t: Totals) {
    into.latencies.extend(t.latencies);
    into.errors += t.errors;
    into.seconds += t.seconds;
    into.calls += t.calls;
    into.images += t.images;
}

/// Runs `patchmix bench serve`.
///
/// # Errors
/// Bad flags, unreadable files, an encoder that is not the gallery's, a server that fails.
pub fn run(args: Args) -> Result<()> {
    if args.clients == 0 || args.rounds == 0 || args.images == 0 {
        bail!("--clients, --rounds and --images must be at least 1");
    }
    if !(args.seconds.is_finite() && args.seconds > 0.0) {
        bail!("--seconds {}: must be positive", args.seconds);
    }
    let ds = open_dataset(&args.data, "--data")?;
    let images: Vec<Vec<u8>> = select_indices(ds.len(), Some(args.images))?
        .into_iter()
        .map(|i| {
            let img = ds
                .image(i)
                .map_err(|e| anyhow!("--data {}: {e}", args.data))?;
            let mut png = Vec::new();
            img.write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)
                .map_err(|e| anyhow!("cannot encode a query image: {e}"))?;
            Ok(png)
        })
        .collect::<Result<_>>()?;
    let images = Arc::new(images);
    let dynamic = args.flags.clone();
    let batch1 = ServeFlags {
        max_batch: 1,
        max_wait_ms: 0,
        ..args.flags.clone()
    };
    let rt = tokio::runtime::Runtime::new().map_err(|e| anyhow!("cannot start tokio: {e}"))?;
    let (dyn_totals, one_totals) = rt.block_on(async {
        let (mut d, mut o) = (Totals::default(), Totals::default());
        for round in 0..args.rounds {
            let order: [bool; 2] = if round % 2 == 0 {
                [true, false]
            } else {
                [false, true]
            };
            for is_dynamic in order {
                let flags = if is_dynamic { &dynamic } else { &batch1 };
                eprintln!(
                    "round {}/{}: max batch {}, {} clients, {} s ...",
                    round + 1,
                    args.rounds,
                    flags.max_batch,
                    args.clients,
                    args.seconds
                );
                let t = one_phase(&args, flags, &images).await?;
                add(if is_dynamic { &mut d } else { &mut o }, t);
            }
        }
        Ok::<_, anyhow::Error>((d, o))
    })?;
    let dynamic = report(&dynamic, dyn_totals);
    let batch1 = report(&batch1, one_totals);
    let out = Report {
        endpoint: args.endpoint,
        runtime: runtime_name(args.runtime),
        clients: args.clients,
        seconds_per_round: args.seconds,
        rounds: args.rounds,
        cores: std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        speedup: dynamic.requests_per_s / batch1.requests_per_s.max(1e-9),
        dynamic,
        batch1,
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&out)?);
        return Ok(());
    }
    println!(
        "POST /v1/{} with {} ({}), {} clients, {} × {} s per mode, {} cores",
        match out.endpoint {
            Endpoint::Search => "search",
            Endpoint::Embed => "embed",
        },
        args.model.display(),
        out.runtime,
        out.clients,
        out.rounds,
        out.seconds_per_round,
        out.cores
    );
    println!(
        "{:<22} {:>10} {:>9} {:>9} {:>8} {:>11}",
        "mode", "req/s", "p50 ms", "p99 ms", "errors", "mean batch"
    );
    for (name, m) in [
        (
            format!(
                "dynamic (≤{}, {} ms)",
                out.dynamic.max_batch, out.dynamic.max_wait_ms
            ),
            &out.dynamic,
        ),
        ("batch-1".to_string(), &out.batch1),
    ] {
        println!(
            "{name:<22} {:>10.1} {:>9.2} {:>9.2} {:>8} {:>11.2}",
            m.requests_per_s, m.p50_ms, m.p99_ms, m.errors, m.mean_batch
        );
    }
    println!("speed-up of dynamic batching: {:.2}×", out.speedup);
    Ok(())
}
