//! `patchmix mix-plan`: prints a PatchMix plan (permutation, gather indices and soft targets)
//! so that other runtimes can check their implementation against `patchmix-core`.
//!
//! With `--json` it prints one JSON object:
//! `{batch, grid, tokens, mix, group_size, seed, perm, source, smoothing, world_size, rank,
//! num_classes, soft_target, soft_mix_target}`, where `source` holds the `B·T` gather indices
//! (output token `b·T + t` is input token `source[b·T + t]`) and the targets are `B` rows of
//! `N = B·world_size` numbers. Without `--json` it draws, for each mixed image, which image each
//! token came from.

use anyhow::{Context, Result, bail};
use patchmix_core::{
    LabelSpec, MixGeometry, MixPlan, fill_mix_to_mix_targets, fill_mix_to_origin_targets,
};
use serde::Serialize;
use std::fmt::Write as _;

/// Arguments of `patchmix mix-plan`.
#[derive(clap::Args, Debug)]
#[command(group(clap::ArgGroup::new("shuffle").required(true).args(["perm", "seed"])))]
pub struct Args {
    /// Batch size B (images per rank).
    #[arg(long)]
    pub batch: usize,
    /// Tokens per image side (T = grid² tokens per image).
    #[arg(long)]
    pub grid: usize,
    /// Mix number m: each mixed image takes ⌊T/m⌋ tokens from each of m images.
    #[arg(long)]
    pub mix: usize,
    /// The shuffle as a comma-separated permutation of 0..T (e.g. 3,0,2,1).
    #[arg(long, value_name = "I,J,...")]
    pub perm: Option<String>,
    /// Draw the shuffle from this seed (SplitMix64 + Fisher–Yates, see patchmix_core::rng).
    #[arg(long)]
    pub seed: Option<u64>,
    /// Label smoothing s in [0, 1] (the original PatchMixer's default is 0.1).
    #[arg(long, default_value_t = 0.1)]
    pub smoothing: f64,
    /// Number of ranks; targets have N = B·world_size columns.
    #[arg(long, default_value_t = 1)]
    pub world_size: usize,
    /// This rank; its images are the columns rank·B .. rank·B + B.
    #[arg(long, default_value_t = 0)]
    pub rank: usize,
    /// Print one JSON object instead of the picture.
    #[arg(long)]
    pub json: bool,
}

/// The JSON document printed by `--json` (field order as declared).
#[derive(Serialize)]
struct PlanJson<'a> {
    batch: usize,
    grid: usize,
    tokens: usize,
    mix: usize,
    group_size: usize,
    seed: Option<u64>,
    perm: &'a [u32],
    source: &'a [u32],
    smoothing: f64,
    world_size: usize,
    rank: usize,
    num_classes: usize,
    soft_target: Vec<&'a [f64]>,
    soft_mix_target: Vec<&'a [f64]>,
}

/// Parses `--perm`: comma-separated non-negative integers (whitespace around entries allowed).
fn parse_perm(text: &str) -> Result<Vec<usize>> {
    text.split(',')
        .enumerate()
        .map(|(i, entry)| {
            let entry = entry.trim();
            entry.parse::<usize>().map_err(|_| {
                anyhow::anyhow!(
                    "invalid --perm: entry {i} (`{entry}`) is not a non-negative integer"
                )
            })
        })
        .collect()
}

/// Builds the plan and the soft targets, then prints them.
///
/// # Errors
///
/// Any invalid argument (bad `--perm`, `m > T`, `rank ≥ world_size`, …) as a one-line message.
pub fn run(args: Args) -> Result<()> {
    let geometry = MixGeometry::new(args.batch, args.grid, args.mix)?;
    let plan = match (&args.perm, args.seed) {
        (Some(text), _) => {
            let perm = parse_perm(text)?;
            MixPlan::from_permutation(args.batch, args.grid, args.mix, &perm)
                .context("invalid --perm")?
        }
        (None, Some(seed)) => MixPlan::from_seed(args.batch, args.grid, args.mix, seed)?,
        (None, None) => bail!("one of --perm or --seed is required"),
    };
    let spec = LabelSpec::new(args.batch, args.world_size, args.rank, args.smoothing)?;
    let mut soft_target = vec![0.0f64; spec.len()];
    let mut soft_mix_target = vec![0.0f64; spec.len()];
    fill_mix_to_origin_targets(&spec, args.mix, &mut soft_target)?;
    fill_mix_to_mix_targets(&spec, args.mix, &mut soft_mix_target)?;

    let text = if args.json {
        let n = spec.num_classes();
        let doc = PlanJson {
            batch: geometry.batch(),
            grid: geometry.grid(),
            tokens: geometry.tokens(),
            mix: geometry.mix(),
            group_size: geometry.group_size(),
            seed: if args.perm.is_some() { None } else { args.seed },
            perm: plan.perm(),
            source: plan.source(),
            smoothing: spec.smoothing(),
            world_size: spec.world_size(),
            rank: spec.rank(),
            num_classes: n,
            soft_target: soft_target.chunks(n).collect(),
            soft_mix_target: soft_mix_target.chunks(n).collect(),
        };
        serde_json::to_string(&doc)? + "\n"
    } else {
        picture(&plan)
    };
    print!("{text}");
    Ok(())
}

/// The readable picture: for each mixed image, the grid of source images of its tokens; tokens
/// in the unmixed tail (shuffled position ≥ m·S) are marked with `*`.
fn picture(plan: &MixPlan) -> String {
    let g = plan.geometry();
    let (b_count, grid, t_count, m) = (g.batch(), g.grid(), g.tokens(), g.mix());
    let width = (b_count - 1).to_string().len() + 2;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "PatchMix plan: B = {b_count}, grid = {grid} (T = {t_count}), m = {m}, S = {}, \
         mixed positions {} of {t_count}",
        g.group_size(),
        g.mixed_tokens()
    );
    let perm: Vec<String> = plan.perm().iter().map(u32::to_string).collect();
    let _ = writeln!(out, "perm = [{}]", perm.join(", "));
    let _ = writeln!(
        out,
        "Each cell is the image a token of the mixed image came from (* = unmixed tail)."
    );
    for b in 0..b_count {
        let sources: Vec<String> = (0..m.min(b_count))
            .map(|i| ((b + i) % b_count).to_string())
            .collect();
        let _ = writeln!(out, "\nmixed image {b} (sources {}):", sources.join(", "));
        for row in 0..grid {
            let mut line = String::new();
            for col in 0..grid {
                let t = row * grid + col;
                let src = plan.source()[b * t_count + t] as usize / t_count;
                let tail = plan.inverse()[t] as usize >= g.mixed_tokens();
                let cell = format!("{src}{}", if tail { "*" } else { "" });
                let _ = write!(line, "{cell:>width$}");
            }
            let _ = writeln!(out, "{}", line.trim_end());
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_perm_with_spaces() {
        assert_eq!(parse_perm("3, 0,2 ,1").unwrap(), vec![3, 0, 2, 1]);
        let err = parse_perm("3,x,1").unwrap_err().to_string();
        assert_eq!(
            err,
            "invalid --perm: entry 1 (`x`) is not a non-negative integer"
        );
        assert!(parse_perm("3,-1").is_err());
    }

    #[test]
    fn picture_marks_sources_and_tail() {
        // 3×3 grid, m = 2: S = 4, shuffled position 8 (token perm[8] = 4, the centre) is the tail.
        let plan = MixPlan::from_permutation(2, 3, 2, &[8u32, 0, 7, 1, 6, 2, 5, 3, 4]).unwrap();
        let text = picture(&plan);
        assert!(
            text.contains("mixed image 0 (sources 0, 1):\n  0  0  1\n  1 0*  1\n  1  0  0\n"),
            "{text}"
        );
        assert!(
            text.contains("mixed image 1 (sources 1, 0):\n  1  1  0\n  0 1*  0\n  0  1  1\n"),
            "{text}"
        );
    }
}
