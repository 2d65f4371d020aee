//! `patchmix bench step`: training throughput of the compiled step in ORT (CPU or CUDA), with
//! node counts, ORT graph-optimisation levels side by side, and an optional per-op profile.

use patchmix_export::vit::VitConfig;
use patchmix_train::device::{Device, DeviceOptions};
use patchmix_train::session::{SessionOptions, StepSession};
use patchmix_train::step::{
    Frame, StepConfig, VirtualRanks, build_step, init_state, prepare_batch_on_ranks,
};
use rand::{RngExt, SeedableRng};
use std::collections::BTreeMap;
use std::path::PathBuf;
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
    /// Write an ORT profile to this path prefix and print the time per op type.
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

/// Sums an ORT profile's node durations by op type (microseconds) and returns the top ones.
fn profile_by_op(path: &std::path::Path) -> anyhow::Result<Vec<(String, f64, usize)>> {
    let text = std::fs::read_to_string(path)?;
    let events: Vec<serde_json::Value> = serde_json::from_str(&text)?;
    let mut by: BTreeMap<String, (f64, usize)> = BTreeMap::new();
    for e in events {
        if e.get("cat").and_then(|c| c.as_str()) != Some("Node") {
            continue;
        }
        let name = e.get("name").and_then(|n| n.as_str()).unwrap_or("");
        if !name.ends_with("_kernel_time") {
            continue;
        }
        let op = e
            .pointer("/args/op_name")
            .and_then(|o| o.as_str())
            .unwrap_or("?")
            .to_string();
        let dur = e.get("dur").and_then(|d| d.as_f64()).unwrap_or(0.0);
        let ent = by.entry(op).or_insert((0.0, 0));
        ent.0 += dur;
        ent.1 += 1;
    }
    let mut v: Vec<(String, f64, usize)> = by.into_iter().map(|(k, (d, n))| (k, d, n)).collect();
    v.sort_by(|a, b| b.1.total_cmp(&a.1));
    Ok(v)
}

/// Runs the benchmark.
///
/// # Errors
/// Bad flags or engine errors.
pub fn run(a: Args) -> anyhow::Result<()> {
    if a.finetune {
        return super::bench_finetune::run(&a);
    }
    let cfg = config(&a)?;
    let ranks = VirtualRanks::new(a.virtual_ranks, cfg.batch, cfg.mix)
        .map_err(|e| anyhow::anyhow!("--virtual-ranks {}: {e}", a.virtual_ranks))?;
    let step = build_step(&cfg).map_err(anyhow::Error::msg)?;
    let hist = step.graph.op_histogram();
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
    println!(
        "step graph: {} nodes; by op: {hist:?}",
        step.graph.nodes.len()
    );
    let init = init_state(&cfg, &step.layout, 0);
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(0);
    let n = cfg.batch * 3 * cfg.vit.img * cfg.vit.img;
    let batches: Vec<_> = (0..2)
        .map(|i| {
            let v1: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
            let v2: Vec<f32> = (0..n).map(|_| rng.random_range(-2.0..2.0f32)).collect();
            prepare_batch_on_ranks(&cfg, ranks, v1, v2, None, i, 0.0).map_err(anyhow::Error::msg)
        })
        .collect::<Result<_, _>>()?;
    let levels: Vec<u8> = a
        .opt_levels
        .split(',')
        .map(|s| s.trim().parse())
        .collect::<Result<_, _>>()?;
    let dev = DeviceOptions {
        device: a.device,
        cuda_graph: a.cuda_graph,
        tf32: a.tf32,
        io_binding: a.io_binding,
    };
    let mut results = Vec::new();
    let mut records = Vec::new();
    for &level in &levels {
        let opts = SessionOptions {
            threads: a.threads,
            opt_level: level,
            profile: a.profile.clone(),
            ..SessionOptions::default()
        };
        let t0 = Instant::now();
        let mut s = StepSession::new_on_device(step.clone(), &opts, &dev, &init)?;
        let build_s = t0.elapsed().as_secs_f64();
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
        let ips = cfg.batch as f64 / med;
        let skipped = losses.iter().filter(|l| l.skipped).count();
        let scaler = s.loss_scaler().copied();
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
    if let Some(path) = &a.json {
        let doc = serde_json::json!({
            "config": a.step.config,
            "batch": cfg.batch,
            "virtual_ranks": a.virtual_ranks,
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
        });
        std::fs::write(path, serde_json::to_string_pretty(&doc)? + "\n")?;
    }
    if let Some(prefix) = &a.profile {
        let dir = prefix
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        let stem = prefix
            .file_name()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        let mut files: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| {
                p.file_name()
                    .map(|n| {
                        n.to_string_lossy().starts_with(&stem)
                            && n.to_string_lossy().ends_with(".json")
                    })
                    .unwrap_or(false)
            })
            .collect();
        files.sort();
        if let Some(f) = files.last() {
            let ops = profile_by_op(f)?;
            let total: f64 = ops.iter().map(|o| o.1).sum();
            println!(
                "ORT profile {} (all profiled runs): kernel time by op type",
                f.display()
            );
            for (op, d, cnt) in ops.iter().take(15) {
                println!(
                    "  {op:<28} {:>8.1} ms  {:>5.1}%  ({cnt} kernel runs)",
                    d / 1e3,
                    100.0 * d / total
                );
            }
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
