//! Running compiled steps in ONNX Runtime with the training state kept as ORT values.
//!
//! One [`StepSession::run`] is one `Session::run`: parameters, AdamW moments, BN buffers and
//! the momentum encoder are inputs, and their updated versions (outputs) replace them for the
//! next step without a host copy. Only the batch and the scalars go in, and the four loss
//! scalars come out; [`StepSession::to_host`] copies the state out for checkpoints.

use crate::step::{Frame, StepGraph, names};
use ort::session::Session;
use ort::session::builder::GraphOptimizationLevel;
use ort::value::{DynValue, Tensor, TensorRef};
use patchmix_export::onnx::to_onnx_bytes;
use patchmix_export::runtime::ort_env::ensure_ort;
use std::path::PathBuf;

/// Errors of the training engine's session.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// ONNX Runtime could not be provisioned.
    #[error("{0}")]
    Setup(String),
    /// ONNX Runtime failed.
    #[error("ONNX Runtime: {0}")]
    Ort(#[from] ort::Error),
    /// A host array has the wrong size.
    #[error("{what} has {got} elements, the step expects {want}")]
    Size {
        /// Which input.
        what: String,
        /// Its length.
        got: usize,
        /// The expected length.
        want: usize,
    },
}

impl From<ort::Error<ort::session::builder::SessionBuilder>> for EngineError {
    fn from(e: ort::Error<ort::session::builder::SessionBuilder>) -> Self {
        EngineError::Ort(e.into())
    }
}

/// The trained state on the host, in the step's flat layouts.
#[derive(Clone, Debug, PartialEq)]
pub struct HostState {
    /// Flat parameters.
    pub params: Vec<f32>,
    /// AdamW first moments.
    pub exp_avg: Vec<f32>,
    /// AdamW second moments.
    pub exp_avg_sq: Vec<f32>,
    /// BN running statistics.
    pub buffers: Vec<f32>,
    /// Momentum-encoder parameters (empty without one).
    pub momentum: Vec<f32>,
    /// Optimizer steps taken.
    pub step: u64,
}

/// The per-step data.
#[derive(Clone, Debug)]
pub struct StepInputs<'a> {
    /// view1, view2, mix1, mix2, each B·3·H·W.
    pub images: [&'a [f32]; 4],
    /// target_src, target_mix, target_mix2, each B·N.
    pub targets: [&'a [f32]; 3],
    /// Learning rate.
    pub lr: f32,
    /// Weight decay.
    pub wd: f32,
    /// Loss temperature τ.
    pub temperature: f32,
    /// EMA momentum μ (ignored without a momentum encoder).
    pub momentum: f32,
    /// Drop-path scales per base pass, each 2·depth·B (empty when drop path is off).
    pub drop_path: Vec<&'a [f32]>,
}

/// The step's loss terms.
#[derive(Clone, Copy, Debug, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Losses {
    /// CE(q1, k2, I).
    pub src: f32,
    /// CE(q_m2, sg(k1), T_mix).
    pub mix: f32,
    /// CE(q_m2, k_m1, T_mix2).
    pub mix2: f32,
    /// src + mix/2 + mix2/2.
    pub total: f32,
}

/// Session settings.
#[derive(Clone, Debug)]
pub struct SessionOptions {
    /// Intra-op threads (`None`: ORT's default, one per core).
    pub threads: Option<usize>,
    /// ORT graph optimisation level 0–3 (Disable, Basic, Extended, All). The default is 1:
    /// at level 2 and above one of ORT's extended graph transforms changes the step's
    /// gradients (`ort_optimisation_levels_agree_on_the_step` pins the levels that agree).
    pub opt_level: u8,
    /// Write an ORT profile with this path prefix.
    pub profile: Option<PathBuf>,
}

impl Default for SessionOptions {
    fn default() -> Self {
        SessionOptions {
            threads: None,
            opt_level: 1,
            profile: None,
        }
    }
}

/// Builds an ORT session for a model.
///
/// # Errors
/// Setup or ORT errors.
pub fn build_session(bytes: &[u8], opts: &SessionOptions) -> Result<Session, EngineError> {
    let (_, env) = ensure_ort().map_err(EngineError::Setup)?;
    let level = match opts.opt_level {
        0 => GraphOptimizationLevel::Disable,
        1 => GraphOptimizationLevel::Level1,
        2 => GraphOptimizationLevel::Level2,
        _ => GraphOptimizationLevel::Level3,
    };
    let mut b = Session::builder(&env)?.with_optimization_level(level)?;
    if let Some(t) = opts.threads {
        b = b.with_intra_threads(t)?;
    }
    if let Some(p) = &opts.profile {
        b = b.with_profiling(p)?;
    }
    Ok(b.commit_from_memory(bytes)?)
}

/// A compiled step bound to an ORT session and its live state.
pub struct StepSession {
    session: Session,
    step: StepGraph,
    state: Vec<(&'static str, DynValue)>,
    steps_taken: u64,
}

fn tensor1(v: &[f32]) -> Result<DynValue, EngineError> {
    Ok(Tensor::from_array(([v.len()], v.to_vec()))?.into_dyn())
}

impl StepSession {
    /// Compiles the step into an ORT session and uploads the initial state.
    ///
    /// # Errors
    /// Setup or ORT errors, or a state of the wrong size.
    pub fn new(
        step: StepGraph,
        opts: &SessionOptions,
        init: &HostState,
    ) -> Result<StepSession, EngineError> {
        let bytes = to_onnx_bytes(&step.graph);
        let session = build_session(&bytes, opts)?;
        let mut s = StepSession {
            session,
            step,
            state: Vec::new(),
            steps_taken: 0,
        };
        s.load(init)?;
        Ok(s)
    }

    /// The compiled step.
    pub fn step_graph(&self) -> &StepGraph {
        &self.step
    }

    /// Replaces the live state.
    ///
    /// # Errors
    /// A state of the wrong size, or ORT errors.
    pub fn load(&mut self, h: &HostState) -> Result<(), EngineError> {
        let l = &self.step.layout;
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
        check("params", h.params.len(), l.params.len())?;
        check("exp_avg", h.exp_avg.len(), l.params.len())?;
        check("exp_avg_sq", h.exp_avg_sq.len(), l.params.len())?;
        check("buffers", h.buffers.len(), l.buffers.len())?;
        check("momentum", h.momentum.len(), l.momentum.len())?;
        let mut state = vec![
            (names::PARAMS, tensor1(&h.params)?),
            (names::EXP_AVG, tensor1(&h.exp_avg)?),
            (names::EXP_AVG_SQ, tensor1(&h.exp_avg_sq)?),
            (names::BUFFERS, tensor1(&h.buffers)?),
        ];
        if self.step.config.frame == Frame::Momentum {
            state.push((names::MOMENTUM_PARAMS, tensor1(&h.momentum)?));
        }
        self.state = state;
        self.steps_taken = h.step;
        Ok(())
    }

    /// Copies the live state to the host.
    ///
    /// # Errors
    /// ORT errors.
    pub fn to_host(&self) -> Result<HostState, EngineError> {
        let get = |name: &str| -> Result<Vec<f32>, EngineError> {
            match self.state.iter().find(|(n, _)| *n == name) {
                Some((_, v)) => Ok(v.try_extract_tensor::<f32>()?.1.to_vec()),
                None => Ok(Vec::new()),
            }
        };
        Ok(HostState {
            params: get(names::PARAMS)?,
            exp_avg: get(names::EXP_AVG)?,
            exp_avg_sq: get(names::EXP_AVG_SQ)?,
            buffers: get(names::BUFFERS)?,
            momentum: get(names::MOMENTUM_PARAMS)?,
            step: self.steps_taken,
        })
    }

    /// Optimizer steps taken so far.
    pub fn steps_taken(&self) -> u64 {
        self.steps_taken
    }

    /// Runs one training step and returns its losses.
    ///
    /// # Errors
    /// Inputs of the wrong size, or ORT errors.
    pub fn run(&mut self, x: &StepInputs<'_>) -> Result<Losses, EngineError> {
        let cfg = &self.step.config;
        let (b, img) = (cfg.batch, cfg.vit.img);
        let img_len = b * 3 * img * img;
        let mut feeds: Vec<(String, ort::session::SessionInputValue<'_>)> = Vec::with_capacity(24);
        for (name, v) in &self.state {
            feeds.push((name.to_string(), v.into()));
        }
        for (name, data) in names::IMAGES.iter().zip(x.images) {
            if data.len() != img_len {
                return Err(EngineError::Size {
                    what: name.to_string(),
                    got: data.len(),
                    want: img_len,
                });
            }
            feeds.push((
                name.to_string(),
                TensorRef::from_array_view(([b, 3, img, img], data))?
                    .into_dyn()
                    .into(),
            ));
        }
        for (name, data) in names::TARGETS.iter().zip(x.targets) {
            if data.len() != b * b {
                return Err(EngineError::Size {
                    what: name.to_string(),
                    got: data.len(),
                    want: b * b,
                });
            }
            feeds.push((
                name.to_string(),
                TensorRef::from_array_view(([b, b], data))?
                    .into_dyn()
                    .into(),
            ));
        }
        let t = (self.steps_taken + 1) as f32;
        let mut scalars = vec![
            (names::LR, x.lr),
            (names::WD, x.wd),
            (names::STEP, t),
            (names::TEMPERATURE, x.temperature),
        ];
        if cfg.frame == Frame::Momentum {
            scalars.push((names::MOMENTUM, x.momentum));
        }
        for (name, v) in scalars {
            feeds.push((
                name.to_string(),
                Tensor::from_array(((), vec![v]))?.into_dyn().into(),
            ));
        }
        if cfg.has_drop_path() {
            let want = 2 * cfg.vit.depth * b;
            for (pass, data) in cfg.base_passes().iter().zip(&x.drop_path) {
                if data.len() != want {
                    return Err(EngineError::Size {
                        what: format!("drop-path masks of {pass}"),
                        got: data.len(),
                        want,
                    });
                }
                let name = format!("{}{pass}", names::DROP_PATH_PREFIX);
                feeds.push((
                    name,
                    TensorRef::from_array_view(([2 * cfg.vit.depth, b, 1, 1], *data))?
                        .into_dyn()
                        .into(),
                ));
            }
            if x.drop_path.len() != cfg.base_passes().len() {
                return Err(EngineError::Size {
                    what: "drop-path pass list".into(),
                    got: x.drop_path.len(),
                    want: cfg.base_passes().len(),
                });
            }
        }
        let mut outputs = self.session.run(feeds)?;
        let scalar = |o: &ort::session::SessionOutputs<'_>, n: &str| -> Result<f32, EngineError> {
            Ok(o[n].try_extract_tensor::<f32>()?.1[0])
        };
        let losses = Losses {
            src: scalar(&outputs, names::LOSSES[0])?,
            mix: scalar(&outputs, names::LOSSES[1])?,
            mix2: scalar(&outputs, names::LOSSES[2])?,
            total: scalar(&outputs, names::LOSSES[3])?,
        };
        let mut next = Vec::with_capacity(self.state.len());
        for ((name, _), out) in self.state.iter().zip(names::STATE_OUTPUTS) {
            let v = outputs
                .remove(out)
                .ok_or_else(|| EngineError::Setup(format!("step output `{out}` missing")))?;
            next.push((*name, v));
        }
        drop(outputs);
        self.state = next;
        self.steps_taken += 1;
        Ok(losses)
    }
}
