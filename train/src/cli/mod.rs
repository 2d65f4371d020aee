//! Subcommand dispatch for the `patchmix` binary. Each subcommand lives in its own module with
//! an `Args` struct (clap derive) and a `run(args) -> anyhow::Result<()>` function.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod mix_plan;

#[derive(Parser, Debug)]
#[command(name = "patchmix", version, about = "PatchMix contrastive pretraining through ONNX Runtime")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Print a PatchMix plan (permutation, gather indices, soft targets) as JSON or a picture.
    MixPlan(mix_plan::Args),
}

/// Parses the command line, runs the subcommand and turns any error into a one-line message.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    let result: anyhow::Result<()> = match cli.command {
        Command::MixPlan(a) => mix_plan::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
