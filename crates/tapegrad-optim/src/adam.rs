//! Adam and AdamW, in PyTorch's or Keras's form.

use crate::engine::{c, check_lr, check_nonneg, check_unit, flush_subnormal, pow_t, Engine, Hyper, Ops, Rule};
use crate::optimizer::impl_optimizer;
use tapegrad_core::{Element, Result};

/// How Adam applies the bias corrections and ε.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AdamForm {
    /// PyTorch / optax (Algorithm 1 of Kingma & Ba): ε is added to the bias-corrected root:
    ///
    /// ```text
    /// θ ← θ − η·m̂/(√v̂ + ε),   m̂ = m/(1−β₁ᵗ),  v̂ = v/(1−β₂ᵗ)
    /// ```
    ///
    /// computed as PyTorch does: `θ ← θ − (η/(1−β₁ᵗ))·m/(√v/√(1−β₂ᵗ) + ε)`.
    PyTorch,
    /// Keras / TensorFlow (the "efficient" form of Kingma & Ba, Section 2): the bias
    /// corrections are folded into the step size and ε is added to the raw root:
    ///
    /// ```text
    /// α = η·√(1−β₂ᵗ)/(1−β₁ᵗ),   θ ← θ − α·m/(√v + ε̂)
    /// ```
    ///
    /// This equals the PyTorch form with `ε = ε̂/√(1−β₂ᵗ)`, a much larger ε early on.
    Keras,
}

/// Configuration of [`Adam`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// Learning rate η.
    pub lr: f64,
    /// β₁ ∈ [0, 1), decay of the first moment.
    pub beta1: f64,
    /// β₂ ∈ [0, 1), decay of the second moment.
    pub beta2: f64,
    /// ε ≥ 0.
    pub eps: f64,
    /// Weight decay λ ≥ 0 (0: none). Keras 3's `weight_decay` argument (on any
    /// optimizer) is the decoupled kind: set `decoupled` to match it.
    pub weight_decay: f64,
    /// `false`: L2 decay added to the gradient, `g ← g + λθ` (PyTorch's `Adam`).
    /// `true`: decoupled decay `θ ← θ·(1 − ηλ)` before the Adam step (`AdamW`).
    pub decoupled: bool,
    /// How bias correction and ε are applied.
    pub form: AdamForm,
}

impl AdamConfig {
    /// `torch.optim.Adam` with learning rate `lr`: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn pytorch(lr: f64) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            decoupled: false,
            form: AdamForm::PyTorch,
        }
    }

    /// `keras.optimizers.Adam` with learning rate `lr`: β = (0.9, 0.999), ε̂ = 1e-7.
    pub fn keras(lr: f64) -> Self {
        AdamConfig {
            eps: 1e-7,
            form: AdamForm::Keras,
            ..Self::pytorch(lr)
        }
    }

    /// `torch.optim.AdamW` with learning rate `lr` and weight decay λ (PyTorch's default
    /// λ is 0.01): β = (0.9, 0.999), ε = 1e-8.
    pub fn adamw(lr: f64, weight_decay: f64) -> Self {
        Self::pytorch(lr).with_decoupled_weight_decay(weight_decay)
    }

    /// `keras.optimizers.AdamW` with learning rate `lr` and weight decay λ (Keras's
    /// default λ is 0.004): β = (0.9, 0.999), ε̂ = 1e-7.
    pub fn adamw_keras(lr: f64, weight_decay: f64) -> Self {
        Self::keras(lr).with_decoupled_weight_decay(weight_decay)
    }

    /// The same configuration with β₁, β₂.
    pub fn with_betas(self, beta1: f64, beta2: f64) -> Self {
        AdamConfig { beta1, beta2, ..self }
    }

    /// The same configuration with ε.
    pub fn with_eps(self, eps: f64) -> Self {
        AdamConfig { eps, ..self }
    }

    /// The same configuration with L2 weight decay λ added to the gradient (PyTorch's `Adam`).
    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        AdamConfig {
            weight_decay,
            decoupled: false,
            ..self
        }
    }

    /// The same configuration with decoupled weight decay λ (`AdamW`).
    pub fn with_decoupled_weight_decay(self, weight_decay: f64) -> Self {
        AdamConfig {
            weight_decay,
            decoupled: true,
            ..self
        }
    }

    fn validate(&self) -> Result<()> {
        let op = <Self as Rule>::OPS.new;
        check_lr(op, self.lr)?;
        check_unit(op, "beta1", self.beta1, false)?;
        check_unit(op, "beta2", self.beta2, false)?;
        check_nonneg(op, "eps", self.eps)?;
        check_nonneg(op, "weight_decay", self.weight_decay)
    }
}

/// Adam (Kingma & Ba, 2015), optionally with L2 or decoupled (AdamW) weight decay.
///
/// Both [`AdamForm`]s keep the same moments, with `t` the number of updates this
/// parameter has received (1 on its first):
///
/// ```text
/// g ← g + λθ                   (L2 weight decay, Adam)
/// θ ← θ·(1 − ηλ)               (decoupled weight decay, AdamW; before the step)
/// m ← β₁·m + (1−β₁)·g          (m₀ = 0)
/// v ← β₂·v + (1−β₂)·g²         (v₀ = 0)
/// θ ← θ − η·m̂/(√v̂ + ε),        m̂ = m/(1−β₁ᵗ), v̂ = v/(1−β₂ᵗ)     (AdamForm::PyTorch)
/// θ ← θ − α·m/(√v + ε̂),        α = η·√(1−β₂ᵗ)/(1−β₁ᵗ)           (AdamForm::Keras)
/// ```
///
/// Bias corrections are computed in `f64` once per parameter and step, then cast to `T`;
/// the per-element arithmetic is in `T`.
///
/// | preset | form | η | β₁, β₂ | ε | weight decay |
/// |-|-|-|-|-|-|
/// | [`Adam::pytorch_default`] (`torch.optim.Adam`) | PyTorch | 1e-3 | 0.9, 0.999 | 1e-8 | 0 (L2) |
/// | [`Adam::keras_default`] (`keras.optimizers.Adam`) | Keras | 1e-3 | 0.9, 0.999 | 1e-7 | none |
/// | [`Adam::adamw_default`] (`torch.optim.AdamW`) | PyTorch | 1e-3 | 0.9, 0.999 | 1e-8 | 0.01 (decoupled) |
/// | [`Adam::adamw_keras`]`(1e-3, 0.004)` (`keras…AdamW`) | Keras | 1e-3 | 0.9, 0.999 | 1e-7 | 0.004 (decoupled) |
///
/// **Where the forms differ.** Only through ε: the Keras form is the PyTorch form with
/// `ε = ε̂/√(1−β₂ᵗ)` (≈ 31.6·ε̂ on the first step). With gradients far above ε they agree;
/// with tiny gradients they do not: for `g = 10⁻⁹` the first PyTorch step is
/// `η·g/(|g| + 10⁻⁸) ≈ 0.091η`, the first Keras step `≈ 3·10⁻⁴·η`.
///
/// `t` is counted per parameter, as PyTorch does (Keras counts optimizer iterations);
/// the two agree whenever every parameter gets a gradient at every step.
/// State per parameter: `"exp_avg"` (m) and `"exp_avg_sq"` (v).
///
/// ```
/// use tapegrad_optim::{Adam, Optimizer};
/// let mut w = vec![1.0f64];
/// let mut opt = Adam::pytorch(0.1)?;
/// opt.step_slices(&mut [(&mut w[..], Some(&[0.5][..]))])?;
/// // m̂ = g, v̂ = g², so the first step is η·g/(|g| + ε) ≈ η.
/// assert!((w[0] - 0.9).abs() < 1e-7);
/// assert_eq!(opt.step_count(), 1);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Adam<T: Element> {
    cfg: AdamConfig,
    eng: Engine<T>,
}

/// AdamW (Loshchilov & Hutter, 2019) is [`Adam`] with decoupled weight decay
/// (`AdamConfig::decoupled`): build it with [`Adam::adamw`], [`Adam::adamw_default`] or
/// [`Adam::adamw_keras`].
pub type AdamW<T> = Adam<T>;

impl<T: Element> Adam<T> {
    /// `torch.optim.Adam` with learning rate `lr` ([`AdamConfig::pytorch`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn pytorch(lr: f64) -> Result<Self> {
        Self::from_config(AdamConfig::pytorch(lr))
    }

    /// `torch.optim.Adam()` with all its defaults (η = 1e-3).
    pub fn pytorch_default() -> Result<Self> {
        Self::pytorch(1e-3)
    }

    /// `keras.optimizers.Adam` with learning rate `lr` ([`AdamConfig::keras`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn keras(lr: f64) -> Result<Self> {
        Self::from_config(AdamConfig::keras(lr))
    }

    /// `keras.optimizers.Adam()` with all its defaults (η = 1e-3).
    pub fn keras_default() -> Result<Self> {
        Self::keras(1e-3)
    }

    /// `torch.optim.AdamW` with learning rate `lr` and weight decay λ ([`AdamConfig::adamw`]).
    ///
    /// Errors if `lr` or `weight_decay` is NaN, infinite or negative.
    pub fn adamw(lr: f64, weight_decay: f64) -> Result<Self> {
        Self::from_config(AdamConfig::adamw(lr, weight_decay))
    }

    /// `torch.optim.AdamW()` with all its defaults (η = 1e-3, λ = 0.01).
    pub fn adamw_default() -> Result<Self> {
        Self::adamw(1e-3, 0.01)
    }

    /// `keras.optimizers.AdamW` with learning rate `lr` and weight decay λ
    /// ([`AdamConfig::adamw_keras`]; Keras's defaults are η = 1e-3, λ = 0.004).
    ///
    /// Errors if `lr` or `weight_decay` is NaN, infinite or negative.
    pub fn adamw_keras(lr: f64, weight_decay: f64) -> Result<Self> {
        Self::from_config(AdamConfig::adamw_keras(lr, weight_decay))
    }

    /// Adam from a full configuration.
    ///
    /// Errors if `lr`, `eps` or `weight_decay` is NaN, infinite or negative, or a β is
    /// outside [0, 1).
    pub fn from_config(cfg: AdamConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Adam {
            cfg,
            eng: Engine::new(),
        })
    }
}

fn flag(b: bool) -> f64 {
    f64::from(u8::from(b))
}

impl Rule for AdamConfig {
    const KIND: &'static str = "Adam";
    const OPS: Ops = Ops {
        new: "Adam",
        step: "Adam.step",
        set_lr: "Adam.set_learning_rate",
        set_clip: "Adam.set_grad_clip",
        load: "Adam.load_state",
    };

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![
            ("lr", self.lr),
            ("beta1", self.beta1),
            ("beta2", self.beta2),
            ("eps", self.eps),
            ("weight_decay", self.weight_decay),
            ("decoupled", flag(self.decoupled)),
            ("keras_form", flag(self.form == AdamForm::Keras)),
        ]
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        let cfg = AdamConfig {
            lr: h.get("lr")?,
            beta1: h.get("beta1")?,
            beta2: h.get("beta2")?,
            eps: h.get("eps")?,
            weight_decay: h.get("weight_decay")?,
            decoupled: h.flag("decoupled")?,
            form: if h.flag("keras_form")? {
                AdamForm::Keras
            } else {
                AdamForm::PyTorch
            },
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn update<T: Element, G: Fn(T) -> T>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [Vec<T>]) {
        let [m, v] = st else {
            unreachable!("Adam keeps two buffers")
        };
        let (b1, b2, eps) = (c::<T>(self.beta1), c::<T>(self.beta2), c::<T>(self.eps));
        let (one_minus_b1, one_minus_b2) = (c::<T>(1.0 - self.beta1), c::<T>(1.0 - self.beta2));
        let l2 = !self.decoupled && self.weight_decay != 0.0;
        let decoupled = self.decoupled && self.weight_decay != 0.0;
        let wd = c::<T>(self.weight_decay);
        let shrink = c::<T>(1.0 - self.lr * self.weight_decay);
        let bc1 = 1.0 - pow_t(self.beta1, t);
        let bc2 = 1.0 - pow_t(self.beta2, t);
        let keras = self.form == AdamForm::Keras;
        // PyTorch: step size η/bc1 and divisor √bc2; Keras: α = η·√bc2/bc1.
        let (a, d) = if keras {
            (c::<T>(self.lr * bc2.sqrt() / bc1), T::one())
        } else {
            (c::<T>(self.lr / bc1), c::<T>(bc2.sqrt()))
        };
        let k = AdamCoefs {
            b1,
            b2,
            one_minus_b1,
            one_minus_b2,
            eps,
            a,
            d,
            wd,
            shrink,
        };
        // One loop per combination, so no branch sits inside the per-element loop and the
        // compiler vectorises each (sqrt and division included).
        match (keras, l2, decoupled) {
            (true, false, false) => adam_loop::<T, G, true, false, false>(&k, p, g, &prep, m, v),
            (false, false, false) => adam_loop::<T, G, false, false, false>(&k, p, g, &prep, m, v),
            (true, true, _) => adam_loop::<T, G, true, true, false>(&k, p, g, &prep, m, v),
            (false, true, _) => adam_loop::<T, G, false, true, false>(&k, p, g, &prep, m, v),
            (true, false, true) => adam_loop::<T, G, true, false, true>(&k, p, g, &prep, m, v),
            (false, false, true) => adam_loop::<T, G, false, false, true>(&k, p, g, &prep, m, v),
        }
    }
}

/// The per-step constants of one Adam update.
struct AdamCoefs<T> {
    b1: T,
    b2: T,
    one_minus_b1: T,
    one_minus_b2: T,
    eps: T,
    /// Step size: η·√bc2/bc1 (Keras) or η/bc1 (PyTorch).
    a: T,
    /// Divisor of √v: 1 (Keras) or √bc2 (PyTorch).
    d: T,
    wd: T,
    shrink: T,
}

/// The fused Adam update over one parameter's slice.
#[inline(always)]
fn adam_loop<T: Element, G: Fn(T) -> T, const KERAS: bool, const L2: bool, const DECOUPLED: bool>(
    k: &AdamCoefs<T>,
    p: &mut [T],
    g: &[T],
    prep: &G,
    m: &mut [T],
    v: &mut [T],
) {
    let n = p.len().min(g.len()).min(m.len()).min(v.len());
    let (p, g, m, v) = (&mut p[..n], &g[..n], &mut m[..n], &mut v[..n]);
    for i in 0..n {
        let mut gi = prep(g[i]);
        if L2 {
            gi += k.wd * p[i];
        }
        if DECOUPLED {
            p[i] *= k.shrink;
        }
        m[i] = flush_subnormal(k.b1 * m[i] + k.one_minus_b1 * gi);
        v[i] = flush_subnormal(k.b2 * v[i] + k.one_minus_b2 * (gi * gi));
        if KERAS {
            p[i] -= (m[i] * k.a) / (v[i].sqrt() + k.eps);
        } else {
            p[i] -= k.a * (m[i] / (v[i].sqrt() / k.d + k.eps));
        }
    }
}

impl_optimizer!(Adam, AdamConfig);
