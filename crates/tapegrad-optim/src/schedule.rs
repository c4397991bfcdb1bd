//! Learning-rate schedules: closed-form functions of the step (or epoch) count `t`.
//!
//! A schedule only computes η_t; the training loop sets it, e.g. once per epoch:
//!
//! ```
//! use tapegrad_optim::{Adam, LrSchedule, Optimizer, StepDecay};
//! let sched = StepDecay::new(0.1, 0.5, 10)?; // η_t = 0.1·0.5^⌊t/10⌋
//! let mut opt = Adam::<f32>::pytorch(0.1)?;
//! for epoch in 0..30u64 {
//!     sched.apply(&mut opt, epoch)?;
//!     // … one epoch of opt.step(…) …
//! }
//! assert_eq!(opt.learning_rate(), 0.025);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```

use crate::optimizer::Optimizer;
use crate::rule::{check_lr, check_nonneg};
use std::f64::consts::PI;
use tapegrad_core::{Element, Error, Result};

/// A learning rate as a function of the step (or epoch) count `t = 0, 1, 2, …`.
pub trait LrSchedule {
    /// η_t.
    fn lr(&self, t: u64) -> f64;

    /// Sets `opt`'s learning rate to η_t.
    ///
    /// Errors if η_t is NaN, infinite or negative.
    fn apply<T: Element, O: Optimizer<T> + ?Sized>(&self, opt: &mut O, t: u64) -> Result<()>
    where
        Self: Sized,
    {
        opt.set_learning_rate(self.lr(t))
    }
}

/// η_t = η for every `t`.
///
/// ```
/// use tapegrad_optim::{ConstantLr, LrSchedule};
/// assert_eq!(ConstantLr(0.1).lr(1000), 0.1);
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConstantLr(pub f64);

impl LrSchedule for ConstantLr {
    fn lr(&self, _t: u64) -> f64 {
        self.0
    }
}

/// Step decay, PyTorch's `StepLR`: `η_t = η₀·γ^⌊t/s⌋` (multiply by γ every `s` steps).
///
/// ```
/// use tapegrad_optim::{LrSchedule, StepDecay};
/// assert_eq!(StepDecay::new(0.1, 0.5, 10)?.lr(25), 0.025);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct StepDecay {
    /// η₀.
    pub initial: f64,
    /// γ, the factor applied every `step_size` steps.
    pub gamma: f64,
    /// s ≥ 1 (0 is treated as 1).
    pub step_size: u64,
}

impl StepDecay {
    /// Errors if η₀ or γ is NaN, infinite or negative, or `step_size` is 0.
    pub fn new(initial: f64, gamma: f64, step_size: u64) -> Result<Self> {
        check_lr("StepDecay", initial)?;
        check_nonneg("StepDecay", "gamma", gamma)?;
        if step_size == 0 {
            return Err(Error::bad_value("StepDecay", "step_size must be ≥ 1, got 0"));
        }
        Ok(StepDecay {
            initial,
            gamma,
            step_size,
        })
    }
}

impl LrSchedule for StepDecay {
    fn lr(&self, t: u64) -> f64 {
        self.initial * pow_u64(self.gamma, t / self.step_size.max(1))
    }
}

/// Multi-step decay, PyTorch's `MultiStepLR`: `η_t = η₀·γ^k`, with `k` the number of
/// milestones `≤ t` (multiply by γ at each milestone; a milestone listed twice counts
/// twice, as in PyTorch).
///
/// ```
/// use tapegrad_optim::{LrSchedule, MultiStepDecay};
/// let s = MultiStepDecay::new(0.1, vec![30, 80], 0.1)?;
/// assert_eq!((s.lr(29), s.lr(30), s.lr(80)), (0.1, 0.1 * 0.1, 0.1 * 0.1 * 0.1));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug, PartialEq)]
pub struct MultiStepDecay {
    /// η₀.
    pub initial: f64,
    /// The steps (or epochs) at which η is multiplied by γ, in increasing order.
    pub milestones: Vec<u64>,
    /// γ, the factor applied at each milestone.
    pub gamma: f64,
}

impl MultiStepDecay {
    /// `milestones` in any order (they are sorted).
    ///
    /// Errors if η₀ or γ is NaN, infinite or negative.
    pub fn new(initial: f64, mut milestones: Vec<u64>, gamma: f64) -> Result<Self> {
        check_lr("MultiStepDecay", initial)?;
        check_nonneg("MultiStepDecay", "gamma", gamma)?;
        milestones.sort_unstable();
        Ok(MultiStepDecay {
            initial,
            milestones,
            gamma,
        })
    }
}

impl LrSchedule for MultiStepDecay {
    fn lr(&self, t: u64) -> f64 {
        let passed = self.milestones.partition_point(|&m| m <= t);
        self.initial * pow_u64(self.gamma, passed as u64)
    }
}

/// Exponential decay, PyTorch's `ExponentialLR`: `η_t = η₀·γ^t`.
///
/// (Keras's `ExponentialDecay(η₀, decay_steps, decay_rate)` is `η₀·decay_rate^(t/decay_steps)`,
/// i.e. γ = decay_rate^(1/decay_steps).)
///
/// ```
/// use tapegrad_optim::{ExponentialDecay, LrSchedule};
/// assert_eq!(ExponentialDecay::new(2.0, 0.5)?.lr(3), 0.25);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ExponentialDecay {
    /// η₀.
    pub initial: f64,
    /// γ, the factor applied every step.
    pub gamma: f64,
}

impl ExponentialDecay {
    /// Errors if η₀ or γ is NaN, infinite or negative.
    pub fn new(initial: f64, gamma: f64) -> Result<Self> {
        check_lr("ExponentialDecay", initial)?;
        check_nonneg("ExponentialDecay", "gamma", gamma)?;
        Ok(ExponentialDecay { initial, gamma })
    }
}

impl LrSchedule for ExponentialDecay {
    fn lr(&self, t: u64) -> f64 {
        self.initial * pow_u64(self.gamma, t)
    }
}

/// Cosine annealing from η₀ down to η_min over `period` = T steps:
///
/// ```text
/// η_t = η_min + ½(η₀ − η_min)·(1 + cos(π·t/T))   for t ≤ T,   η_t = η_min for t > T
/// ```
///
/// For `t ≤ T` this is PyTorch's `CosineAnnealingLR(T_max=T, eta_min=η_min)` in closed
/// form. After T it stays at η_min, like Keras's `CosineDecay` and optax's
/// `cosine_decay_schedule` (PyTorch's would rise again along the cosine).
///
/// ```
/// use tapegrad_optim::{CosineAnnealing, LrSchedule};
/// let s = CosineAnnealing::new(1.0, 0.0, 100)?;
/// assert_eq!((s.lr(0), s.lr(100), s.lr(200)), (1.0, 0.0, 0.0));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CosineAnnealing {
    /// η₀, at `t = 0`.
    pub initial: f64,
    /// η_min, from `t = T` on.
    pub min: f64,
    /// T ≥ 1 (0 is treated as 1).
    pub period: u64,
}

impl CosineAnnealing {
    /// Errors if η₀ or η_min is NaN, infinite or negative, or `period` is 0.
    pub fn new(initial: f64, min: f64, period: u64) -> Result<Self> {
        check_lr("CosineAnnealing", initial)?;
        check_nonneg("CosineAnnealing", "min", min)?;
        if period == 0 {
            return Err(Error::bad_value("CosineAnnealing", "period must be ≥ 1, got 0"));
        }
        Ok(CosineAnnealing { initial, min, period })
    }
}

impl LrSchedule for CosineAnnealing {
    fn lr(&self, t: u64) -> f64 {
        let period = self.period.max(1);
        if t >= period {
            return self.min;
        }
        let x = t as f64 / period as f64;
        self.min + 0.5 * (self.initial - self.min) * (1.0 + (PI * x).cos())
    }
}

/// `b^n` for a `u64` exponent.
fn pow_u64(b: f64, n: u64) -> f64 {
    match i32::try_from(n) {
        Ok(n) => b.powi(n),
        Err(_) => b.powf(n as f64),
    }
}
