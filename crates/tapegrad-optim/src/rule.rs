//! What one optimizer supplies to the shared step ([`Rule`]), and the checks and helpers
//! the rules share.
//!
//! This module is private: [`Rule`] is public only so that
//! [`Optim<C, T>`](crate::Optim) can name it in bounds, and cannot be implemented or
//! called from outside the crate.

use tapegrad_core::{Element, Error, Result};

/// An optimizer's configuration and per-element update, independent of the element type.
///
/// Implemented by [`SgdConfig`](crate::SgdConfig), [`MomentumConfig`](crate::MomentumConfig),
/// [`RmsPropConfig`](crate::RmsPropConfig), [`AdamConfig`](crate::AdamConfig) and
/// [`AdamWConfig`](crate::AdamWConfig); [`Optim`](crate::Optim) does everything else
/// (checks, clipping, state by name, snapshots).
pub trait Rule: Clone + std::fmt::Debug + Send + Sync + 'static {
    /// The optimizer's name in errors, e.g. `"Adam"`.
    const NAME: &'static str;
    /// The optimizer's name in [`OptimizerState::kind`](crate::OptimizerState::kind),
    /// e.g. `"RMSprop"` (PyTorch's class names).
    const KIND: &'static str;
    /// The learning rate η.
    fn lr(&self) -> f64;
    /// Sets η (already checked to be finite and ≥ 0).
    fn set_lr(&mut self, lr: f64);
    /// Errors, naming [`Rule::NAME`], if a hyper-parameter is out of range.
    fn validate(&self) -> Result<()>;
    /// Names of the per-parameter state buffers, each as long as its parameter.
    fn buffer_names(&self) -> &'static [&'static str];
    /// The buffers that hold running averages of squares, never negative.
    fn nonnegative_buffers(&self) -> &'static [&'static str] {
        &[]
    }
    /// Hyper-parameters by name (flags as 0 or 1), for [`OptimizerState`](crate::OptimizerState).
    fn hyper(&self) -> Vec<(&'static str, f64)>;
    /// The inverse of [`Rule::hyper`] (validated by the caller).
    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self>;
    /// One parameter's update, fused over its elements: `t` counts this parameter's
    /// updates including this one (1 on its first), `prep` maps a raw gradient element to
    /// the one to use (clipping), `st` holds one buffer per [`Rule::buffer_names`], each
    /// as long as `p` and `g`.
    fn update<T: Element, G: Fn(T) -> T + Copy>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [&mut [T]]);
}

/// A state value (momentum, moment or running average) smaller in magnitude than `floor`
/// (from [`state_floor`]) stored as zero.
///
/// Running averages decay geometrically (Adam's m by β₁ = 0.9 a step) wherever a gradient
/// stops, so they pass through the subnormal range, and on x86 each vector operation that
/// reads or makes a subnormal costs ~100 cycles or more: it measured as a 60% slowdown of an
/// MNIST epoch when the stored values were subnormal, and, once they were flushed, still a
/// quarter of Adam's time on a Xeon (77–83 µs a step against 55–64 with the CPU flushing
/// subnormals), from the products of tiny normal moments with the step size (`m·α`) that
/// came out subnormal. Branch-free: it compiles to a compare and a
/// blend, so the loops around it still vectorise.
#[inline(always)]
pub(crate) fn flush_below<T: Element>(x: T, floor: T) -> T {
    if x.abs() < floor {
        T::zero()
    } else {
        x
    }
}

/// The smallest magnitude a state value keeps ([`flush_below`]): twice the smallest normal
/// number (1.2e-38 in `f32`) over the smallest of `factors`, the numbers the value is next
/// multiplied by (those above 1 or zero count as 1), so that neither the value nor its
/// product with any factor is subnormal (twice: a margin for the rounding of the bound).
/// A flushed value would have added at most `2·min_positive/(den)` to an update whose
/// divisor is `den`, or `2·min_positive` where it is multiplied, far below a parameter's
/// last bit unless the parameter is itself within a factor 2²⁴ of that.
pub(crate) fn state_floor<T: Element>(factors: &[f64]) -> T {
    let least = factors
        .iter()
        .map(|f| f.abs())
        .filter(|&f| f > 0.0)
        .fold(1.0f64, f64::min);
    let min = T::min_positive_value().as_f64();
    c::<T>((2.0 * min / least).min(T::max_value().as_f64()))
}

/// Clamps to `[-c, c]`, letting NaN through (so a NaN gradient still shows).
#[inline(always)]
pub(crate) fn clamp_abs<T: Element>(x: T, c: T) -> T {
    if x > c {
        c
    } else if x < -c {
        -c
    } else {
        x
    }
}

/// `b^t` in `f64` for a step count `t` (`powi` while `t` fits an `i32`).
#[inline]
pub(crate) fn pow_t(b: f64, t: u64) -> f64 {
    match i32::try_from(t) {
        Ok(t) => b.powi(t),
        Err(_) => b.powf(t as f64),
    }
}

/// `v` cast to the element type.
#[inline(always)]
pub(crate) fn c<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}

/// `1.0` for `true`, `0.0` for `false`: how flags are stored among the hyper-parameters.
pub(crate) fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

/// Reads named hyper-parameters out of a state, rejecting missing and unknown ones.
pub struct Hyper<'a> {
    op: &'static str,
    entries: &'a [(String, f64)],
    used: Vec<bool>,
}

impl<'a> Hyper<'a> {
    pub(crate) fn new(op: &'static str, entries: &'a [(String, f64)]) -> Self {
        Hyper {
            op,
            entries,
            used: vec![false; entries.len()],
        }
    }

    /// The value stored under `name`. Errors if there is none, or it is there twice.
    pub(crate) fn get(&mut self, name: &str) -> Result<f64> {
        let mut found = self.entries.iter().enumerate().filter(|(_, (k, _))| k == name);
        match (found.next(), found.next()) {
            (Some((i, &(_, v))), None) => {
                self.used[i] = true;
                Ok(v)
            }
            (None, _) => Err(Error::bad_value(
                self.op,
                format!("load_state: the state has no hyper-parameter `{name}`"),
            )),
            (Some(_), Some(_)) => Err(Error::bad_value(
                self.op,
                format!("load_state: the state has hyper-parameter `{name}` twice"),
            )),
        }
    }

    /// A flag: 0 or 1.
    pub(crate) fn flag(&mut self, name: &str) -> Result<bool> {
        match self.get(name)? {
            0.0 => Ok(false),
            1.0 => Ok(true),
            v => Err(Error::bad_value(
                self.op,
                format!("load_state: hyper-parameter `{name}` is a flag (0 or 1), got {v}"),
            )),
        }
    }

    /// A threshold that is off when stored as +∞.
    pub(crate) fn optional_positive(&mut self, name: &str) -> Result<Option<f64>> {
        let v = self.get(name)?;
        if v == f64::INFINITY {
            return Ok(None);
        }
        check_positive(self.op, name, v)?;
        Ok(Some(v))
    }

    /// Errors if an entry was never read.
    pub(crate) fn finish(self) -> Result<()> {
        match self.used.iter().position(|u| !u) {
            Some(i) => Err(Error::bad_value(
                self.op,
                format!(
                    "load_state: unexpected hyper-parameter `{}` in the state",
                    self.entries[i].0
                ),
            )),
            None => Ok(()),
        }
    }
}

/// `lr` must be finite and ≥ 0.
pub(crate) fn check_lr(op: &'static str, lr: f64) -> Result<()> {
    check_nonneg(op, "learning rate", lr)
}

/// `v` must be finite and ≥ 0.
pub(crate) fn check_nonneg(op: &'static str, name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::bad_value(op, format!("{name} must be finite and ≥ 0, got {v}")))
    }
}

/// `v` must be > 0 (∞ allowed) and not NaN.
pub(crate) fn check_positive(op: &'static str, name: &str, v: f64) -> Result<()> {
    if v > 0.0 {
        Ok(())
    } else {
        Err(Error::bad_value(op, format!("{name} must be > 0, got {v}")))
    }
}

/// `v` must lie in `[0, 1)`, or `[0, 1]` when `closed`.
pub(crate) fn check_unit(op: &'static str, name: &str, v: f64, closed: bool) -> Result<()> {
    let ok = v >= 0.0 && (v < 1.0 || (closed && v == 1.0));
    if ok {
        Ok(())
    } else {
        let range = if closed { "[0, 1]" } else { "[0, 1)" };
        Err(Error::bad_value(op, format!("{name} must lie in {range}, got {v}")))
    }
}
