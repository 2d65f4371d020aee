//! Dynamic loss scaling for fp16 steps, with PyTorch's `GradScaler` rule.
//!
//! The step graph multiplies the loss by `loss_scale` before the backward pass, divides the
//! gradient by it again in f32, and applies AdamW only when every gradient is finite (it
//! outputs `grads_finite`; otherwise parameters and moments come back unchanged). The host
//! then updates the scale: halve it after a step with an overflow, double it after
//! [`GROWTH_INTERVAL`] finite steps in a row (PyTorch's defaults: init 2¹⁶, growth 2, backoff
//! 0.5, interval 2000). A skipped step does not advance AdamW's step count.

use serde::{Deserialize, Serialize};

/// The first scale (`GradScaler(init_scale=2.**16)`).
pub const INIT_SCALE: f32 = 65536.0;
/// The factor applied after [`GROWTH_INTERVAL`] finite steps.
pub const GROWTH_FACTOR: f32 = 2.0;
/// The factor applied after an overflow.
pub const BACKOFF_FACTOR: f32 = 0.5;
/// Finite steps in a row before the scale grows.
pub const GROWTH_INTERVAL: u32 = 2000;

/// The loss scaler's state (saved in checkpoints).
///
/// # Examples
/// ```
/// use patchmix_train::step::{LossScaler, INIT_SCALE};
/// let mut s = LossScaler::default();
/// s.update(false);
/// assert_eq!(s.scale, INIT_SCALE / 2.0);
/// assert_eq!(s.skipped, 1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    /// The current scale.
    pub scale: f32,
    /// Finite steps since the last change of scale.
    pub growth_tracker: u32,
    /// Steps skipped for non-finite gradients since the run began.
    pub skipped: u64,
}

impl Default for LossScaler {
    fn default() -> LossScaler {
        LossScaler {
            scale: INIT_SCALE,
            growth_tracker: 0,
            skipped: 0,
        }
    }
}

impl LossScaler {
    /// Updates the scale after a step whose gradients were (`finite`) or were not all finite.
    pub fn update(&mut self, finite: bool) {
        if finite {
            self.growth_tracker += 1;
            if self.growth_tracker == GROWTH_INTERVAL {
                let grown = self.scale * GROWTH_FACTOR;
                if grown.is_finite() {
                    self.scale = grown;
                }
                self.growth_tracker = 0;
            }
        } else {
            self.scale *= BACKOFF_FACTOR;
            self.growth_tracker = 0;
            self.skipped += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_after_the_interval_and_backs_off_on_overflow() {
        let mut s = LossScaler::default();
        for _ in 0..GROWTH_INTERVAL - 1 {
            s.update(true);
        }
        assert_eq!(s.scale, INIT_SCALE);
        s.update(true);
        assert_eq!((s.scale, s.growth_tracker), (INIT_SCALE * 2.0, 0));
        s.update(true);
        s.update(false);
        assert_eq!((s.scale, s.growth_tracker, s.skipped), (INIT_SCALE, 0, 1));
    }

    #[test]
    fn never_grows_to_infinity() {
        let mut s = LossScaler {
            scale: f32::MAX,
            growth_tracker: GROWTH_INTERVAL - 1,
            skipped: 0,
        };
        s.update(true);
        assert_eq!(s.scale, f32::MAX);
    }
}
