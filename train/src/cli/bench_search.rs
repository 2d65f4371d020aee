//! `patchmix bench search`: approximate (HNSW) against exact gallery search, side by side in
//! one run — recall@k of HNSW against the exact top-k, queries/s of both, the graph's build
//! time and memory, per quantisation (f32, f16, i8) and per search candidate list size (ef).
//!
//! The gallery is `--n` clustered synthetic features of width `--dim` (`--clusters` random
//! unit centres, each point its centre plus Gaussian noise of relative size `--spread`,
//! normalised), or the rows of a `patchmix embed` feature file repeated with the same noise
//! (`--features`), so real encoder geometry can be scaled up. Queries are fresh points drawn
//! the same way. Both searches run on the whole rayon pool (exact: blocked matrix products;
//! HNSW: one query per task). The f32 graph is also saved, reloaded and memory-mapped, and
//! the mapped graph's results are checked against the in-memory one.

use anyhow::{Context, Result, anyhow, bail};
use ndarray::Array2;
use patchmix_export::data::Preprocess;
use patchmix_export::index::{
    AnnLoad, Gallery, HnswParams, ModelFingerprint, Quantization, SearchMethod,
};
use patchmix_export::knn::FeatureIndex;
use rand::{RngExt, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use std::path::PathBuf;
use std::time::Instant;

/// Arguments of `patchmix bench search`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Gallery size.
    #[arg(long, default_value_t = 100_000)]
    pub n: usize,
    /// Feature width (ignored with --features).
    #[arg(long, default_value_t = 192)]
    pub dim: usize,
    /// Number of queries.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// Number of clusters of the synthetic features.
    #[arg(long, default_value_t = 1000)]
    pub clusters: usize,
    /// Noise around each centre (or feature row), relative to its unit norm.
    #[arg(long, default_value_t = 0.5)]
    pub spread: f32,
    /// Use the rows of this feature file (from `patchmix embed`) as the centres.
    #[arg(long, value_name = "FILE")]
    pub features: Option<PathBuf>,
    /// Neighbours per query.
    #[arg(long, default_value_t = 10)]
    pub k: usize,
    /// Search candidate list sizes (ef), comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [16usize, 32, 64, 128])]
    pub ef: Vec<usize>,
    /// Graph quantisations, comma-separated.
    #[arg(long, value_delimiter = ',', default_values_t = [Quantization::F32, Quantization::F16, Quantization::I8])]
    pub quantization: Vec<Quantization>,
    /// HNSW edges per node (M).
    #[arg(long, default_value_t = HnswParams::default().connectivity)]
    pub connectivity: usize,
    /// HNSW candidate list size while inserting (ef_construction).
    #[arg(long, default_value_t = HnswParams::default().expansion_add)]
    pub expansion_add: usize,
    /// Seed of the features.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
    /// Print one JSON object instead of the table.
    #[arg(long)]
    pub json: bool,
}

#[derive(Serialize, Debug)]
struct EfRow {
    ef: usize,
    recall: f64,
    queries_per_s: f64,
    speedup_vs_exact: f64,
}

#[derive(Serialize, Debug)]
struct QuantRow {
    quantization: Quantization,
    build_s: f64,
    graph_bytes: usize,
    rows: Vec<EfRow>,
}

#[derive(Serialize, Debug)]
struct Persistence {
    save_s: f64,
    graph_file_bytes: u64,
    load_s: f64,
    view_s: f64,
    view_equals_memory: bool,
}

#[derive(Serialize, Debug)]
struct Report {
    features: String,
    n: usize,
    dim: usize,
    queries: usize,
    k: usize,
    threads: usize,
    connectivity: usize,
    expansion_add: usize,
    feature_bytes: usize,
    exact_s: f64,
    /// All queries in one call (blocked matrix products): the throughput of batch search.
    exact_queries_per_s: f64,
    /// One query per call (what a service sees without batching), over the first 100.
    exact_single_queries_per_s: f64,
    quantizations: Vec<QuantRow>,
    persistence: Option<Persistence>,
}

/// Unit Gaussian vector of width `d`, scaled by `s / sqrt(d)` (norm ≈ `s`).
fn noise(d: usize, s: f32, rng: &mut ChaCha8Rng) -> Vec<f32> {
    let scale = s / (d as f32).sqrt();
    (0..d)
        .map(|_| {
            // Box–Muller: two uniforms to one standard normal.
            let u1: f32 = rng.random_range(f32::EPSILON..1.0);
            let u2: f32 = rng.random_range(0.0..1.0);
            scale * (-2.0 * u1.ln()).sqrt() * (std::f32::consts::TAU * u2).cos()
        })
        .collect()
}

/// `count` points around `centres` (row `i` of cluster `i % C`), with their cluster.
fn points(
    centres: &Array2<f32>,
    count: usize,
    spread: f32,
    rng: &mut ChaCha8Rng,
) -> (Array2<f32>, Vec<u32>) {
    let (c, d) = centres.dim();
    let mut out = Array2::<f32>::zeros((count, d));
    let mut labels = Vec::with_capacity(count);
    for mut row in out.rows_mut() {
        let j = rng.random_range(0..c);
        let n = noise(d, spread, rng);
        for ((o, &m), e) in row.iter_mut().zip(centres.row(j)).zip(n) {
            *o = m + e;
        }
        labels.push(u32::try_from(j % 1000).unwrap_or(0));
    }
    (out, labels)
}

fn recall(
    truth: &[Vec<patchmix_export::index::Hit>],
    got: &[Vec<patchmix_export::index::Hit>],
    k: usize,
) -> f64 {
    let mut found = 0usize;
    for (t, g) in truth.iter().zip(got) {
        let want: std::collections::HashSet<usize> = t.iter().map(|h| h.row).collect();
        found += g.iter().filter(|h| want.contains(&h.row)).count();
    }
    found as f64 / (truth.len() * k).max(1) as f64
}

/// Runs `patchmix bench search`.
///
/// # Errors
/// Bad flags, an unreadable `--features` file, or a failing search.
pub fn run(args: Args) -> Result<()> {
    if args.n == 0 || args.queries == 0 || args.dim == 0 || args.clusters == 0 {
        bail!("--n, --queries, --dim and --clusters must be at least 1");
    }
    if args.k == 0 || args.k > args.n {
        bail!("--k {}: must be in 1..={} (--n)", args.k, args.n);
    }
    if args.ef.is_empty() || args.ef.contains(&0) || args.quantization.is_empty() {
        bail!("--ef and --quantization: give at least one value (each ef at least 1)");
    }
    if !(args.spread.is_finite() && args.spread >= 0.0) {
        bail!("--spread {}: must be finite and non-negative", args.spread);
    }
    let mut rng = ChaCha8Rng::seed_from_u64(args.seed);
    let (centres, what) = match &args.features {
        Some(path) => {
            super::embed::check_in_file(path, "--features", "write one with `patchmix embed`")?;
            let f = FeatureIndex::load(path).map_err(|e| anyhow!("--features: {e}"))?;
            let what = format!(
                "{} rows of {} + noise {}",
                f.len(),
                path.display(),
                args.spread
            );
            (f.features().to_owned(), what)
        }
        None => {
            let mut c = Array2::<f32>::zeros((args.clusters, args.dim));
            for mut row in c.rows_mut() {
                let v = noise(args.dim, 1.0, &mut rng);
                row.assign(&ndarray::Array1::from(v));
            }
            let what = format!(
                "clustered synthetic ({} clusters, spread {})",
                args.clusters, args.spread
            );
            (c, what)
        }
    };
    eprintln!(
        "generating {} gallery rows and {} queries ...",
        args.n, args.queries
    );
    let (feats, labels) = points(&centres, args.n, args.spread, &mut rng);
    let (queries, _) = points(&centres, args.queries, args.spread, &mut rng);
    let dim = feats.ncols();
    let ids: Vec<String> = (0..args.n).map(|i| i.to_string()).collect();
    let classes: Vec<String> = (0..1000).map(|i| i.to_string()).collect();
    let mut gallery = Gallery::new(
        feats,
        labels,
        ids,
        classes,
        ModelFingerprint::of_bytes(b"bench"),
        Preprocess::new(1, 1),
    )
    .map_err(|e| anyhow!("{e}"))?;

    eprintln!("exact search ...");
    let t = Instant::now();
    let truth = gallery
        .search(queries.view(), args.k, None, SearchMethod::Exact)
        .map_err(|e| anyhow!("{e}"))?;
    let exact_s = t.elapsed().as_secs_f64();
    let exact_qps = args.queries as f64 / exact_s.max(1e-12);
    let singles = args.queries.min(100);
    let t = Instant::now();
    for i in 0..singles {
        gallery
            .search(
                queries.slice_axis(ndarray::Axis(0), ndarray::Slice::from(i..=i)),
                args.k,
                None,
                SearchMethod::Exact,
            )
            .map_err(|e| anyhow!("{e}"))?;
    }
    let exact_single_qps = singles as f64 / t.elapsed().as_secs_f64().max(1e-12);

    let dir = std::env::temp_dir().join(format!("patchmix-bench-search-{}", std::process::id()));
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let result = measure(&args, &mut gallery, &queries, &truth, exact_qps, &dir);
    let _ = std::fs::remove_dir_all(&dir);
    let (quantizations, persistence) = result?;
    let report = Report {
        features: what,
        n: args.n,
        dim,
        queries: args.queries,
        k: args.k,
        threads: rayon::current_num_threads(),
        connectivity: args.connectivity,
        expansion_add: args.expansion_add,
        feature_bytes: args.n * dim * 4,
        exact_s,
        exact_queries_per_s: exact_qps,
        exact_single_queries_per_s: exact_single_qps,
        quantizations,
        persistence,
    };
    if args.json {
        println!(
            "{}",
            serde_json::to_string(&report).context("cannot serialise the report")?
        );
    } else {
        print!("{}", table(&report));
    }
    Ok(())
}

type Hits = Vec<Vec<patchmix_export::index::Hit>>;

/// Builds each quantisation's graph and measures it against the exact results `truth`.
fn measure(
    args: &Args,
    gallery: &mut Gallery,
    queries: &Array2<f32>,
    truth: &Hits,
    exact_qps: f64,
    dir: &std::path::Path,
) -> Result<(Vec<QuantRow>, Option<Persistence>)> {
    let mut quantizations = Vec::new();
    let mut persistence = None;
    for &q in &args.quantization {
        let params = HnswParams {
            connectivity: args.connectivity,
            expansion_add: args.expansion_add,
            expansion_search: args.ef[0],
            quantization: q,
        };
        eprintln!("building the {q} graph ...");
        let t = Instant::now();
        gallery.build_hnsw(params).map_err(|e| anyhow!("{e}"))?;
        let build_s = t.elapsed().as_secs_f64();
        let graph_bytes = gallery.hnsw().map_or(0, |h| h.memory_usage());
        let mut rows = Vec::new();
        for &ef in &args.ef {
            let t = Instant::now();
            let got = gallery
                .search(
                    queries.view(),
                    args.k,
                    None,
                    SearchMethod::Hnsw {
                        expansion: Some(ef),
                    },
                )
                .map_err(|e| anyhow!("{e}"))?;
            let secs = t.elapsed().as_secs_f64();
            let qps = args.queries as f64 / secs.max(1e-12);
            rows.push(EfRow {
                ef,
                recall: recall(truth, &got, args.k),
                queries_per_s: qps,
                speedup_vs_exact: qps / exact_qps.max(1e-12),
            });
        }
        if q == Quantization::F32 {
            eprintln!("saving, loading and viewing the f32 gallery ...");
            let path = dir.join("bench.pmx");
            let t = Instant::now();
            gallery.save(&path).map_err(|e| anyhow!("{e}"))?;
            let save_s = t.elapsed().as_secs_f64();
            let graph_file_bytes = std::fs::read_dir(dir)
                .map(|it| {
                    it.filter_map(|e| e.ok())
                        .filter(|e| e.file_name().to_string_lossy().ends_with(".hnsw"))
                        .filter_map(|e| e.metadata().ok())
                        .map(|m| m.len())
                        .sum()
                })
                .unwrap_or(0);
            let t = Instant::now();
            drop(Gallery::load(&path, AnnLoad::Load).map_err(|e| anyhow!("{e}"))?);
            let load_s = t.elapsed().as_secs_f64();
            let t = Instant::now();
            let viewed = Gallery::load(&path, AnnLoad::View).map_err(|e| anyhow!("{e}"))?;
            let view_s = t.elapsed().as_secs_f64();
            let method = SearchMethod::Hnsw {
                expansion: Some(args.ef[0]),
            };
            let a = viewed
                .search(queries.view(), args.k, None, method)
                .map_err(|e| anyhow!("{e}"))?;
            let b = gallery
                .search(queries.view(), args.k, None, method)
                .map_err(|e| anyhow!("{e}"))?;
            persistence = Some(Persistence {
                save_s,
                graph_file_bytes,
                load_s,
                view_s,
                view_equals_memory: a == b,
            });
        }
        quantizations.push(QuantRow {
            quantization: q,
            build_s,
            graph_bytes,
            rows,
        });
    }
    Ok((quantizations, persistence))
}

fn mib(b: usize) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn table(r: &Report) -> String {
    use std::fmt::Write as _;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "gallery: {} × {} ({}), {} queries, k = {}, {} threads; HNSW M = {}, ef_construction = {}",
        r.n, r.dim, r.features, r.queries, r.k, r.threads, r.connectivity, r.expansion_add
    );
    let _ = writeln!(
        s,
        "exact: {:.1} queries/s batched ({:.2} s for all), {:.1} queries/s one at a time; features {:.1} MiB",
        r.exact_queries_per_s,
        r.exact_s,
        r.exact_single_queries_per_s,
        mib(r.feature_bytes)
    );
    let _ = writeln!(
        s,
        "{:>5} | {:>8} | {:>9} | {:>5} | {:>9} | {:>10} | {:>8}",
        "quant", "build s", "graph MiB", "ef", "recall@k", "queries/s", "× exact batched"
    );
    for q in &r.quantizations {
        for (i, row) in q.rows.iter().enumerate() {
            let (name, build, mem) = if i == 0 {
                (
                    q.quantization.to_string(),
                    format!("{:.2}", q.build_s),
                    format!("{:.1}", mib(q.graph_bytes)),
                )
            } else {
                (String::new(), String::new(), String::new())
            };
            let _ = writeln!(
                s,
                "{name:>5} | {build:>8} | {mem:>9} | {:>5} | {:>9.4} | {:>10.1} | {:>7.1}×",
                row.ef, row.recall, row.queries_per_s, row.speedup_vs_exact
            );
        }
    }
    if let Some(p) = &r.persistence {
        let _ = writeln!(
            s,
            "f32 gallery: save {:.2} s (graph file {:.1} MiB), load {:.2} s, memory-mapped view {:.3} s; view results equal in-memory: {}",
            p.save_s,
            p.graph_file_bytes as f64 / (1024.0 * 1024.0),
            p.load_s,
            p.view_s,
            p.view_equals_memory
        );
    }
    s
}
