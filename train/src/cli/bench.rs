//! `patchmix bench`: performance measurements, one subcommand per workload.

use anyhow::Result;

use super::bench_embed;

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
}

/// Runs `patchmix bench <workload>`.
///
/// # Errors
/// Whatever the chosen benchmark reports.
pub fn run(args: Args) -> Result<()> {
    match args.command {
        BenchCommand::Embed(a) => bench_embed::run(a),
    }
}
