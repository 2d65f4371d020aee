//! Running compiled fine-tune steps in ONNX Runtime, on the pretraining step's session
//! builder and devices: the state (parameters, AdamW moments, model EMA) lives in ORT values
//! that are fed to `Session::run` and replaced by its outputs, as the plain engine does; the
//! images, targets, drop-path masks and scalars go in, the loss and the logits come out.
//!
//! A data-parallel rank's step ([`crate::step::build_finetune_rank_step`]) runs its
//! collectives on [`SessionOptions::collectives`], registered as for the pretraining step.

use super::builder::{SessionOptions, build_on_device};
use super::error::EngineError;
use crate::device::{self, DeviceOptions, Placement};
use crate::step::finetune::names as ft_names;
use crate::step::{FinetuneGraph, HostState, LossScaler, Ranks, build_finetune_rank_step, names};
use ort::session::{Session, SessionInputValue};
use ort::value::{DynValue, Tensor, TensorRef};
use patchmix_export::graph::Compute;
use patchmix_export::onnx::to_onnx_bytes;

/// One fine-tune step's host data.
#[derive(Clone, Copy, Debug)]
pub struct FinetuneFeeds<'a> {
    /// The mixed images, B·3·H·W.
    pub images: &'a [f32],
    /// The soft targets, B·classes.
    pub targets: &'a [f32],
    /// The drop-path scales, 2·depth·B (`None` when drop path is off).
    pub drop_path: Option<&'a [f32]>,
    /// Learning rate (before the layer scales).
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// The model EMA's decay.
    pub ema_decay: f32,
}

/// What one fine-tune step returns.
#[derive(Clone, Debug, PartialEq)]
pub struct FinetuneOutput {
    /// The soft-target cross-entropy of the batch.
    pub loss: f32,
    /// The logits of the batch, B·classes (the model before the update).
    pub logits: Vec<f32>,
    /// fp16: the gradients overflowed, AdamW was not applied.
    pub skipped: bool,
}

/// The state inputs and the outputs that replace them, in [`HostState`] terms.
const STATE: [(&str, &str); 4] = [
    (names::PARAMS, names::STATE_OUTPUTS[0]),
    (names::EXP_AVG, names::STATE_OUTPUTS[1]),
    (names::EXP_AVG_SQ, names::STATE_OUTPUTS[2]),
    (ft_names::EMA_PARAMS, ft_names::EMA_PARAMS_OUT),
];

fn host_part<'a>(h: &'a HostState, input: &str) -> &'a [f32] {
    match input {
        names::PARAMS => &h.params,
        names::EXP_AVG => &h.exp_avg,
        names::EXP_AVG_SQ => &h.exp_avg_sq,
        _ => &h.momentum,
    }
}

/// A compiled fine-tune step bound to an ORT session and its live state.
pub struct FinetuneSession {
    session: Session,
    step: FinetuneGraph,
    state: Vec<(&'static str, DynValue)>,
    placement: Placement,
    steps_taken: u64,
    scaler: Option<LossScaler>,
}

impl FinetuneSession {
    /// Compiles the step into an ORT session on the requested device (a native
    /// half-precision step that will run on the CPU is rebuilt with its products emulated,
    /// as the pretraining step is) and uploads the initial state (its
    /// [`HostState::momentum`] is the model EMA).
    ///
    /// A step with collectives (a data-parallel rank's) needs `opts.collectives`, a
    /// communicator of the step's world size, whose kernels the session registers.
    ///
    /// # Errors
    /// [`EngineError::WorldSize`] for a step with collectives and no communicator (or one of
    /// another size), [`EngineError::CollectivesNeedCuda`] for NCCL collectives in a session
    /// on the CPU, [`EngineError::Device`] when CUDA was requested and cannot be used, ORT
    /// errors, or a state of the wrong size.
    pub fn new(
        step: FinetuneGraph,
        opts: &SessionOptions,
        dev: &DeviceOptions,
        init: &HostState,
    ) -> Result<FinetuneSession, EngineError> {
        let communicator = opts
            .collectives
            .as_ref()
            .map_or(0, |c| c.comm().world_size());
        if step.collectives && communicator != step.world_size {
            return Err(EngineError::WorldSize {
                step: step.world_size,
                communicator,
            });
        }
        let prepared = device::prepare(dev.device)?;
        if opts.collectives.as_ref().is_some_and(|c| c.on_device())
            && prepared.placement == Placement::Cpu
        {
            return Err(EngineError::CollectivesNeedCuda(format!(
                "--device {}",
                dev.device
            )));
        }
        let step = match step.compute {
            Compute::Native(_) if prepared.placement == Placement::Cpu => {
                let ranks = Ranks {
                    world_size: step.world_size,
                    collectives: step.collectives,
                };
                build_finetune_rank_step(&step.config, ranks, true).map_err(|source| {
                    EngineError::CpuRebuild {
                        precision: step.config.precision,
                        source,
                    }
                })?
            }
            _ => step,
        };
        let bytes = to_onnx_bytes(&step.graph);
        let (session, placement) = build_on_device(&bytes, opts, dev, &prepared)?;
        let mut s = FinetuneSession {
            session,
            step,
            state: Vec::new(),
            placement,
            steps_taken: 0,
            scaler: None,
        };
        s.load(init)?;
        Ok(s)
    }

    /// The compiled step.
    pub fn step_graph(&self) -> &FinetuneGraph {
        &self.step
    }

    /// Where the session runs.
    pub fn placement(&self) -> Placement {
        self.placement
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// Replaces the live state.
    ///
    /// # Errors
    /// A state of the wrong size, or ORT errors.
    pub fn load(&mut self, h: &HostState) -> Result<(), EngineError> {
        let want = self.step.layout.params.len();
        let mut state = Vec::with_capacity(STATE.len());
        for (input, _) in STATE {
            let v = host_part(h, input);
            if v.len() != want {
                return Err(EngineError::Size {
                    what: input.into(),
                    got: v.len(),
                    want,
                });
            }
            state.push((
                input,
                Tensor::from_array(([v.len()], v.to_vec()))?.into_dyn(),
            ));
        }
        self.state = state;
        self.steps_taken = h.step;
        self.scaler = self
            .step
            .config
            .scales_loss()
            .then(|| h.scaler.unwrap_or_default());
        Ok(())
    }

    /// Copies the live state to the host (the model EMA in [`HostState::momentum`]).
    ///
    /// # Errors
    /// ORT errors.
    pub fn to_host(&self) -> Result<HostState, EngineError> {
        let get = |input: &str| -> Result<Vec<f32>, EngineError> {
            match self.state.iter().find(|(n, _)| *n == input) {
                Some((_, v)) => Ok(v.try_extract_tensor::<f32>()?.1.to_vec()),
                None => Ok(Vec::new()),
            }
        };
        Ok(HostState {
            params: get(names::PARAMS)?,
            exp_avg: get(names::EXP_AVG)?,
            exp_avg_sq: get(names::EXP_AVG_SQ)?,
            buffers: Vec::new(),
            momentum: get(ft_names::EMA_PARAMS)?,
            step: self.steps_taken,
            scaler: self.scaler,
        })
    }

    /// Runs one fine-tune step.
    ///
    /// # Errors
    /// Host data of the wrong size ([`EngineError::Size`]), drop-path masks the step does not
    /// take or lacks, or ORT errors.
    pub fn run(&mut self, x: &FinetuneFeeds<'_>) -> Result<FinetuneOutput, EngineError> {
        let cfg = &self.step.config;
        let (b, img) = (cfg.batch, cfg.vit.img);
        let check = |what: &str, got: usize, want: usize| {
            if got == want {
                Ok(())
            } else {
                Err(EngineError::Size {
                    what: what.into(),
                    got,
                    want,
                })
            }
        };
        check(ft_names::IMAGES, x.images.len(), b * 3 * img * img)?;
        check(ft_names::TARGETS, x.targets.len(), b * cfg.classes)?;
        let masks = 2 * cfg.vit.depth * b;
        match (cfg.has_drop_path(), x.drop_path) {
            (true, Some(d)) => check("drop-path masks", d.len(), masks)?,
            (true, None) => check("drop-path masks", 0, masks)?,
            (false, Some(d)) => check("drop-path masks", d.len(), 0)?,
            (false, None) => {}
        }
        let t = (self.steps_taken + 1) as f32;
        let mut inputs: Vec<(String, SessionInputValue<'_>)> = Vec::new();
        for (name, v) in &self.state {
            inputs.push((name.to_string(), v.into()));
        }
        fn slice<'d>(
            shape: Vec<usize>,
            d: &'d [f32],
        ) -> Result<SessionInputValue<'d>, EngineError> {
            Ok(TensorRef::from_array_view((shape, d))?.into_dyn().into())
        }
        let scalar = |v: f32| -> Result<SessionInputValue<'_>, EngineError> {
            Ok(Tensor::from_array(((), vec![v]))?.into_dyn().into())
        };
        inputs.push((
            ft_names::IMAGES.into(),
            slice(vec![b, 3, img, img], x.images)?,
        ));
        inputs.push((
            ft_names::TARGETS.into(),
            slice(vec![b, cfg.classes], x.targets)?,
        ));
        inputs.push((names::LR.into(), scalar(x.lr)?));
        inputs.push((names::WD.into(), scalar(x.wd)?));
        inputs.push((names::STEP.into(), scalar(t)?));
        inputs.push((ft_names::EMA_DECAY.into(), scalar(x.ema_decay)?));
        if let Some(s) = &self.scaler {
            inputs.push((names::LOSS_SCALE.into(), scalar(s.scale)?));
        }
        if let Some(d) = x.drop_path {
            inputs.push((
                ft_names::DROP_PATH.into(),
                slice(vec![2 * cfg.vit.depth, b, 1, 1], d)?,
            ));
        }
        let mut outputs = self.session.run(inputs)?;
        let first = |name: &str| -> Result<Vec<f32>, EngineError> {
            let v = outputs
                .get(name)
                .ok_or_else(|| EngineError::MissingOutput(name.to_string()))?;
            Ok(v.try_extract_tensor::<f32>()?.1.to_vec())
        };
        let loss = first(names::LOSSES[3])?[0];
        let logits = first(ft_names::LOGITS)?;
        let skipped = match self.scaler {
            Some(_) => first(names::GRADS_FINITE)?[0] != 1.0,
            None => false,
        };
        let mut next = Vec::with_capacity(STATE.len());
        for (input, output) in STATE {
            let v = outputs
                .remove(output)
                .ok_or_else(|| EngineError::MissingOutput(output.to_string()))?;
            next.push((input, v));
        }
        drop(outputs);
        self.state = next;
        if let Some(s) = &mut self.scaler {
            s.update(!skipped);
        }
        if !skipped {
            self.steps_taken += 1;
        }
        Ok(FinetuneOutput {
            loss,
            logits,
            skipped,
        })
    }
}
