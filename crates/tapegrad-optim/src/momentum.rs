//! SGD with momentum (heavy ball or Nesterov), in PyTorch's or Keras's form.

use crate::engine::{c, check_lr, check_nonneg, check_unit, flush_subnormal, Engine, Hyper, Ops, Rule};
use crate::optimizer::impl_optimizer;
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
    /// PyTorch style with learning rate `lr` and momentum `momentum`; no dampening,
    /// weight decay or Nesterov.
    pub fn pytorch(lr: f64, momentum: f64) -> Self {
        MomentumConfig {
            lr,
            momentum,
            dampening: 0.0,
            weight_decay: 0.0,
            nesterov: false,
            style: MomentumStyle::PyTorch,
        }
    }

    /// Keras style with learning rate `lr` and momentum `momentum`; no weight decay or Nesterov.
    pub fn keras(lr: f64, momentum: f64) -> Self {
        MomentumConfig {
            style: MomentumStyle::Keras,
            ..Self::pytorch(lr, momentum)
        }
    }

    /// The same configuration with Nesterov momentum on or off.
    pub fn with_nesterov(self, nesterov: bool) -> Self {
        MomentumConfig { nesterov, ..self }
    }

    /// The same configuration with dampening τ (PyTorch style only).
    pub fn with_dampening(self, dampening: f64) -> Self {
        MomentumConfig { dampening, ..self }
    }

    /// The same configuration with L2 weight decay λ.
    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        MomentumConfig { weight_decay, ..self }
    }

    fn validate(&self) -> Result<()> {
        let op = <Self as Rule>::OPS.new;
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
/// Defaults in the frameworks: PyTorch `SGD(lr=1e-3, momentum=0, dampening=0,
/// nesterov=False)`, Keras `SGD(learning_rate=0.01, momentum=0.0, nesterov=False)`; here
/// η and μ are always given. State: one buffer per parameter, `"momentum_buffer"` (b) in
/// the PyTorch style, `"velocity"` (v) in the Keras style.
///
/// ```
/// use tapegrad_optim::{Momentum, Optimizer};
/// let (mut a, mut b) = (vec![1.0f64], vec![1.0f64]);
/// let mut torch = Momentum::pytorch(0.1, 0.9)?;
/// let mut keras = Momentum::keras(0.1, 0.9)?;
/// for _ in 0..5 {
///     let (ga, gb) = ([a[0]], [b[0]]); // ∂(½w²)/∂w = w
///     torch.step_slices(&mut [(&mut a[..], Some(&ga[..]))])?;
///     keras.step_slices(&mut [(&mut b[..], Some(&gb[..]))])?;
/// }
/// assert!((a[0] - b[0]).abs() < 1e-15); // same trajectory for a constant η
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Momentum<T: Element> {
    cfg: MomentumConfig,
    eng: Engine<T>,
}

impl<T: Element> Momentum<T> {
    /// PyTorch-style momentum ([`MomentumConfig::pytorch`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative, or `momentum` is outside [0, 1].
    pub fn pytorch(lr: f64, momentum: f64) -> Result<Self> {
        Self::from_config(MomentumConfig::pytorch(lr, momentum))
    }

    /// Keras-style momentum ([`MomentumConfig::keras`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative, or `momentum` is outside [0, 1].
    pub fn keras(lr: f64, momentum: f64) -> Result<Self> {
        Self::from_config(MomentumConfig::keras(lr, momentum))
    }

    /// Momentum from a full configuration.
    ///
    /// Errors on an invalid value (see the fields), Nesterov without momentum or with
    /// dampening, or dampening in the Keras style.
    pub fn from_config(cfg: MomentumConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Momentum {
            cfg,
            eng: Engine::new(),
        })
    }
}

impl Rule for MomentumConfig {
    const KIND: &'static str = "Momentum";
    const OPS: Ops = Ops {
        new: "Momentum",
        step: "Momentum.step",
        set_lr: "Momentum.set_learning_rate",
        set_clip: "Momentum.set_grad_clip",
        load: "Momentum.load_state",
    };

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
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
            ("nesterov", f64::from(u8::from(self.nesterov))),
            ("keras_style", f64::from(u8::from(self.style == MomentumStyle::Keras))),
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

    fn update<T: Element, G: Fn(T) -> T>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [Vec<T>]) {
        let [buf] = st else {
            unreachable!("momentum keeps one buffer")
        };
        let (lr, mu, wd) = (c::<T>(self.lr), c::<T>(self.momentum), c::<T>(self.weight_decay));
        let one_minus_tau = c::<T>(1.0 - self.dampening);
        let (decay, nesterov) = (self.weight_decay != 0.0, self.nesterov);
        let first = t == 1;
        let it = p.iter_mut().zip(g).zip(buf.iter_mut());
        match self.style {
            MomentumStyle::PyTorch => {
                for ((p, &g), b) in it {
                    let mut g = prep(g);
                    if decay {
                        g += wd * *p;
                    }
                    *b = flush_subnormal(if first { g } else { mu * *b + one_minus_tau * g });
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
                    *v = flush_subnormal(mu * *v - lr * g);
                    *p += if nesterov { mu * *v - lr * g } else { *v };
                }
            }
        }
    }
}

impl_optimizer!(Momentum, MomentumConfig);
