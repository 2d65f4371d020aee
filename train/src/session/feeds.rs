//! The step's feeds, read from the compiled graph: which declared inputs hold the state (and
//! which output replaces each), which take the per-step host data (names, shapes, order), and
//! which outputs are the losses. The graph is the one source; nothing here repeats its list.

use super::error::{EngineError, InputMismatch};
use crate::step::{HostState, Losses, StepGraph, StepInputs, names};
use patchmix_export::graph::DType;

/// The state inputs a step may declare, each with the output that replaces it, in
/// [`HostState`] order.
const STATE: [(&str, &str); 5] = [
    (names::PARAMS, names::STATE_OUTPUTS[0]),
    (names::EXP_AVG, names::STATE_OUTPUTS[1]),
    (names::EXP_AVG_SQ, names::STATE_OUTPUTS[2]),
    (names::BUFFERS, names::STATE_OUTPUTS[3]),
    (names::MOMENTUM_PARAMS, names::STATE_OUTPUTS[4]),
];

/// One state input of the step.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StateSpec {
    /// The graph input.
    pub input: &'static str,
    /// The graph output holding its value after the step.
    pub output: &'static str,
    /// Its length.
    pub len: usize,
}

/// Where a per-step input's data comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Source {
    /// `StepInputs::images[i]`.
    Image(usize),
    /// `StepInputs::targets[i]`.
    Target(usize),
    /// `StepInputs::local[i]`.
    Local(usize),
    /// The learning rate.
    Lr,
    /// The weight decay.
    Wd,
    /// AdamW's step t.
    Step,
    /// The loss temperature.
    Temperature,
    /// The EMA momentum.
    Momentum,
    /// The fp16 loss scale.
    LossScale,
    /// `StepInputs::drop_path[i]`: the masks of base pass i.
    DropPath(usize),
}

/// One per-step input of the step (not the state).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct InputSpec {
    /// The graph input.
    pub name: String,
    /// Its shape (`[]` for scalars).
    pub shape: Vec<usize>,
    /// What feeds it.
    pub source: Source,
}

impl InputSpec {
    fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// How size errors name it.
    fn what(&self) -> String {
        match self.name.strip_prefix(names::DROP_PATH_PREFIX) {
            Some(pass) => format!("drop-path masks of {pass}"),
            None => self.name.clone(),
        }
    }
}

/// A loss term the step returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LossTerm {
    Src,
    Mix,
    Mix2,
    Total,
    Multi,
    MultiMix,
    GradsFinite,
}

fn loss_term(name: &str) -> Option<(&'static str, LossTerm)> {
    let [src, mix, mix2, total] = names::LOSSES;
    let [multi, multi_mix] = names::LOSS_MULTI;
    [
        (src, LossTerm::Src),
        (mix, LossTerm::Mix),
        (mix2, LossTerm::Mix2),
        (total, LossTerm::Total),
        (multi, LossTerm::Multi),
        (multi_mix, LossTerm::MultiMix),
        (names::GRADS_FINITE, LossTerm::GradsFinite),
    ]
    .into_iter()
    .find(|(n, _)| *n == name)
}

/// One step's host data, in [`StepIo::inputs`] order.
#[derive(Clone, Copy, Debug)]
pub(super) enum Feed<'a> {
    Slice(&'a [f32]),
    Scalar(f32),
}

/// What goes into and comes out of one run of a compiled step, in the graph's order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(super) struct StepIo {
    /// The state inputs, in the graph's order (that of [`HostState`]).
    pub state: Vec<StateSpec>,
    /// The per-step inputs, in the graph's order.
    pub inputs: Vec<InputSpec>,
    /// The loss outputs, in the graph's order.
    pub losses: Vec<(&'static str, LossTerm)>,
    /// How many drop-path inputs the step has (one per base pass, or none).
    drop_path_passes: usize,
}

impl StepIo {
    /// Reads the feeds of `step` from its graph's declared inputs and outputs.
    ///
    /// # Errors
    /// [`EngineError::UnfeedableInput`] for an input that is not f32 with a fixed shape or
    /// that no host data feeds; [`EngineError::MissingOutput`] for a state input without its
    /// output, or a step without one of the four losses.
    pub fn of(step: &StepGraph) -> Result<StepIo, EngineError> {
        let g = &step.graph;
        let passes = step.config.base_passes();
        let mut state = Vec::new();
        let mut inputs = Vec::new();
        let mut drop_path_passes = 0;
        let unfeedable = |name: &str, why| EngineError::UnfeedableInput {
            name: name.to_string(),
            why,
        };
        let outputs: Vec<&str> = g
            .outputs
            .iter()
            .map(|&v| g.value(v).name.as_str())
            .collect();
        for &v in &g.inputs {
            let name = g.value(v).name.as_str();
            let shape = g
                .fixed_shape(v)
                .map_err(|_| unfeedable(name, "its shape is not fixed"))?;
            if g.dtype(v) != DType::F32 {
                return Err(unfeedable(name, "its type is not f32"));
            }
            if let Some(&(input, output)) = STATE.iter().find(|(n, _)| *n == name) {
                if !outputs.contains(&output) {
                    return Err(EngineError::MissingOutput(output.to_string()));
                }
                state.push(StateSpec {
                    input,
                    output,
                    len: shape.iter().product(),
                });
                continue;
            }
            let position = |list: &[&str]| list.iter().position(|n| *n == name);
            let source = if let Some(i) = position(&names::IMAGES) {
                Source::Image(i)
            } else if let Some(i) = position(&names::TARGETS) {
                Source::Target(i)
            } else if let Some(i) = position(&names::LOCAL_IMAGES) {
                Source::Local(i)
            } else if let Some(pass) = name.strip_prefix(names::DROP_PATH_PREFIX) {
                drop_path_passes += 1;
                let i = passes
                    .iter()
                    .position(|p| *p == pass)
                    .ok_or_else(|| unfeedable(name, "not a base pass of the step"))?;
                Source::DropPath(i)
            } else {
                match name {
                    names::LR => Source::Lr,
                    names::WD => Source::Wd,
                    names::STEP => Source::Step,
                    names::TEMPERATURE => Source::Temperature,
                    names::MOMENTUM => Source::Momentum,
                    names::LOSS_SCALE => Source::LossScale,
                    _ => return Err(unfeedable(name, "an unknown input")),
                }
            };
            inputs.push(InputSpec {
                name: name.to_string(),
                shape,
                source,
            });
        }
        let losses: Vec<(&'static str, LossTerm)> =
            outputs.iter().filter_map(|n| loss_term(n)).collect();
        for required in names::LOSSES {
            if !losses.iter().any(|(n, _)| *n == required) {
                return Err(EngineError::MissingOutput(required.to_string()));
            }
        }
        Ok(StepIo {
            state,
            inputs,
            losses,
            drop_path_passes,
        })
    }

    fn has(&self, f: impl Fn(Source) -> bool) -> bool {
        self.inputs.iter().any(|s| f(s.source))
    }

    /// Checks a step's host inputs against the step and returns them in [`StepIo::inputs`]
    /// order; `t` is AdamW's step and `loss_scale` the fp16 loss scale.
    ///
    /// # Errors
    /// [`EngineError::Size`] for host data of the wrong size, [`EngineError::Input`] for local
    /// crops or a loss scale that the batch and the step disagree on.
    pub fn host_feeds<'a>(
        &self,
        x: &StepInputs<'a>,
        t: f32,
        loss_scale: Option<f32>,
    ) -> Result<Vec<Feed<'a>>, EngineError> {
        let pass_count = |got: usize| EngineError::Size {
            what: "drop-path pass list".into(),
            got,
            want: self.drop_path_passes,
        };
        let mut feeds = Vec::with_capacity(self.inputs.len());
        for spec in &self.inputs {
            let feed = match spec.source {
                Source::Image(i) => Feed::Slice(x.images[i]),
                Source::Target(i) => Feed::Slice(x.targets[i]),
                Source::Local(i) => {
                    Feed::Slice(x.local.ok_or(InputMismatch::MissingLocalCrops)?[i])
                }
                Source::Lr => Feed::Scalar(x.lr),
                Source::Wd => Feed::Scalar(x.wd),
                Source::Step => Feed::Scalar(t),
                Source::Temperature => Feed::Scalar(x.temperature),
                Source::Momentum => Feed::Scalar(x.momentum),
                Source::LossScale => {
                    Feed::Scalar(loss_scale.ok_or(InputMismatch::MissingLossScale)?)
                }
                Source::DropPath(i) => match x.drop_path.get(i) {
                    Some(d) => Feed::Slice(d),
                    None => return Err(pass_count(x.drop_path.len())),
                },
            };
            if let Feed::Slice(d) = feed
                && d.len() != spec.len()
            {
                return Err(EngineError::Size {
                    what: spec.what(),
                    got: d.len(),
                    want: spec.len(),
                });
            }
            feeds.push(feed);
        }
        if x.local.is_some() && !self.has(|s| matches!(s, Source::Local(_))) {
            return Err(InputMismatch::UnexpectedLocalCrops.into());
        }
        if loss_scale.is_some() && !self.has(|s| s == Source::LossScale) {
            return Err(InputMismatch::UnexpectedLossScale.into());
        }
        if self.drop_path_passes > 0 && x.drop_path.len() != self.drop_path_passes {
            return Err(pass_count(x.drop_path.len()));
        }
        Ok(feeds)
    }

    /// The losses from the values of [`StepIo::losses`], in that order. An fp16 step whose
    /// `grads_finite` is not 1 was skipped.
    pub fn losses_from(&self, values: &[f32]) -> Losses {
        let mut l = Losses {
            src: 0.0,
            mix: 0.0,
            mix2: 0.0,
            multi: 0.0,
            multi_mix: 0.0,
            total: 0.0,
            skipped: false,
        };
        for (&(_, term), &v) in self.losses.iter().zip(values) {
            match term {
                LossTerm::Src => l.src = v,
                LossTerm::Mix => l.mix = v,
                LossTerm::Mix2 => l.mix2 = v,
                LossTerm::Total => l.total = v,
                LossTerm::Multi => l.multi = v,
                LossTerm::MultiMix => l.multi_mix = v,
                LossTerm::GradsFinite => l.skipped = v != 1.0,
            }
        }
        l
    }
}

/// The part of a host state that feeds the state input `input`.
pub(super) fn host_part<'a>(h: &'a HostState, input: &str) -> &'a [f32] {
    match input {
        names::PARAMS => &h.params,
        names::EXP_AVG => &h.exp_avg,
        names::EXP_AVG_SQ => &h.exp_avg_sq,
        names::BUFFERS => &h.buffers,
        _ => &h.momentum,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::step::Precision;
    use crate::step::{Frame, LocalCrops, StepConfig, build_step};

    fn cfg(frame: Frame, drop_path: f32, local: Option<LocalCrops>) -> StepConfig {
        StepConfig {
            batch: 4,
            local,
            ..StepConfig::tiny(frame, drop_path)
        }
    }

    fn io(cfg: &StepConfig) -> StepIo {
        StepIo::of(&build_step(cfg).unwrap()).unwrap()
    }

    #[test]
    fn inputs_follow_the_feed_order_and_sizes() {
        let c = cfg(Frame::Momentum, 0.1, Some(LocalCrops { count: 2, img: 4 }));
        let io = io(&c);
        let state: Vec<(&str, &str)> = io.state.iter().map(|s| (s.input, s.output)).collect();
        assert_eq!(state, STATE);
        let specs = &io.inputs;
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            &names[..12],
            [
                "view1",
                "view2",
                "mix1",
                "mix2",
                "target_src",
                "target_mix",
                "target_mix2",
                "local",
                "local_mix",
                "lr",
                "wd",
                "step"
            ]
        );
        assert_eq!(&names[12..14], ["temperature", "momentum"]);
        let passes: Vec<String> = c
            .base_passes()
            .iter()
            .map(|p| format!("drop_path.{p}"))
            .collect();
        assert_eq!(
            &names[14..],
            passes.iter().map(String::as_str).collect::<Vec<_>>()
        );
        assert_eq!(specs[0].shape, [4, 3, 8, 8]);
        assert_eq!(specs[7].shape, [8, 3, 4, 4]);
        assert!(specs[9].shape.is_empty());
        // host_feeds yields one feed per spec, of the spec's size.
        let img = vec![0.0; 4 * 3 * 64];
        let tgt = vec![0.0; 16];
        let loc = vec![0.0; 8 * 3 * 16];
        let dp: Vec<Vec<f32>> = c
            .base_passes()
            .iter()
            .map(|p| vec![1.0; 2 * 2 * c.pass_rows(p)])
            .collect();
        let x = StepInputs {
            images: [&img, &img, &img, &img],
            targets: [&tgt, &tgt, &tgt],
            lr: 0.1,
            wd: 0.2,
            temperature: 0.3,
            momentum: 0.9,
            drop_path: dp.iter().map(Vec::as_slice).collect(),
            local: Some([&loc, &loc]),
        };
        let feeds = io.host_feeds(&x, 5.0, None).unwrap();
        assert_eq!(feeds.len(), specs.len());
        for (s, f) in specs.iter().zip(&feeds) {
            match f {
                Feed::Slice(d) => assert_eq!(d.len(), s.len(), "{}", s.name),
                Feed::Scalar(_) => assert!(s.shape.is_empty(), "{}", s.name),
            }
        }
        assert!(matches!(feeds[11], Feed::Scalar(v) if v == 5.0));
        assert!(matches!(feeds[13], Feed::Scalar(v) if v == 0.9));
        // Without local crops in the batch the step refuses it.
        let e = io.host_feeds(
            &StepInputs {
                local: None,
                ..x.clone()
            },
            1.0,
            None,
        );
        assert!(matches!(
            e,
            Err(EngineError::Input(InputMismatch::MissingLocalCrops))
        ));
        // A batch with local crops does not fit a step built without them.
        let plain = self::io(&cfg(Frame::Momentum, 0.1, None));
        assert!(matches!(
            plain.host_feeds(&x, 1.0, None),
            Err(EngineError::Input(InputMismatch::UnexpectedLocalCrops))
        ));
        // Wrong sizes name the input.
        let short = vec![0.0; 3];
        let e = io
            .host_feeds(
                &StepInputs {
                    drop_path: vec![&dp[0], &short],
                    ..x.clone()
                },
                1.0,
                None,
            )
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("drop-path masks of {}", c.base_passes()[1])),
            "{e}"
        );
        assert!(matches!(
            io.host_feeds(
                &StepInputs {
                    drop_path: vec![&dp[0]],
                    ..x.clone()
                },
                1.0,
                None
            ),
            Err(EngineError::Size { what, got: 1, .. }) if what == "drop-path pass list"
        ));
        // fp16 steps take the loss scale after the scalars, and insist on it.
        let h = StepConfig {
            precision: Precision::Fp16,
            ..c.clone()
        };
        let hio = self::io(&h);
        let feeds = hio.host_feeds(&x, 5.0, Some(1024.0)).unwrap();
        assert_eq!(feeds.len(), hio.inputs.len());
        assert_eq!(hio.inputs[14].name, names::LOSS_SCALE);
        assert!(matches!(feeds[14], Feed::Scalar(v) if v == 1024.0));
        assert!(matches!(
            hio.host_feeds(&x, 5.0, None),
            Err(EngineError::Input(InputMismatch::MissingLossScale))
        ));
        assert!(matches!(
            io.host_feeds(&x, 5.0, Some(1.0)),
            Err(EngineError::Input(InputMismatch::UnexpectedLossScale))
        ));
    }

    #[test]
    fn the_feeds_are_the_graph_inputs_after_the_state() {
        for c in [
            cfg(Frame::NoMomentum, 0.0, None),
            cfg(Frame::Momentum, 0.1, Some(LocalCrops { count: 2, img: 4 })),
            StepConfig {
                precision: Precision::Fp16,
                ..cfg(Frame::NoMomentum, 0.1, None)
            },
        ] {
            let step = build_step(&c).unwrap();
            let io = StepIo::of(&step).unwrap();
            let g = &step.graph;
            let declared: Vec<(String, Vec<usize>)> = g
                .inputs
                .iter()
                .map(|&v| (g.value(v).name.clone(), g.fixed_shape(v).unwrap()))
                .collect();
            let derived: Vec<(String, Vec<usize>)> = io
                .state
                .iter()
                .map(|s| (s.input.to_string(), vec![s.len]))
                .chain(io.inputs.iter().map(|s| (s.name.clone(), s.shape.clone())))
                .collect();
            assert_eq!(derived, declared);
            let l = &step.layout;
            let lens: Vec<usize> = io.state.iter().map(|s| s.len).collect();
            let mut want = vec![
                l.params.len(),
                l.params.len(),
                l.params.len(),
                l.buffers.len(),
            ];
            if c.frame == Frame::Momentum {
                want.push(l.momentum.len());
            }
            assert_eq!(lens, want);
        }
    }

    #[test]
    fn an_input_the_engine_cannot_feed_is_named() {
        let mut step = build_step(&cfg(Frame::NoMomentum, 0.0, None)).unwrap();
        step.graph.input(
            "extra",
            DType::F32,
            patchmix_export::graph::Shape::fixed(&[2]),
        );
        let e = StepIo::of(&step).unwrap_err().to_string();
        assert!(e.contains("`extra`"), "{e}");
    }

    #[test]
    fn loss_outputs_map_onto_losses() {
        let plain = io(&cfg(Frame::NoMomentum, 0.0, None));
        let names_of = |io: &StepIo| io.losses.iter().map(|(n, _)| *n).collect::<Vec<_>>();
        assert_eq!(names_of(&plain), names::LOSSES);
        let l = plain.losses_from(&[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(
            (l.src, l.mix, l.mix2, l.total, l.multi),
            (1.0, 2.0, 3.0, 4.0, 0.0)
        );
        let multi = cfg(
            Frame::NoMomentum,
            0.0,
            Some(LocalCrops { count: 2, img: 4 }),
        );
        let mio = io(&multi);
        assert_eq!(mio.losses.len(), 6);
        let l = mio.losses_from(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!((l.multi, l.multi_mix), (5.0, 6.0));
        assert!(!l.skipped);
        let half = io(&StepConfig {
            precision: Precision::Fp16,
            ..multi
        });
        assert_eq!(half.losses[6].0, names::GRADS_FINITE);
        assert!(
            !half
                .losses_from(&[1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 1.0])
                .skipped
        );
        assert!(
            half.losses_from(&[1.0, 2.0, 3.0, f32::NAN, 5.0, 6.0, 0.0])
                .skipped
        );
    }
}
