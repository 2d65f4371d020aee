//! `patchmix bench step`: training throughput of the compiled step in ORT (CPU or CUDA), with
//! node counts, ORT graph-optimisation levels side by side, and an optional per-op profile
//! with the collectives' share of the step. Under `mpirun -np W … --dist mpi` each of the W
//! processes runs its rank's step over its B/W rows of the global batch.

use anyhow::Context;
use patchmix_export::vit::VitConfig;
use patchmix_train::device::{Device, DeviceOptions};
use patchmix_train::dist::{DistMode, DistWorld, agree_on, start};
use patchmix_train::session::{SessionOptions, StepSession};
use patchmix_train::step::{
    Frame, StepConfig, VirtualRanks, build_rank_step, init_state, prepare_batch_on_ranks,
};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

/// Measure training-step throughput.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The step configuration.
    #[command(flatten)]
    pub step: NamedStep,
    /// Emulate W data-parallel ranks (as `pretrain --virtual-ranks`): the batch is PatchMixed
    /// in W groups with rank-offset targets. The step graph is the same for every W.
    #[arg(long, value_name = "W", default_value_t = 1)]
    pub virtual_ranks: usize,
    /// Data-parallel ranks, as `pretrain --dist`: `none` (one process), `mpi` (the ranks of
    /// `mpirun -np N`, collectives over Open MPI; needs a build with `--features mpi`), `nccl`
    /// (GPUs, with `--device cuda`; needs `--features nccl`, plus `mpi` for several ranks) or
    /// `auto` (`mpi` when an MPI launcher started this process, else `none`). The batch stays the global batch, split evenly over the ranks; img/s counts it,
    /// and rank 0 alone prints and writes `--json`.
    #[arg(long, default_value = "auto", value_name = "none|mpi|nccl|auto")]
    pub dist: String,
    /// Measured steps (after the warm-up steps).
    #[arg(long, default_value_t = 5)]
    pub steps: usize,
    /// Warm-up steps before the measured ones (CUDA graphs are captured during warm-up).
    #[arg(long, default_value_t = 2)]
    pub warmup: usize,
    /// Where the step runs: cpu, cuda, cuda:N or auto (CUDA if it loads, else the CPU).
    #[arg(long, default_value = "cpu")]
    pub device: Device,
    /// CUDA: capture the step as a CUDA graph and replay it (ORT's `enable_cuda_graph`).
    #[arg(long)]
    pub cuda_graph: bool,
    /// Precision of the matrix products: fp32, bf16 or fp16 (dynamic loss scaling); master
    /// weights and optimizer state stay f32. bf16 on the CPU is emulated (no speed-up).
    #[arg(long, default_value = "fp32")]
    pub precision: patchmix_train::step::Precision,
    /// CUDA: allow TF32 tensor-core math for fp32 MatMul/Gemm.
    #[arg(long)]
    pub tf32: bool,
    /// CPU: run the IoBinding path (fixed ping-pong state buffers) that CUDA uses.
    #[arg(long)]
    pub io_binding: bool,
    /// Write the results (every step's losses, times, img/s per level) as JSON to this file.
    #[arg(long, value_name = "FILE")]
    pub json: Option<PathBuf>,
    /// ORT graph optimisation levels to compare, e.g. `0,1,2,3` (the engine runs at 3).
    #[arg(long, default_value = "3")]
    pub opt_levels: String,
    /// ORT intra-op threads (default: one per core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Write an ORT profile to this path prefix (`PREFIX-rankR` per rank with several ranks)
    /// and print the time per op type and the collectives' share of the timed steps.
    #[arg(long)]
    pub profile: Option<PathBuf>,
    /// Also write the step as `DIR/step.onnx` plus `DIR/feeds.safetensors` (one step's
    /// inputs), to replay it in any ONNX Runtime.
    #[arg(long, value_name = "DIR")]
    pub save: Option<PathBuf>,
    /// Measure the fine-tune step instead (the configuration's encoder and batch, a 10-class
    /// head, drop path 0.1, layer-decay AdamW, model EMA).
    #[arg(long)]
    pub finetune: bool,
}

/// A named step configuration with its overrides, shared by `bench step` and `bench loader`.
#[derive(clap::Args, Debug)]
pub struct NamedStep {
    /// `tiny` (img 8, patch 2, D 16, depth 2, heads 2, h 32, o 16, batch 8), `small` (img 32,
    /// patch 4, D 64, depth 4, heads 4, h 512, o 128, batch 64, m 2), `vit-t4` (D 192, depth 12,
    /// heads 3, h 4096, o 256, batch 64) or `vit-t2` (the CIFAR ViT-T/2 recipe: patch 2,
    /// batch 512).
    #[arg(long, default_value = "small")]
    pub config: String,
    /// Batch size override.
    #[arg(long)]
    pub batch: Option<usize>,
    /// Drop-path rate (the reference PyTorch script has none).
    #[arg(long, default_value_t = 0.0)]
    pub drop_path: f32,
    /// Use the momentum frame.
    #[arg(long)]
    pub momentum: bool,
}

impl NamedStep {
    /// The step configuration (32×32 images; the named ones differ from `tiny` in the
    /// encoder, the head widths and the batch), not yet validated.
    ///
    /// # Errors
    /// An unknown name, listing the known ones.
    pub(super) fn config(&self) -> anyhow::Result<StepConfig> {
        let frame = if self.momentum {
            Frame::Momentum
        } else {
            Frame::NoMomentum
        };
        let vit = |patch, dim, depth, heads| VitConfig {
            img: 32,
            patch,
            dim,
            depth,
            heads,
        };
        let named = |vit, hidden, out, batch| StepConfig {
            vit,
            hidden,
            out,
            batch,
            ..StepConfig::tiny(frame, self.drop_path)
        };
        let mut c = match self.config.as_str() {
            "tiny" => StepConfig::tiny(frame, self.drop_path),
            "small" => named(vit(4, 64, 4, 4), 512, 128, 64),
            "vit-t4" => named(vit(4, 192, 12, 3), 4096, 256, 64),
            "vit-t2" => named(vit(2, 192, 12, 3), 4096, 256, 512),
            o => {
                anyhow::bail!("unknown bench config `{o}`: expected tiny, small, vit-t4 or vit-t2")
            }
        };
        if let Some(b) = self.batch {
            c.batch = b;
        }
        Ok(c)
    }
}

fn config(a: &Args) -> anyhow::Result<StepConfig> {
    let mut c = a.step.config()?;
    c.precision = a.precision;
    c.validate().map_err(anyhow::Error::msg)?;
    Ok(c)
}

/// The op types of the step's collectives (the data-parallel ranks' exchanges).
const COLLECTIVE_OPS: [&str; 2] = ["AllReduceSum", "AllGather"];

/// An ORT profile, summed (times in microseconds).
struct ProfileSummary {
    /// Kernel time per op type over all profiled runs: (op type, time, kernel runs), the
    /// longest first.
    by_op: Vec<(String, f64, usize)>,
    /// The `model_run` calls after the skipped (warm-up) ones.
    steps: usize,
    /// Their summed duration.
    step_us: f64,
    /// The kernel time of the collectives ([`COLLECTIVE_OPS`]) during them; under MPI it
    /// includes waiting for the slowest rank.
    collective_us: f64,
}

impl ProfileSummary {
    /// The collectives' share of the step time of the counted runs (`None` without any).
    fn collective_share(&self) -> Option<f64> {
        (self.steps > 0 && self.step_us > 0.0).then(|| self.collective_us / self.step_us)
    }
}

/// Reads an ORT profile: node kernel times by op type, and the collectives' time against
/// `model_run`'s over the runs after the first `skip` (as `scripts/profile_collectives.py`).
///
/// # Errors
/// An unreadable file or one that is not a JSON array of events.
fn read_profile(path: &Path, skip: usize) -> anyhow::Result<ProfileSummary> {
    let text =
        std::fs::read_to_string(path).with_context(|| format!("ORT profile {}", path.display()))?;
    let events: Vec<serde_json::Value> =
        serde_json::from_str(&text).with_context(|| format!("ORT profile {}", path.display()))?;
    fn str_of<'e>(e: &'e serde_json::Value, k: &str) -> Option<&'e str> {
        e.get(k).and_then(|v| v.as_str())
    }
    fn num_of(e: &serde_json::Value, k: &str) -> f64 {
        e.get(k).and_then(|v| v.as_f64()).unwrap_or(0.0)
    }
    let runs: Vec<(f64, f64)> = events
        .iter()
        .filter(|e| str_of(e, "cat") == Some("Session") && str_of(e, "name") == Some("model_run"))
        .map(|e| (num_of(e, "ts"), num_of(e, "dur")))
        .collect();
    let counted = runs.get(skip..).unwrap_or(&[]);
    let start = counted.first().map_or(f64::INFINITY, |r| r.0);
    let mut by: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    let mut collective_us = 0.0;
    for e in &events {
        if str_of(e, "cat") != Some("Node")
            || !str_of(e, "name").is_some_and(|n| n.ends_with("_kernel_time"))
        {
            continue;
        }
        let op = e
            .pointer("/args/op_name")
            .and_then(|o| o.as_str())
            .unwrap_or("?");
        let dur = num_of(e, "dur");
        if COLLECTIVE_OPS.contains(&op) && num_of(e, "ts") >= start {
            collective_us += dur;
        }
        let ent = by.entry(op.to_string()).or_insert((0.0, 0));
        ent.0 += dur;
        ent.1 += 1;
    }
    let mut by_op: Vec<(String, f64, usize)> =
        by.into_iter().map(|(k, (d, n))| (k, d, n)).collect();
    by_op.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(ProfileSummary {
        by_op,
        steps: counted.len(),
        step_us: counted.iter().map(|r| r.1).sum(),
        collective_us,
    })
}

/// This rank's profile prefix: `PREFIX` in one process, `PREFIX-rankR` with several ranks.
fn rank_prefix(prefix: &Path, rank: usize, world: usize) -> PathBuf {
    if world > 1 {
        let mut p = prefix.as_os_str().to_owned();
        p.push(format!("-rank{rank}"));
        PathBuf::from(p)
    } else {
        prefix.to_path_buf()
    }
}

/// The newest profile ORT wrote for `prefix` (`PREFIX_<date>_<time>.json`), if any.
///
/// # Errors
/// An unreadable directory.
fn latest_profile(prefix: &Path) -> anyhow::Result<Option<PathBuf>> {
    let dir = prefix
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let stem = format!(
        "{}_",
        prefix
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    );
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .with_context(|| format!("profile directory {}", dir.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| {
            p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with(&stem) && n.ends_with(".json")
            })
        })
        .collect();
    files.sort();
    Ok(files.pop())
}

/// Runs the benchmark: starts the data-parallel world `--dist` asks for, and on an error in a
/// world of several ranks ends them all rather than leave the others waiting in a collective.
///
/// # Errors
/// Bad flags or engine errors.
pub fn run(a: Args) -> anyhow::Result<()> {
    let mode: DistMode = a.dist.parse().map_err(anyhow::Error::msg)?;
    let world = start(mode).map_err(anyhow::Error::msg)?;
    let result = if !a.finetune {
        run_in(&a, &world)
    } else if world.world_size() > 1 {
        Err(anyhow::anyhow!(
            "--finetune measures one process; run it without mpirun (or with --dist none)"
        ))
    } else {
        super::bench_finetune::run(&a)
    };
    if let Err(e) = &result
        && world.world_size() > 1
    {
        eprintln!("error: rank {}: {e:#}", world.rank());
        world.abort(1);
    }
    result
}

/// The benchmark on this rank of `world` (rank 0 prints and writes the results).
fn run_in(a: &Args, world: &DistWorld) -> anyhow::Result<()> {
    let cfg = config(a)?;
    let (rank, size) = (world.rank(), world.world_size());
    let lead = rank == 0;
    let ranks = if size > 1 {
        if let Some(c) = world.collectives() {
            // Every rank must measure the same step.
            agree_on(
                c.comm().as_ref(),
                "configurations",
                format!("{a:?}").as_bytes(),
            )?;
        }
        if a.virtual_ranks != 1 && a.virtual_ranks != size {
            anyhow::bail!(
                "--virtual-ranks {} emulates another world; with {size} real ranks set it to 1 or {size}",
                a.virtual_ranks
            );
        }
        VirtualRanks::new(size, cfg.batch, cfg.mix).map_err(|e| {
            anyhow::anyhow!(
                "{size} MPI ranks: {}",
                e.to_string()
                    .replace("virtual_ranks = ", "")
                    .replace("virtual_ranks", "ranks")
            )
        })?
    } else {
        VirtualRanks::new(a.virtual_ranks, cfg.batch, cfg.mix)
            .map_err(|e| anyhow::anyhow!("--virtual-ranks {}: {e}", a.virtual_ranks))?
    };
    if a.save.is_some() && world.collectives().is_some() {
        anyhow::bail!(
            "--save writes a step without collectives; save the one-process emulation instead (--dist none --virtual-ranks {size} without mpirun)"
        );
    }
    // This rank's step over its b = B/W images (one process: the plain step, unless an NCCL
    // world of one runs it through its collectives).
    let rank_cfg = StepConfig {
        batch: cfg.batch / size,
        ..cfg.clone()
    };
    let step = build_rank_step(&rank_cfg, world.step_ranks(), false).map_err(anyhow::Error::msg)?;
    let backend = match world.collectives() {
        Some(c) if c.on_device() => "nccl",
        Some(_) => "mpi",
        None => "none",
    };
    let hist = step.graph.op_histogram();
    if lead {
        println!(
            "config {}: B {} img {} patch {} D {} depth {} heads {} h {} o {} m {} frame {:?}; {} parameters",
            a.step.config,
            cfg.batch,
            cfg.vit.img,
            cfg.vit.patch,
            cfg.vit.dim,
            cfg.vit.depth,
            cfg.vit.heads,
            cfg.hidden,
            cfg.out,
            cfg.mix,
            cfg.frame,
            step.layout.params.len()
        );
        if size > 1 {
            println!(
                "data-parallel: {size} ranks × {} images ({backend}); img/s counts the global batch",
                rank_cfg.batch
            );
        }
        println!(
            "step graph{}: {} nodes; by op: {hist:?}",
            if size > 1 { " (each rank's)" } else { "" },
            step.graph.nodes.len()
        );
    }
    let init = init_state(&cfg, &step.layout, 0);
    // Every rank draws the same global batches and feeds its rows of them.
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let batches: Vec<_> = (0..2)
        .map(|i| {
            let v1: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
            let v2: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
            let b = prepare_batch_on_ranks(&cfg, ranks, v1, v2, None, i, 0.0)
                .map_err(anyhow::Error::msg)?;
            Ok::<_, anyhow::Error>(if size > 1 {
                b.rank_share(&cfg, ranks, rank)
            } else {
                b
            })
        })
        .collect::<Result<_, _>>()?;
    let levels: Vec<u8> = a
        .opt_levels
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let dev = DeviceOptions {
        device: world
            .collectives()
            .map_or(a.device, |c| c.rank_device(a.device)),
        cuda_graph: a.cuda_graph,
        tf32: a.tf32,
        io_binding: a.io_binding,
    };
    let profile = a.profile.as_deref().map(|p| rank_prefix(p, rank, size));
    let mut results = Vec::new();
    let mut records = Vec::new();
    for &level in &levels {
        let opts = SessionOptions {
            threads: a.threads,
            opt_level: level,
            profile: profile.clone(),
            collectives: world.collectives().cloned(),
        };
        let t0 = Instant::now();
        let mut s = StepSession::new_on_device(step.clone(), &opts, &dev, &init)?;
        let build_s = t0.elapsed().as_secs_f64();
        if lead {
            println!(
                "device {} (requested {}), {}{}",
                s.placement(),
                a.device,
                if s.is_bound() {
                    "state in fixed buffers bound through IoBinding"
                } else {
                    "state as ORT values"
                },
                if a.cuda_graph && s.placement() != patchmix_train::device::Placement::Cpu {
                    ", CUDA graphs on"
                } else {
                    ""
                }
            );
        }
        if let Some(dir) = &a.save {
            s.save_reproducer(dir, &batches[0].inputs(1e-4, 0.05, 0.2, 0.99))?;
            println!("wrote {}/step.onnx and feeds.safetensors", dir.display());
        }
        let mut times = Vec::new();
        let mut losses = Vec::new();
        for i in 0..a.steps + a.warmup {
            let b = &batches[i % 2];
            let x = b.inputs(1e-4, 0.05, 0.2, 0.99);
            let t = Instant::now();
            let l = s.run(&x)?;
            let dt = t.elapsed().as_secs_f64();
            if i >= a.warmup {
                times.push(dt);
            }
            if !l.total.is_finite() && !l.skipped {
                anyhow::bail!("non-finite loss {l:?}");
            }
            losses.push(l);
        }
        let mut sorted = times.clone();
        sorted.sort_by(f64::total_cmp);
        let med = sorted.get(sorted.len() / 2).copied().unwrap_or(f64::NAN);
        // The global batch: with several ranks the collectives keep them in step, so rank 0's
        // step time is the world's.
        let ips = cfg.batch as f64 / med;
        let skipped = losses.iter().filter(|l| l.skipped).count();
        let scaler = s.loss_scaler().copied();
        if lead {
            println!(
                "ORT opt level {level}: session build {build_s:.1} s, median step {:.1} ms, {ips:.1} img/s{}",
                med * 1e3,
                match scaler {
                    Some(sc) => format!(
                        " (fp16: {skipped} steps skipped, loss scale now {})",
                        sc.scale
                    ),
                    None => String::new(),
                }
            );
        }
        results.push((level, ips));
        records.push(serde_json::json!({
            "opt_level": level,
            "placement": s.placement().to_string(),
            "io_binding": s.is_bound(),
            "session_build_s": build_s,
            "step_s": times,
            "median_step_s": med,
            "img_per_s": ips,
            "skipped_steps": skipped,
            "loss_scale": scaler.map(|sc| sc.scale),
            "losses": losses,
        }));
        drop(s);
    }
    // The profile of the last level's session, and its collectives' share on every rank.
    let summary = match &profile {
        Some(p) => match latest_profile(p)? {
            Some(f) => Some((read_profile(&f, a.warmup)?, f)),
            None => None,
        },
        None => None,
    };
    let mut collectives = Vec::new();
    if a.profile.is_some() {
        let mine = summary.as_ref().map_or([f32::NAN; 3], |(s, _)| {
            let per = |us: f64| (us / s.steps.max(1) as f64 / 1e3) as f32;
            [
                per(s.step_us),
                per(s.collective_us),
                s.collective_share().map_or(f32::NAN, |x| x as f32),
            ]
        });
        let mut all = mine.to_vec();
        if let Some(c) = world.collectives() {
            all = vec![0.0; mine.len() * size];
            c.comm().all_gather(&mine, &mut all)?;
        }
        collectives = all
            .chunks(mine.len())
            .enumerate()
            .map(|(r, v)| (r, v[0], v[1], v[2]))
            .collect();
    }
    if !lead {
        return Ok(());
    }
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "config": a.step.config,
            "batch": cfg.batch,
            "dist": backend,
            "world": size,
            "rank_batch": rank_cfg.batch,
            "virtual_ranks": a.virtual_ranks,
            "threads": a.threads,
            "img": cfg.vit.img,
            "patch": cfg.vit.patch,
            "dim": cfg.vit.dim,
            "depth": cfg.vit.depth,
            "heads": cfg.vit.heads,
            "hidden": cfg.hidden,
            "out": cfg.out,
            "parameters": step.layout.params.len(),
            "nodes": step.graph.nodes.len(),
            "device": a.device.to_string(),
            "cuda_graph": a.cuda_graph,
            "tf32": a.tf32,
            "precision": a.precision.name(),
            "warmup": a.warmup,
            "runs": records,
            // Per rank, over the timed steps of the last level's profile (NaN: none read).
            "collectives": collectives.iter().map(|&(r, step, coll, share)| serde_json::json!({
                "rank": r,
                "step_ms": finite(step),
                "collective_ms": finite(coll),
                "share": finite(share),
            })).collect::<Vec<_>>(),
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    }
    if let Some((s, f)) = &summary {
        let total: f64 = s.by_op.iter().map(|o| o.1).sum();
        println!(
            "ORT profile {} (all profiled runs): kernel time by op type",
            f.display()
        );
        for (op, d, cnt) in s.by_op.iter().take(15) {
            println!(
                "  {op:<28} {:>8.1} ms  {:>5.1}%  ({cnt} kernel runs)",
                d / 1e3,
                100.0 * d / total
            );
        }
    }
    if !collectives.is_empty() {
        println!(
            "collectives ({}) over the timed steps (model_run time; with ranks it includes waiting for the slowest):",
            COLLECTIVE_OPS.join(", ")
        );
        for (r, step, coll, share) in &collectives {
            println!(
                "  rank {r}: {coll:.2} of {step:.1} ms per step = {:.1}% of the step",
                100.0 * share
            );
        }
    }
    if results.len() > 1 {
        let best = results.iter().map(|r| r.1).fold(0.0, f64::max);
        for (l, ips) in &results {
            println!("  level {l}: {:.2}× the best", ips / best);
        }
    }
    Ok(())
}

/// A JSON number, or null for NaN (JSON has none).
fn finite(x: f32) -> Option<f32> {
    x.is_finite().then_some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A profile of three runs of 100 µs: the first (warm-up) is left out of the share.
    #[test]
    fn the_collectives_share_counts_the_runs_after_the_warm_up() {
        let node = |op: &str, ts: f64, dur: f64| {
            serde_json::json!({"cat": "Node", "name": format!("n_{op}_kernel_time"),
                "ts": ts, "dur": dur, "args": {"op_name": op}})
        };
        let run = |ts: f64| serde_json::json!({"cat": "Session", "name": "model_run", "ts": ts, "dur": 100.0});
        let events = serde_json::json!([
            run(0.0),
            node("AllReduceSum", 10.0, 50.0),
            run(100.0),
            node("AllReduceSum", 110.0, 20.0),
            node("Gemm", 120.0, 40.0),
            run(200.0),
            node("AllGather", 210.0, 10.0),
        ]);
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("p_2026-01-01_00-00-00.json");
        std::fs::write(&f, events.to_string()).unwrap();
        let s = read_profile(&f, 1).unwrap();
        assert_eq!((s.steps, s.step_us, s.collective_us), (2, 200.0, 30.0));
        assert_eq!(s.collective_share(), Some(0.15));
        let ops: Vec<_> = s.by_op.iter().map(|o| (o.0.as_str(), o.1, o.2)).collect();
        assert_eq!(
            ops,
            [
                ("AllReduceSum", 70.0, 2),
                ("Gemm", 40.0, 1),
                ("AllGather", 10.0, 1)
            ]
        );
        assert_eq!(read_profile(&f, 3).unwrap().collective_share(), None);
        assert!(read_profile(&dir.path().join("none.json"), 0).is_err());

        // A rank's profiles are not one process's, and the newest is taken.
        let prefix = dir.path().join("p");
        assert_eq!(rank_prefix(&prefix, 1, 2), dir.path().join("p-rank1"));
        assert_eq!(rank_prefix(&prefix, 0, 1), prefix);
        std::fs::write(dir.path().join("p-rank0_2027-01-01_00-00-00.json"), "[]").unwrap();
        assert_eq!(latest_profile(&prefix).unwrap(), Some(f));
        std::fs::write(dir.path().join("p_2026-02-01_00-00-00.json"), "[]").unwrap();
        assert_eq!(
            latest_profile(&prefix).unwrap(),
            Some(dir.path().join("p_2026-02-01_00-00-00.json"))
        );
        assert_eq!(latest_profile(&dir.path().join("q")).unwrap(), None);
    }
}
