//! AdamW: Adam with decoupled weight decay, in PyTorch's or Keras's form.

use crate::adam::{adam_from_hyper, adam_hyper, adam_update, validate_adam, AdamConfig, AdamForm};
use crate::optimizer::Optim;
use crate::rule::{Hyper, Rule};
use tapegrad_core::{Element, Result};

/// Configuration of [`AdamW`]: the fields of [`AdamConfig`], with `weight_decay` decoupled.
///
/// ```
/// use tapegrad_optim::{AdamW, AdamWConfig, Optimizer};
/// let mut opt = AdamW::<f64>::from_config(AdamWConfig { weight_decay: 0.1, ..AdamWConfig::pytorch(1e-2) })?;
/// let mut w = vec![1.0];
/// opt.step_slices(&mut [("w", &mut w[..], Some(&[0.0][..]))])?;
/// assert_eq!(w[0], 1.0 - 1e-2 * 0.1); // g = 0: only the decay moves θ
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamWConfig {
    /// Learning rate η.
    pub lr: f64,
    /// β₁ ∈ [0, 1), decay of the first moment.
    pub beta1: f64,
    /// β₂ ∈ [0, 1), decay of the second moment.
    pub beta2: f64,
    /// ε ≥ 0.
    pub eps: f64,
    /// Decoupled weight decay λ ≥ 0: `θ ← θ·(1 − ηλ)` before the Adam step.
    pub weight_decay: f64,
    /// How bias correction and ε are applied.
    pub form: AdamForm,
}

impl AdamWConfig {
    /// `torch.optim.AdamW(lr=lr)`: β = (0.9, 0.999), ε = 1e-8, λ = 0.01.
    pub fn pytorch(lr: f64) -> Self {
        AdamWConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.01,
            form: AdamForm::PyTorch,
        }
    }

    /// `keras.optimizers.AdamW(learning_rate=lr)`: β = (0.9, 0.999), ε̂ = 1e-7,
    /// λ = 0.004, the Keras form.
    pub fn keras(lr: f64) -> Self {
        AdamWConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-7,
            weight_decay: 0.004,
            form: AdamForm::Keras,
        }
    }

    /// The same numbers as an [`AdamConfig`] (whose `weight_decay` is L2).
    fn as_adam(&self) -> AdamConfig {
        AdamConfig {
            lr: self.lr,
            beta1: self.beta1,
            beta2: self.beta2,
            eps: self.eps,
            weight_decay: self.weight_decay,
            form: self.form,
        }
    }
}

/// AdamW (Loshchilov & Hutter, 2019): [`Adam`](crate::Adam) with the weight decay
/// decoupled from the gradient. Per element, with `t` this parameter's update count:
///
/// ```text
/// θ ← θ·(1 − ηλ)               (before the Adam step)
/// m ← β₁·m + (1−β₁)·g,  v ← β₂·v + (1−β₂)·g²
/// θ ← θ − η·m̂/(√v̂ + ε),        m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)     (AdamForm::PyTorch)
/// θ ← θ − α·m/(√v + ε̂),        α = η·√(1−β₂ᵗ)/(1−β₁ᵗ)           (AdamForm::Keras)
/// ```
///
/// | preset | form | η | β₁, β₂ | ε | λ |
/// |-|-|-|-|-|-|
/// | [`AdamW::pytorch_default`] (`torch.optim.AdamW()`) | PyTorch | 1e-3 | 0.9, 0.999 | 1e-8 | 0.01 |
/// | [`AdamW::keras_default`] (`keras.optimizers.AdamW()`) | Keras | 1e-3 | 0.9, 0.999 | 1e-7 | 0.004 |
///
/// Both frameworks shrink θ by `ηλ` with the current η (Keras multiplies λ by the
/// learning rate too). State per parameter: `"exp_avg"` (m) and `"exp_avg_sq"` (v).
///
/// ```
/// use tapegrad_optim::{AdamW, Optimizer};
/// let mut w = vec![1.0f64];
/// let mut opt = AdamW::pytorch(0.1)?;
/// opt.step_slices(&mut [("w", &mut w[..], Some(&[0.5][..]))])?;
/// // θ·(1 − 0.1·0.01), then the first Adam step of ≈ η.
/// assert!((w[0] - (0.999 - 0.1)).abs() < 1e-7);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub type AdamW<T> = Optim<AdamWConfig, T>;

impl<T: Element> Optim<AdamWConfig, T> {
    /// `torch.optim.AdamW(params, lr)` ([`AdamWConfig::pytorch`], λ = 0.01).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn pytorch(lr: f64) -> Result<Self> {
        Self::from_config(AdamWConfig::pytorch(lr))
    }

    /// `keras.optimizers.AdamW(learning_rate=lr)` ([`AdamWConfig::keras`], λ = 0.004).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn keras(lr: f64) -> Result<Self> {
        Self::from_config(AdamWConfig::keras(lr))
    }

    /// `torch.optim.AdamW()` with all its defaults (η = 1e-3, λ = 0.01).
    pub fn pytorch_default() -> Result<Self> {
        Self::pytorch(1e-3)
    }

    /// `keras.optimizers.AdamW()` with all its defaults (η = 1e-3, λ = 0.004).
    pub fn keras_default() -> Result<Self> {
        Self::keras(1e-3)
    }
}

impl Rule for AdamWConfig {
    const NAME: &'static str = "AdamW";
    const KIND: &'static str = "AdamW";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        validate_adam(Self::NAME, &self.as_adam())
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn nonnegative_buffers(&self) -> &'static [&'static str] {
        &["exp_avg_sq"]
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        adam_hyper(&self.as_adam())
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        let a = adam_from_hyper(h)?;
        Ok(AdamWConfig {
            lr: a.lr,
            beta1: a.beta1,
            beta2: a.beta2,
            eps: a.eps,
            weight_decay: a.weight_decay,
            form: a.form,
        })
    }

    #[inline(always)]
    fn update<T: Element, G: Fn(T) -> T + Copy>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [&mut [T]]) {
        adam_update(&self.as_adam(), true, t, p, g, prep, st);
    }
}
