//! `patchmix bench`: performance measurements, one subcommand per workload.

use anyhow::Result;

#[cfg(feature = "serve")]
use super::bench_serve;
use super::{bench_embed, bench_loader, bench_search, bench_step};

/// Arguments of `patchmix bench`.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The workload to measure.
    #[command(subcommand)]
    pub command: BenchCommand,
}

/// The benchmarks.
#[derive(clap::Subcommand, Debug)]
pub enum BenchCommand {
    /// Encoder inference throughput (tract and ONNX Runtime side by side) and kNN search time.
    Embed(bench_embed::Args),
    /// Training-step throughput of the compiled step in ONNX Runtime (img/s, node counts,
    /// optimisation levels side by side, per-op profile).
    Step(bench_step::Args),
    /// Host input-pipeline throughput: the loader's decode and augmentations plus the step's
    /// PatchMix preparation, in img/s per loader thread count (to set beside `bench step`).
    Loader(bench_loader::Args),
    /// Gallery search: HNSW (f32/f16/i8) against exact search on clustered features —
    /// recall@k, queries/s, build time and memory.
    Search(bench_search::Args),
    /// A load test of `patchmix serve` on localhost: dynamic batching against batch-1
    /// serving, side by side — requests/s, p50/p99 latency, errors.
    #[cfg(feature = "serve")]
    Serve(bench_serve::Args),
}

/// Runs `patchmix bench <workload>`.
///
/// # Errors
/// Whatever the chosen benchmark reports.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        BenchCommand::Embed(a) => bench_embed::run(a),
        BenchCommand::Step(a) => bench_step::run(a),
        BenchCommand::Loader(a) => bench_loader::run(a),
        BenchCommand::Search(a) => bench_search::run(a),
        #[cfg(feature = "serve")]
        BenchCommand::Serve(a) => bench_serve::run(a),
    }
}
