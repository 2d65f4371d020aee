//! `patchmix bench embed`: encoder inference throughput with tract and ONNX Runtime side by
//! side, at several batch sizes, plus the time of a kNN evaluation on random features.
//!
//! The encoder is a random-init preset built in memory (or `--model FILE`). Inputs are random
//! normal images. Each (runtime, batch) pair gets `--warmup` untimed calls (tract optimises a
//! plan per batch size on its first call) and then `--iters` timed calls; the median is
//! reported. tract runs on one thread; ONNX Runtime uses its default intra-op thread pool (one
//! thread per core). The kNN part times [`knn_report`] (one top-max(k) search plus the weighted
//! votes for every k) and the search alone, on random features of `N×Q×D`.

use anyhow::{Context, Result, anyhow, bail};
use ndarray::{Array2, Array4};
use patchmix_export::knn::{DEFAULT_KS, DINO_TEMPERATURE, FeatureIndex, SearchOptions, knn_report};
use patchmix_export::onnx::to_onnx_bytes;
use patchmix_export::runtime::{Embed, OrtEncoder, TractEncoder};
use patchmix_export::vit::{encoder_graph, init_weights};
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use super::export::{config_from_flags, describe};

/// Which runtimes to measure.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum Which {
    /// tract only.
    Tract,
    /// ONNX Runtime only.
    Ort,
    /// Both, side by side.
    Both,
}

/// Arguments of `patchmix bench embed`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Runtimes to measure.
    #[arg(long, value_enum, default_value_t = Which::Both)]
    pub runtime: Which,
    /// Measure this ONNX encoder instead of a random-init preset.
    #[arg(long, value_name = "FILE")]
    pub model: Option<PathBuf>,
    /// Architecture preset of the random-init encoder.
    #[arg(long, default_value = "vit-tiny")]
    pub preset: String,
    /// Image side.
    #[arg(long, default_value_t = 32)]
    pub img: usize,
    /// Patch side.
    #[arg(long, default_value_t = 4)]
    pub patch: usize,
    /// Override the preset's width.
    #[arg(long)]
    pub dim: Option<usize>,
    /// Override the preset's depth.
    #[arg(long)]
    pub depth: Option<usize>,
    /// Override the preset's head count.
    #[arg(long)]
    pub heads: Option<usize>,
    /// Batch sizes, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [1usize, 64])]
    pub batch: Vec<usize>,
    /// Timed calls per (runtime, batch size).
    #[arg(long, default_value_t = 10)]
    pub iters: usize,
    /// Untimed calls first (tract builds its plan for a batch size on the first call).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// kNN problem size `N,Q,D` (train rows, test rows, width), or `none` to skip.
    #[arg(long, default_value = "10000,2000,192", value_name = "N,Q,D|none")]
    pub knn: String,
    /// The k values of the kNN evaluation.
    #[arg(long, value_delimiter = ',', default_values_t = DEFAULT_KS)]
    pub k: Vec<usize>,
    /// Timed kNN evaluations.
    #[arg(long, default_value_t = 3)]
    pub knn_iters: usize,
    /// Seed of the weights, images and features.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the tables.
    #[arg(long)]
    pub json: bool,
}

/// One measured (runtime, batch size).
#[derive(Serialize, Debug, Clone)]
struct Row {
    runtime: &'static str,
    batch: usize,
    median_ms: f64,
    min_ms: f64,
    images_per_s: f64,
}

/// The kNN measurement.
#[derive(Serialize, Debug, Clone)]
struct KnnTiming {
    train: usize,
    test: usize,
    dim: usize,
    ks: Vec<usize>,
    report_median_ms: f64,
    search_median_ms: f64,
    queries_per_s: f64,
}

/// Everything `--json` prints.
#[derive(Serialize, Debug)]
struct BenchReport {
    encoder: String,
    threads: usize,
    load_ms: Vec<(&'static str, f64)>,
    rows: Vec<Row>,
    /// Largest relative difference (Frobenius) between tract and ort features, per batch size.
    tract_vs_ort_rel_diff: Vec<(usize, f64)>,
    knn: Option<KnnTiming>,
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v.get(v.len() / 2).copied().unwrap_or_default()
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1e3
}

fn parse_knn_size(s: &str) -> Result<Option<(usize, usize, usize)>> {
    if s.eq_ignore_ascii_case("none") {
        return Ok(None);
    }
    let parts: Vec<usize> = s
        .split([',', 'x'])
        .map(|p| p.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| anyhow!("--knn {s}: expected N,Q,D (e.g. 10000,2000,192) or none"))?;
    match parts[..] {
        [n, q, d] if n > 0 && q > 0 && d > 0 => Ok(Some((n, q, d))),
        _ => {
            bail!("--knn {s}: expected three positive numbers N,Q,D (e.g. 10000,2000,192) or none")
        }
    }
}

fn random_images(b: usize, img: usize, rng: &mut ChaCha8Rng) -> Array4<f32> {
    Array4::from_shape_fn((b, 3, img, img), |_| rng.random_range(-2.0..2.0f32))
}

fn rel_diff(a: &Array2<f32>, b: &Array2<f32>) -> f64 {
    let num: f64 = a.iter().zip(b).map(|(x, y)| f64::from(x - y).powi(2)).sum();
    let den: f64 = b.iter().map(|y| f64::from(*y).powi(2)).sum();
    (num / den.max(1e-24)).sqrt()
}

fn time_encoder(
    enc: &mut dyn Embed,
    name: &'static str,
    images: &Array4<f32>,
    args: &Args,
) -> Result<(Row, Array2<f32>)> {
    let b = images.shape()[0];
    let mut out = enc
        .embed(images.view())
        .map_err(|e| anyhow!("{name} at batch {b}: {e}"))?;
    for _ in 1..args.warmup {
        out = enc
            .embed(images.view())
            .map_err(|e| anyhow!("{name}: {e}"))?;
    }
    let mut times = Vec::with_capacity(args.iters);
    for _ in 0..args.iters {
        let t = Instant::now();
        out = enc
            .embed(images.view())
            .map_err(|e| anyhow!("{name}: {e}"))?;
        times.push(t.elapsed());
    }
    let min = times.iter().min().copied().unwrap_or_default();
    let med = median(times);
    let row = Row {
        runtime: name,
        batch: b,
        median_ms: ms(med),
        min_ms: ms(min),
        images_per_s: b as f64 / med.as_secs_f64().max(1e-12),
    };
    Ok((row, out))
}

fn bench_knn(n: usize, q: usize, d: usize, args: &Args) -> Result<KnnTiming> {
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed ^ 0x6b6e6e);
    let bank = Array2::from_shape_fn((n, d), |_| rng.random_range(-1.0..1.0f32));
    let labels: Vec<u32> = (0..n).map(|_| rng.random_range(0..10u32)).collect();
    let queries = Array2::from_shape_fn((q, d), |_| rng.random_range(-1.0..1.0f32));
    let qlabels: Vec<u32> = (0..q).map(|_| rng.random_range(0..10u32)).collect();
    let index = FeatureIndex::new(bank, labels, Some(10)).map_err(|e| anyhow!("{e}"))?;
    let kmax = args.k.iter().copied().max().unwrap_or(1);
    let (mut report_t, mut search_t) = (Vec::new(), Vec::new());
    for _ in 0..args.knn_iters.max(1) {
        let t = Instant::now();
        knn_report(&index, queries.view(), &qlabels, &args.k, DINO_TEMPERATURE)
            .map_err(|e| anyhow!("kNN: {e}"))?;
        report_t.push(t.elapsed());
        let t = Instant::now();
        index
            .search(queries.view(), kmax, &SearchOptions::default())
            .map_err(|e| anyhow!("kNN: {e}"))?;
        search_t.push(t.elapsed());
    }
    let report = median(report_t);
    Ok(KnnTiming {
        train: n,
        test: q,
        dim: d,
        ks: args.k.clone(),
        report_median_ms: ms(report),
        search_median_ms: ms(median(search_t)),
        queries_per_s: q as f64 / report.as_secs_f64().max(1e-12),
    })
}

/// Runs `patchmix bench embed`.
///
/// # Errors
/// Bad flags, an unreadable `--model`, or a runtime that cannot load or run the encoder.
pub fn run(args: Args) -> Result<()> {
    if args.batch.is_empty() || args.batch.contains(&0) {
        bail!("--batch: give batch sizes of at least 1 (e.g. --batch 1,64)");
    }
    if args.iters == 0 {
        bail!("--iters must be at least 1");
    }
    if args.k.is_empty() || args.k.contains(&0) {
        bail!("--k: give at least one k, each at least 1");
    }
    let knn_size = parse_knn_size(&args.knn)?;
    let (bytes, encoder) = match &args.model {
        Some(path) => {
            super::embed::check_in_file(path, "--model", "export one with `patchmix export`")?;
            let bytes = std::fs::read(path)
                .with_context(|| format!("--model {}: cannot read it", path.display()))?;
            (bytes, format!("{}", path.display()))
        }
        None => {
            let (preset, cfg) = config_from_flags(
                &args.preset,
                args.img,
                args.patch,
                args.dim,
                args.depth,
                args.heads,
            )?;
            let g = encoder_graph(&cfg, &init_weights(&cfg, args.seed), false)
                .map_err(|e| anyhow!("cannot build the encoder graph: {e}"))?;
            (
                to_onnx_bytes(&g),
                format!("{}, random init", describe(preset, &cfg)),
            )
        }
    };
    let threads = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut load_ms = Vec::new();
    let mut encoders: Vec<(&'static str, Box<dyn Embed>)> = Vec::new();
    if matches!(args.runtime, Which::Tract | Which::Both) {
        let t = Instant::now();
        let e = TractEncoder::from_bytes(&bytes).map_err(|e| anyhow!("tract: {e}"))?;
        load_ms.push(("tract", ms(t.elapsed())));
        encoders.push(("tract", Box::new(e)));
    }
    if matches!(args.runtime, Which::Ort | Which::Both) {
        let t = Instant::now();
        let e = OrtEncoder::from_bytes(&bytes).map_err(|e| anyhow!("ort: {e}"))?;
        load_ms.push(("ort", ms(t.elapsed())));
        encoders.push(("ort", Box::new(e)));
    }
    let img = encoders.first().map_or(args.img, |(_, e)| e.image_size());
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let mut rows = Vec::new();
    let mut diffs = Vec::new();
    for &b in &args.batch {
        let images = random_images(b, img, &mut rng);
        let mut outs = Vec::new();
        for (name, enc) in &mut encoders {
            eprintln!("measuring {name} at batch {b} ...");
            let (row, out) = time_encoder(enc.as_mut(), name, &images, &args)?;
            rows.push(row);
            outs.push(out);
        }
        if let [a, o] = &outs[..] {
            diffs.push((b, rel_diff(o, a)));
        }
    }
    let knn = match knn_size {
        Some((n, q, d)) => {
            eprintln!("measuring kNN {n}×{q}×{d} ...");
            Some(bench_knn(n, q, d, &args)?)
        }
        None => None,
    };
    let report = BenchReport {
        encoder,
        threads,
        load_ms,
        rows,
        tract_vs_ort_rel_diff: diffs,
        knn,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("cannot serialise the report")?
        );
    } else {
        print!("{}", table(&report, &args));
    }
    Ok(())
}

fn table(r: &BenchReport, args: &Args) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(s, "encoder: {}", r.encoder);
    let _ = writeln!(
        s,
        "machine: {} threads available; tract runs on one thread, ort on its default pool",
        r.threads
    );
    let loads: Vec<String> = r
        .load_ms
        .iter()
        .map(|(n, t)| format!("{n} {t:.0} ms"))
        .collect();
    let _ = writeln!(s, "model load: {}", loads.join(", "));
    let names: Vec<&str> = r.load_ms.iter().map(|(n, _)| *n).collect();
    let _ = write!(s, "{:>6}", "batch");
    for n in &names {
        let _ = write!(s, " | {:>11} {:>9}", format!("{n} img/s"), "ms/batch");
    }
    if names.len() == 2 {
        let _ = write!(s, " | {:>9}", format!("{}/{}", names[1], names[0]));
    }
    let _ = writeln!(s);
    for &b in &args.batch {
        let _ = write!(s, "{b:>6}");
        let mut ips = Vec::new();
        for n in &names {
            if let Some(row) = r.rows.iter().find(|x| x.batch == b && x.runtime == *n) {
                let _ = write!(s, " | {:>11.1} {:>9.2}", row.images_per_s, row.median_ms);
                ips.push(row.images_per_s);
            }
        }
        if let [a, o] = ips[..] {
            let _ = write!(s, " | {:>8.2}×", o / a.max(1e-12));
        }
        let _ = writeln!(s);
    }
    for (b, d) in &r.tract_vs_ort_rel_diff {
        let _ = writeln!(
            s,
            "tract vs ort features at batch {b}: relative difference {d:.1e}"
        );
    }
    if let Some(k) = &r.knn {
        let ks: Vec<String> = k.ks.iter().map(usize::to_string).collect();
        let _ = writeln!(
            s,
            "kNN {} train × {} test × D {}, k = {}, T = {DINO_TEMPERATURE}: {:.1} ms per evaluation ({:.0} queries/s), top-{} search alone {:.1} ms",
            k.train,
            k.test,
            k.dim,
            ks.join(","),
            k.report_median_ms,
            k.queries_per_s,
            k.ks.iter().max().copied().unwrap_or(0),
            k.search_median_ms
        );
    }
    s
}
