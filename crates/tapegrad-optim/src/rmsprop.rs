//! RMSProp, with ε inside or outside the square root, centered or not, with or without
//! momentum.

use crate::momentum::MomentumStyle;
use crate::optimizer::Optim;
use crate::rule::{c, check_lr, check_nonneg, check_unit, flag, flush_below, state_floor, Hyper, Rule};
use tapegrad_core::{Element, Result};

/// Where RMSProp adds ε to the denominator.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum EpsPlacement {
    /// `g / (√s + ε)` (PyTorch, TensorFlow 1).
    Outside,
    /// `g / √(s + ε)` (Keras).
    Inside,
}

/// Configuration of [`RmsProp`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct RmsPropConfig {
    /// Learning rate η.
    pub lr: f64,
    /// Decay ρ ∈ [0, 1) of the mean square (PyTorch's `alpha`, Keras's `rho`).
    pub rho: f64,
    /// ε ≥ 0, for numerical stability.
    pub eps: f64,
    /// Where ε goes.
    pub eps_placement: EpsPlacement,
    /// Centered RMSProp: divide by an estimate of the variance instead of the mean square.
    pub centered: bool,
    /// Momentum μ ∈ [0, 1] (0: none).
    pub momentum: f64,
    /// How the momentum buffer accumulates, when μ > 0.
    pub momentum_style: MomentumStyle,
    /// L2 weight decay λ: `g ← g + λW` before the update (PyTorch's `weight_decay`).
    /// (Keras 3's `weight_decay` argument is decoupled, `W ← W − ηλW`; it is not offered here.)
    pub weight_decay: f64,
}

impl RmsPropConfig {
    /// PyTorch's `RMSprop` defaults with learning rate `lr`: ρ = 0.99, ε = 1e-8 outside
    /// the root, not centered, no momentum, no weight decay.
    pub fn pytorch(lr: f64) -> Self {
        RmsPropConfig {
            lr,
            rho: 0.99,
            eps: 1e-8,
            eps_placement: EpsPlacement::Outside,
            centered: false,
            momentum: 0.0,
            momentum_style: MomentumStyle::PyTorch,
            weight_decay: 0.0,
        }
    }

    /// Keras's `RMSprop` defaults with learning rate `lr`: ρ = 0.9, ε = 1e-7 inside the
    /// root, not centered, no momentum.
    pub fn keras(lr: f64) -> Self {
        RmsPropConfig {
            lr,
            rho: 0.9,
            eps: 1e-7,
            eps_placement: EpsPlacement::Inside,
            centered: false,
            momentum: 0.0,
            momentum_style: MomentumStyle::Keras,
            weight_decay: 0.0,
        }
    }
}

impl Rule for RmsPropConfig {
    const NAME: &'static str = "RmsProp";
    const KIND: &'static str = "RMSprop";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn nonnegative_buffers(&self) -> &'static [&'static str] {
        &["square_avg"]
    }

    fn validate(&self) -> Result<()> {
        let op = Self::NAME;
        check_lr(op, self.lr)?;
        check_unit(op, "rho", self.rho, false)?;
        check_nonneg(op, "eps", self.eps)?;
        check_unit(op, "momentum", self.momentum, true)?;
        check_nonneg(op, "weight_decay", self.weight_decay)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        match (self.centered, self.momentum > 0.0) {
            (false, false) => &["square_avg"],
            (true, false) => &["square_avg", "grad_avg"],
            (false, true) => &["square_avg", "momentum_buffer"],
            (true, true) => &["square_avg", "grad_avg", "momentum_buffer"],
        }
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("rho", self.rho),
            ("eps", self.eps),
            ("eps_inside", flag(self.eps_placement == EpsPlacement::Inside)),
            ("centered", flag(self.centered)),
            ("momentum", self.momentum),
            ("keras_momentum", flag(self.momentum_style == MomentumStyle::Keras)),
            ("weight_decay", self.weight_decay),
        ]
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        let cfg = RmsPropConfig {
            lr: h.get("lr")?,
            rho: h.get("rho")?,
            eps: h.get("eps")?,
            eps_placement: if h.flag("eps_inside")? {
                EpsPlacement::Inside
            } else {
                EpsPlacement::Outside
            },
            centered: h.flag("centered")?,
            momentum: h.get("momentum")?,
            momentum_style: if h.flag("keras_momentum")? {
                MomentumStyle::Keras
            } else {
                MomentumStyle::PyTorch
            },
            weight_decay: h.get("weight_decay")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    #[inline(always)]
    fn update<T: Element, G: Fn(T) -> T + Copy>(&self, _t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [&mut [T]]) {
        let n = p.len();
        let (lr, rho, eps, mu, wd) = (
            c::<T>(self.lr),
            c::<T>(self.rho),
            c::<T>(self.eps),
            c::<T>(self.momentum),
            c::<T>(self.weight_decay),
        );
        let one_minus_rho = c::<T>(1.0 - self.rho);
        let decay = self.weight_decay != 0.0;
        let inside = self.eps_placement == EpsPlacement::Inside;
        let keras_momentum = self.momentum_style == MomentumStyle::Keras;
        let (s, rest) = st.split_first_mut().expect("RMSprop keeps a square average");
        let (mut avg, rest) = match (self.centered, rest) {
            (true, [a, rest @ ..]) => (Some(&mut a[..n]), rest),
            (_, rest) => (None, rest),
        };
        let mut buf = rest.first_mut().map(|b| &mut b[..n]);
        // The averages are next multiplied by ρ; the momentum buffer by μ, and by η in
        // PyTorch's form (Keras's holds η·q).
        let avg_floor = state_floor::<T>(&[self.rho]);
        let buf_floor = if keras_momentum {
            state_floor::<T>(&[self.momentum])
        } else {
            state_floor::<T>(&[self.momentum, self.lr])
        };
        let (s, g) = (&mut s[..n], &g[..n]);
        for i in 0..n {
            let mut gi = prep(g[i]);
            if decay {
                gi += wd * p[i];
            }
            s[i] = flush_below(rho * s[i] + one_minus_rho * (gi * gi), avg_floor);
            let mut den = s[i];
            if let Some(a) = avg.as_deref_mut() {
                a[i] = flush_below(rho * a[i] + one_minus_rho * gi, avg_floor);
                den -= a[i] * a[i];
            }
            let q = if inside {
                gi / (den + eps).sqrt()
            } else {
                gi / (den.sqrt() + eps)
            };
            match buf.as_deref_mut() {
                None => p[i] -= lr * q,
                Some(b) if keras_momentum => {
                    b[i] = flush_below(mu * b[i] + lr * q, buf_floor);
                    p[i] -= b[i];
                }
                Some(b) => {
                    b[i] = flush_below(mu * b[i] + q, buf_floor);
                    p[i] -= lr * b[i];
                }
            }
        }
    }
}

/// RMSProp (Hinton, 2012): divides each gradient by a running root mean square.
///
/// With `g ← g + λW` (L2 weight decay, default 0):
///
/// ```text
/// s ← ρ·s + (1−ρ)·g²                       (s₀ = 0)
/// ḡ ← ρ·ḡ + (1−ρ)·g,  s̃ = s − ḡ²           (centered;  s̃ = s otherwise)
/// q = g / (√s̃ + ε)     (EpsPlacement::Outside, PyTorch)
/// q = g / √(s̃ + ε)     (EpsPlacement::Inside, Keras)
/// W ← W − η·q                              (no momentum)
/// b ← μ·b + q,     W ← W − η·b             (momentum, MomentumStyle::PyTorch, b₀ = 0)
/// m ← μ·m + η·q,   W ← W − m               (momentum, MomentumStyle::Keras, m₀ = 0)
/// ```
///
/// | preset | η | ρ | ε | ε placement | momentum form |
/// |-|-|-|-|-|-|
/// | [`RmsProp::pytorch_default`] (`torch.optim.RMSprop`) | 1e-2 | 0.99 (`alpha`) | 1e-8 | outside | PyTorch |
/// | [`RmsProp::keras_default`] (`keras.optimizers.RMSprop`) | 1e-3 | 0.9 (`rho`) | 1e-7 | inside | Keras |
///
/// Both frameworks default to `momentum = 0`, `centered = False`.
///
/// **Where the presets differ.** On the first step `s = (1−ρ)g²`, so for `|g| ≫ ε` the
/// step is `η/√(1−ρ)`: 10η with PyTorch's ρ = 0.99 and about 3.16η with Keras's ρ = 0.9.
/// For `|g|` comparable to `√ε` the placement of ε matters too. The two momentum forms
/// agree for a constant η (`m = η·b`) and differ when η changes, as for [`Momentum`](crate::Momentum).
///
/// State per parameter: `"square_avg"` (s), then `"grad_avg"` (ḡ) if centered, then
/// `"momentum_buffer"` (b or m) if μ > 0.
///
/// ```
/// use tapegrad_optim::{Optimizer, RmsProp};
/// let (mut a, mut b) = (vec![0.0f64], vec![0.0f64]);
/// RmsProp::pytorch(1.0)?.step_slices(&mut [("w", &mut a[..], Some(&[1.0][..]))])?;
/// RmsProp::keras(1.0)?.step_slices(&mut [("w", &mut b[..], Some(&[1.0][..]))])?;
/// assert!((a[0] + 10.0).abs() < 1e-6);           // −η·1/(√0.01 + 1e-8)
/// assert!((b[0] + 0.1f64.powf(-0.5)).abs() < 1e-5); // −η·1/√(0.1 + 1e-7)
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub type RmsProp<T> = Optim<RmsPropConfig, T>;

impl<T: Element> Optim<RmsPropConfig, T> {
    /// PyTorch's defaults with learning rate `lr` ([`RmsPropConfig::pytorch`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn pytorch(lr: f64) -> Result<Self> {
        Self::from_config(RmsPropConfig::pytorch(lr))
    }

    /// Keras's defaults with learning rate `lr` ([`RmsPropConfig::keras`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn keras(lr: f64) -> Result<Self> {
        Self::from_config(RmsPropConfig::keras(lr))
    }

    /// `torch.optim.RMSprop()` with all its defaults (η = 1e-2).
    pub fn pytorch_default() -> Result<Self> {
        Self::pytorch(1e-2)
    }

    /// `keras.optimizers.RMSprop()` with all its defaults (η = 1e-3).
    pub fn keras_default() -> Result<Self> {
        Self::keras(1e-3)
    }
}
