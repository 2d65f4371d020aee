//! The stages a training step is compiled from, in graph order. Each stage adds its nodes in
//! its own scopes; node order, value names and scopes follow from the order the stages run
//! in, so [`super::build_step_with`] calls them in a fixed order.
//!
//! | stage | in | out |
//! |---|---|---|
//! | [`inputs`] | config, layout | graph inputs; parameter and BN buffer views |
//! | [`ema`] | flat params, momentum params, μ | EMA-updated momentum params |
//! | [`encoder_pass`] | images of a pass | CLS features |
//! | [`heads`] | features | projections (projector), queries (predictor) |
//! | [`passes`] | image inputs | every pass in the PatchMix order: queries and keys |
//! | [`losses`] | queries, keys, targets, τ | loss terms and total |
//! | [`backward`] | loss (scaled: [`loss_scaling::scale_loss`]) | flat gradient |
//! | [`loss_scaling`] | flat gradient, loss scale | unscaled gradient, finiteness flag |
//! | [`optimizer`] | state, lr, wd, step, gradient | updated params and moments |
//! | [`outputs`] | updated state, losses | graph outputs |
//!
//! A data-parallel step all-reduces the flat gradient between [`backward`] and
//! [`loss_scaling::unscale`]. A fine-tuning step ([`crate::step::build_finetune_step`])
//! chains [`finetune_inputs`], [`classifier`] (the encoder with drop path, the head, the
//! soft-target cross-entropy), [`loss_scaling`], [`backward`], the layer-decay
//! [`optimizer`] and the model EMA of [`ema`].

pub(crate) mod backward;
pub(crate) mod classifier;
pub(crate) mod ema;
pub(crate) mod encoder_pass;
pub(crate) mod finetune_inputs;
pub(crate) mod heads;
pub(crate) mod inputs;
pub(crate) mod loss_scaling;
pub(crate) mod losses;
pub(crate) mod optimizer;
pub(crate) mod outputs;
pub(crate) mod passes;
