//! Adam, in PyTorch's or Keras's form (the update that AdamW shares).

use crate::optimizer::Optim;
use crate::rule::{c, check_lr, check_nonneg, check_unit, flag, flush_below, pow_t, state_floor, Hyper, Rule};
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
    /// L2 weight decay λ ≥ 0 added to the gradient, `g ← g + λθ` (PyTorch's `Adam`; 0:
    /// none). For decoupled decay (Keras 3's `weight_decay`) use [`AdamW`](crate::AdamW).
    pub weight_decay: f64,
    /// How bias correction and ε are applied.
    pub form: AdamForm,
}

impl AdamConfig {
    /// `torch.optim.Adam(lr=lr)`: β = (0.9, 0.999), ε = 1e-8, no weight decay.
    pub fn pytorch(lr: f64) -> Self {
        AdamConfig {
            lr,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
            weight_decay: 0.0,
            form: AdamForm::PyTorch,
        }
    }

    /// `keras.optimizers.Adam(learning_rate=lr)`: β = (0.9, 0.999), ε̂ = 1e-7, the Keras form.
    pub fn keras(lr: f64) -> Self {
        AdamConfig {
            eps: 1e-7,
            form: AdamForm::Keras,
            ..Self::pytorch(lr)
        }
    }
}

/// Adam (Kingma & Ba, 2015), optionally with L2 weight decay (for decoupled weight decay
/// see [`AdamW`](crate::AdamW)).
///
/// Both [`AdamForm`]s keep the same moments, with `t` the number of updates this
/// parameter has received (1 on its first):
///
/// ```text
/// g ← g + λθ                   (L2 weight decay, when λ > 0)
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
/// opt.step_slices(&mut [("w", &mut w[..], Some(&[0.5][..]))])?;
/// // m̂ = g, v̂ = g², so the first step is η·g/(|g| + ε) ≈ η.
/// assert!((w[0] - 0.9).abs() < 1e-7);
/// assert_eq!(opt.step_count(), 1);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub type Adam<T> = Optim<AdamConfig, T>;

impl<T: Element> Optim<AdamConfig, T> {
    /// `torch.optim.Adam(params, lr)` ([`AdamConfig::pytorch`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn pytorch(lr: f64) -> Result<Self> {
        Self::from_config(AdamConfig::pytorch(lr))
    }

    /// `keras.optimizers.Adam(learning_rate=lr)` ([`AdamConfig::keras`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn keras(lr: f64) -> Result<Self> {
        Self::from_config(AdamConfig::keras(lr))
    }

    /// `torch.optim.Adam()` with all its defaults (η = 1e-3).
    pub fn pytorch_default() -> Result<Self> {
        Self::pytorch(1e-3)
    }

    /// `keras.optimizers.Adam()` with all its defaults (η = 1e-3).
    pub fn keras_default() -> Result<Self> {
        Self::keras(1e-3)
    }
}

impl Rule for AdamConfig {
    const NAME: &'static str = "Adam";
    const KIND: &'static str = "Adam";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        validate_adam(Self::NAME, self)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &["exp_avg", "exp_avg_sq"]
    }

    fn nonnegative_buffers(&self) -> &'static [&'static str] {
        &["exp_avg_sq"]
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        adam_hyper(self)
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        adam_from_hyper(h)
    }

    #[inline(always)]
    fn update<T: Element, G: Fn(T) -> T + Copy>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [&mut [T]]) {
        adam_update(self, false, t, p, g, prep, st);
    }
}

/// The range checks shared by Adam and AdamW.
pub(crate) fn validate_adam(op: &'static str, cfg: &AdamConfig) -> Result<()> {
    check_lr(op, cfg.lr)?;
    check_unit(op, "beta1", cfg.beta1, false)?;
    check_unit(op, "beta2", cfg.beta2, false)?;
    check_nonneg(op, "eps", cfg.eps)?;
    check_nonneg(op, "weight_decay", cfg.weight_decay)
}

/// The hyper-parameters of Adam and AdamW, by name.
pub(crate) fn adam_hyper(cfg: &AdamConfig) -> Vec<(&'static str, f64)> {
    vec![
        ("lr", cfg.lr),
        ("beta1", cfg.beta1),
        ("beta2", cfg.beta2),
        ("eps", cfg.eps),
        ("weight_decay", cfg.weight_decay),
        ("keras_form", flag(cfg.form == AdamForm::Keras)),
    ]
}

/// The inverse of [`adam_hyper`].
pub(crate) fn adam_from_hyper(h: &mut Hyper<'_>) -> Result<AdamConfig> {
    Ok(AdamConfig {
        lr: h.get("lr")?,
        beta1: h.get("beta1")?,
        beta2: h.get("beta2")?,
        eps: h.get("eps")?,
        weight_decay: h.get("weight_decay")?,
        form: if h.flag("keras_form")? {
            AdamForm::Keras
        } else {
            AdamForm::PyTorch
        },
    })
}

/// One Adam or AdamW update of a parameter (`decoupled`: λ shrinks θ instead of adding
/// to g). Bias corrections are computed in `f64` once, the per-element arithmetic in `T`.
#[inline(always)]
pub(crate) fn adam_update<T: Element, G: Fn(T) -> T + Copy>(
    cfg: &AdamConfig,
    decoupled: bool,
    t: u64,
    p: &mut [T],
    g: &[T],
    prep: G,
    st: &mut [&mut [T]],
) {
    let [m, v] = st else {
        unreachable!("Adam keeps two buffers")
    };
    let l2 = !decoupled && cfg.weight_decay != 0.0;
    let decoupled = decoupled && cfg.weight_decay != 0.0;
    let bc1 = 1.0 - pow_t(cfg.beta1, t);
    let bc2 = 1.0 - pow_t(cfg.beta2, t);
    let keras = cfg.form == AdamForm::Keras;
    // PyTorch: step size η/bc1 and divisor √bc2; Keras: α = η·√bc2/bc1.
    let step = if keras { cfg.lr * bc2.sqrt() / bc1 } else { cfg.lr / bc1 };
    let d = if keras { T::one() } else { c::<T>(bc2.sqrt()) };
    // m is next multiplied by β₁ and by the step size (PyTorch: after the division), v by
    // β₂: below these floors they are stored as zero, so that no product of theirs is
    // subnormal.
    let k = AdamCoefs {
        m_floor: state_floor(&[cfg.beta1, step]),
        v_floor: state_floor(&[cfg.beta2]),
        b1: c(cfg.beta1),
        b2: c(cfg.beta2),
        one_minus_b1: c(1.0 - cfg.beta1),
        one_minus_b2: c(1.0 - cfg.beta2),
        eps: c(cfg.eps),
        a: c(step),
        d,
        wd: c(cfg.weight_decay),
        shrink: c(1.0 - cfg.lr * cfg.weight_decay),
    };
    // One loop per combination, so no branch sits inside the per-element loop and the
    // compiler vectorises each (sqrt and division included).
    match (keras, l2, decoupled) {
        (true, false, false) => adam_loop::<T, G, true, false, false>(&k, p, g, prep, m, v),
        (false, false, false) => adam_loop::<T, G, false, false, false>(&k, p, g, prep, m, v),
        (true, true, _) => adam_loop::<T, G, true, true, false>(&k, p, g, prep, m, v),
        (false, true, _) => adam_loop::<T, G, false, true, false>(&k, p, g, prep, m, v),
        (true, false, true) => adam_loop::<T, G, true, false, true>(&k, p, g, prep, m, v),
        (false, false, true) => adam_loop::<T, G, false, false, true>(&k, p, g, prep, m, v),
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
    /// The magnitudes below which m and v are stored as zero ([`state_floor`]).
    m_floor: T,
    v_floor: T,
}

/// The fused Adam update over one parameter's slice.
#[inline(always)]
fn adam_loop<T: Element, G: Fn(T) -> T + Copy, const KERAS: bool, const L2: bool, const DECOUPLED: bool>(
    k: &AdamCoefs<T>,
    p: &mut [T],
    g: &[T],
    prep: G,
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
        m[i] = flush_below(k.b1 * m[i] + k.one_minus_b1 * gi, k.m_floor);
        v[i] = flush_below(k.b2 * v[i] + k.one_minus_b2 * (gi * gi), k.v_floor);
        if KERAS {
            p[i] -= (m[i] * k.a) / (v[i].sqrt() + k.eps);
        } else {
            p[i] -= k.a * (m[i] / (v[i].sqrt() / k.d + k.eps));
        }
    }
}
