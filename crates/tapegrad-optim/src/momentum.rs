//! SGD with momentum (heavy ball or Nesterov), in PyTorch's or Keras's form.

use crate::optimizer::Optim;
use crate::rule::{c, check_lr, check_nonneg, check_unit, flag, flush_below, state_floor, Hyper, Rule};
use tapegrad_core::{Element, Error, Result};

/// Which of the two standard momentum recurrences a [`Momentum`] optimizer runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MomentumStyle {
    /// PyTorch's `SGD(momentum=μ, dampening=τ, nesterov=…)`: the buffer `b` accumulates
    /// gradients and the learning rate multiplies it at each step:
    ///
    /// ```text
    /// b₁ = g₁,  b_t ← μ·b_{t−1} + (1−τ)·g_t
    /// W ← W − η·b                 (heavy ball)
    /// W ← W − η·(g + μ·b)         (Nesterov)
    /// ```
    PyTorch,
    /// Keras's `SGD(momentum=μ, nesterov=…)` (the classic Sutskever et al. form): the
    /// velocity `v` accumulates learning-rate-scaled steps:
    ///
    /// ```text
    /// v₀ = 0,  v ← μ·v − η·g
    /// W ← W + v                   (heavy ball)
    /// W ← W + μ·v − η·g           (Nesterov)
    /// ```
    Keras,
}

/// Configuration of [`Momentum`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MomentumConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Momentum factor μ ∈ [0, 1].
    pub momentum: f64,
    /// Dampening τ ∈ [0, 1] (PyTorch style only; default 0).
    pub dampening: f64,
    /// L2 weight decay λ: `g ← g + λW` before the update (default 0).
    /// (Keras 3's `weight_decay` argument is decoupled, `W ← W − ηλW`; it is not offered here.)
    pub weight_decay: f64,
    /// Nesterov momentum (default off).
    pub nesterov: bool,
    /// Which recurrence.
    pub style: MomentumStyle,
}

impl MomentumConfig {
    /// PyTorch style (`torch.optim.SGD(lr=lr, momentum=0.9)`): μ = 0.9, no dampening,
    /// weight decay or Nesterov. (PyTorch's `momentum` defaults to 0, plain SGD; 0.9 is
    /// the value its examples and most recipes use.)
    pub fn pytorch(lr: f64) -> Self {
        MomentumConfig {
            lr,
            momentum: 0.9,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            style: MomentumStyle::PyTorch,
        }
    }

    /// Keras style (`keras.optimizers.SGD(learning_rate=lr, momentum=0.9)`): μ = 0.9,
    /// no weight decay or Nesterov. (Keras's `momentum` defaults to 0 too.)
    pub fn keras(lr: f64) -> Self {
        MomentumConfig {
            style: MomentumStyle::Keras,
            ..Self::pytorch(lr)
        }
    }
}

/// SGD with momentum μ, heavy-ball or Nesterov, in either [`MomentumStyle`].
///
/// With `g ← g + λW` (L2 weight decay, default λ = 0):
///
/// | | PyTorch ([`Momentum::pytorch`]) | Keras ([`Momentum::keras`]) |
/// |-|-|-|
/// | buffer | `b₁ = g`, `b ← μb + (1−τ)g` | `v₀ = 0`, `v ← μv − ηg` |
/// | heavy ball | `W ← W − η·b` | `W ← W + v` |
/// | Nesterov | `W ← W − η·(g + μb)` | `W ← W + μv − ηg` |
///
/// **When the two differ.** With dampening τ = 0 and a *constant* learning rate,
/// `v_t = −η·b_t` at every step, so both styles produce the same trajectory (up to
/// rounding). They differ when η changes (a schedule): PyTorch applies the new η to the
/// whole accumulated buffer at once, Keras only to new gradients, the old velocity
/// decaying at its old scale. PyTorch's first buffer is `g` itself, not `(1−τ)g`, so with
/// τ > 0 the PyTorch style has no Keras counterpart (and the Keras style rejects τ ≠ 0).
///
/// | preset | style | η | μ |
/// |-|-|-|-|
/// | [`Momentum::pytorch_default`] (`torch.optim.SGD(momentum=0.9)`) | PyTorch | 1e-3 | 0.9 |
/// | [`Momentum::keras_default`] (`keras.optimizers.SGD(momentum=0.9)`) | Keras | 0.01 | 0.9 |
///
/// Both frameworks default to `momentum = 0` (plain SGD, here [`Sgd`](crate::Sgd)); the
/// presets choose μ = 0.9, the usual value. Another μ, dampening τ, weight decay λ or
/// Nesterov: set the [`MomentumConfig`] fields, e.g.
/// `MomentumConfig { momentum: 0.95, nesterov: true, ..MomentumConfig::pytorch(0.1) }`.
///
/// State: one buffer per parameter, `"momentum_buffer"` (b) in the PyTorch style,
/// `"velocity"` (v) in the Keras style.
///
/// ```
/// use tapegrad_optim::{Momentum, Optimizer};
/// let (mut a, mut b) = (vec![1.0f64], vec![1.0f64]);
/// let mut torch = Momentum::pytorch(0.1)?;
/// let mut keras = Momentum::keras(0.1)?;
/// for _ in 0..5 {
///     let (ga, gb) = ([a[0]], [b[0]]); // ∂(½w²)/∂w = w
///     torch.step_slices(&mut [("w", &mut a[..], Some(&ga[..]))])?;
///     keras.step_slices(&mut [("w", &mut b[..], Some(&gb[..]))])?;
/// }
/// assert!((a[0] - b[0]).abs() < 1e-15); // same trajectory for a constant η
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub type Momentum<T> = Optim<MomentumConfig, T>;

impl<T: Element> Optim<MomentumConfig, T> {
    /// PyTorch-style momentum, μ = 0.9 ([`MomentumConfig::pytorch`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn pytorch(lr: f64) -> Result<Self> {
        Self::from_config(MomentumConfig::pytorch(lr))
    }

    /// Keras-style momentum, μ = 0.9 ([`MomentumConfig::keras`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn keras(lr: f64) -> Result<Self> {
        Self::from_config(MomentumConfig::keras(lr))
    }

    /// PyTorch style with η = 1e-3 (recent PyTorch's SGD default) and μ = 0.9.
    pub fn pytorch_default() -> Result<Self> {
        Self::pytorch(1e-3)
    }

    /// Keras style with η = 0.01 (Keras's SGD default) and μ = 0.9.
    pub fn keras_default() -> Result<Self> {
        Self::keras(0.01)
    }
}

impl Rule for MomentumConfig {
    const NAME: &'static str = "Momentum";
    const KIND: &'static str = "Momentum";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        let op = Self::NAME;
        check_lr(op, self.lr)?;
        check_unit(op, "momentum", self.momentum, true)?;
        check_unit(op, "dampening", self.dampening, true)?;
        check_nonneg(op, "weight_decay", self.weight_decay)?;
        if self.nesterov && (self.momentum == 0.0 || self.dampening != 0.0) {
            return Err(Error::bad_value(
                op,
                format!(
                    "Nesterov momentum needs momentum > 0 and zero dampening, got momentum={} dampening={}",
                    self.momentum, self.dampening
                ),
            ));
        }
        if self.style == MomentumStyle::Keras && self.dampening != 0.0 {
            return Err(Error::bad_value(
                op,
                format!("the Keras momentum form has no dampening, got {}", self.dampening),
            ));
        }
        Ok(())
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        match self.style {
            MomentumStyle::PyTorch => &["momentum_buffer"],
            MomentumStyle::Keras => &["velocity"],
        }
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("momentum", self.momentum),
            ("dampening", self.dampening),
            ("weight_decay", self.weight_decay),
            ("nesterov", flag(self.nesterov)),
            ("keras_style", flag(self.style == MomentumStyle::Keras)),
        ]
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        let cfg = MomentumConfig {
            lr: h.get("lr")?,
            momentum: h.get("momentum")?,
            dampening: h.get("dampening")?,
            weight_decay: h.get("weight_decay")?,
            nesterov: h.flag("nesterov")?,
            style: if h.flag("keras_style")? {
                MomentumStyle::Keras
            } else {
                MomentumStyle::PyTorch
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    #[inline(always)]
    fn update<T: Element, G: Fn(T) -> T + Copy>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [&mut [T]]) {
        let [buf] = st else {
            unreachable!("momentum keeps one buffer")
        };
        let (lr, mu, wd) = (c::<T>(self.lr), c::<T>(self.momentum), c::<T>(self.weight_decay));
        let one_minus_tau = c::<T>(1.0 - self.dampening);
        let (decay, nesterov) = (self.weight_decay != 0.0, self.nesterov);
        let first = t == 1;
        // The buffer is next multiplied by μ, and by η in PyTorch's form (Keras's holds η·g).
        let floor = match self.style {
            MomentumStyle::PyTorch => state_floor::<T>(&[self.momentum, self.lr]),
            MomentumStyle::Keras => state_floor::<T>(&[self.momentum]),
        };
        let it = p.iter_mut().zip(g).zip(buf.iter_mut());
        match self.style {
            MomentumStyle::PyTorch => {
                for ((p, &g), b) in it {
                    let mut g = prep(g);
                    if decay {
                        g += wd * *p;
                    }
                    *b = flush_below(if first { g } else { mu * *b + one_minus_tau * g }, floor);
                    let d = if nesterov { g + mu * *b } else { *b };
                    *p -= lr * d;
                }
            }
            MomentumStyle::Keras => {
                for ((p, &g), v) in it {
                    let mut g = prep(g);
                    if decay {
                        g += wd * *p;
                    }
                    *v = flush_below(mu * *v - lr * g, floor);
                    *p += if nesterov { mu * *v - lr * g } else { *v };
                }
            }
        }
    }
}
