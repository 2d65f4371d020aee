//! Subcommand dispatch for the `patchmix` binary. Each subcommand lives in its own module with
//! an `Args` struct (clap derive) and a `run(args) -> anyhow::Result<()>` function.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod bench;
mod bench_embed;
mod bench_finetune;
mod bench_loader;
mod bench_search;
#[cfg(feature = "serve")]
mod bench_serve;
mod bench_step;
mod classify;
mod embed;
mod export;
mod finetune;
mod index;
mod knn;
mod linear;
mod mix_plan;
mod plot;
mod pretrain;
mod search;
#[cfg(feature = "serve")]
mod serve;

#[derive(Parser, Debug)]
#[command(
    name = "patchmix",
    version,
    about = "PatchMix contrastive pretraining through ONNX Runtime"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a PatchMix plan (permutation, gather indices, soft targets) as JSON or a picture.
    MixPlan(mix_plan::Args),
    /// Write a ViT encoder (safetensors weights or random init) as an ONNX model.
    Export(export::Args),
    /// Run an ONNX encoder over a dataset and write L2-normalised features and labels.
    Embed(embed::Args),
    /// Weighted kNN top-1/top-5 of a test split against a train split (DINO protocol).
    Knn(knn::Args),
    /// Pretrain a ViT with PatchMix through ONNX Runtime (preset `demo` by default).
    Pretrain(pretrain::Args),
    /// Performance measurements (encoder inference, kNN search).
    Bench(bench::Args),
    /// Draw a pretraining run's curves (losses, kNN accuracy, schedules) as PNG files.
    Plot(plot::Args),
    /// Build and maintain a gallery index (.pmx) for retrieval: build, add, remove, info.
    Index(index::Args),
    /// The nearest gallery items of a query image (exact, or HNSW with --ann).
    Search(search::Args),
    /// Linear-probe accuracy of a frozen ONNX encoder (MoCo v3 linear evaluation protocol).
    Linear(linear::Args),
    /// Top-1/top-5 and the confusion matrix of an ONNX classifier on a labelled split.
    Classify(classify::Args),
    /// Fine-tune a pretrained encoder with a classifier head (preset `demo-ft` by default).
    Finetune(finetune::Args),
    /// An HTTP retrieval service over a gallery: embed, search, add; dynamic batching.
    #[cfg(feature = "serve")]
    Serve(serve::Args),
}

/// Routes the libraries' `log` records to stderr: warnings as `warning: …`, errors as
/// `error: …`, information as the bare message (progress, what a run resolved or wrote).
/// `RUST_LOG` overrides the default filter (information from patchmix, warnings from the rest).
fn init_logging() {
    use std::io::Write;
    let default = "warn,patchmix_train=info,patchmix_export=info,patchmix=info";
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default))
        .format(|buf, record| match record.level() {
            log::Level::Error => writeln!(buf, "error: {}", record.args()),
            log::Level::Warn => writeln!(buf, "warning: {}", record.args()),
            _ => writeln!(buf, "{}", record.args()),
        })
        .target(env_logger::Target::Stderr)
        .init();
}

/// Parses the command line, runs the subcommand and turns any error into a one-line message.
pub fn main() -> ExitCode {
    init_logging();
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::MixPlan(a) => mix_plan::run(a),
        Command::Export(a) => export::run(a),
        Command::Embed(a) => embed::run(a),
        Command::Knn(a) => knn::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Pretrain(a) => pretrain::run(a),
        Command::Plot(a) => plot::run(a),
        Command::Linear(a) => linear::run(a),
        Command::Classify(a) => classify::run(a),
        Command::Finetune(a) => finetune::run(a),
        Command::Index(a) => index::run(a),
        Command::Search(a) => search::run(a),
        #[cfg(feature = "serve")]
        Command::Serve(a) => serve::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
