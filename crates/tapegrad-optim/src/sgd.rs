//! Plain stochastic gradient descent.

use crate::engine::{c, check_lr, check_nonneg, Engine, Hyper, Ops, Rule};
use crate::optimizer::impl_optimizer;
use tapegrad_core::{Element, Result};

/// Configuration of [`Sgd`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate η (default `0.01`, Keras's; recent PyTorch's is `1e-3`).
    pub lr: f64,
    /// L2 weight decay λ, added to the gradient (default `0`).
    pub weight_decay: f64,
}

impl Default for SgdConfig {
    /// `lr = 0.01` (Keras `SGD`), `weight_decay = 0`.
    fn default() -> Self {
        SgdConfig {
            lr: 0.01,
            weight_decay: 0.0,
        }
    }
}

impl SgdConfig {
    /// `lr` with no weight decay.
    pub fn new(lr: f64) -> Self {
        SgdConfig { lr, weight_decay: 0.0 }
    }

    /// The same configuration with L2 weight decay λ.
    pub fn with_weight_decay(self, weight_decay: f64) -> Self {
        SgdConfig { weight_decay, ..self }
    }

    fn validate(&self) -> Result<()> {
        let op = <Self as Rule>::OPS.new;
        check_lr(op, self.lr)?;
        check_nonneg(op, "weight_decay", self.weight_decay)
    }
}

/// Stochastic gradient descent:
///
/// ```text
/// W ← W − η·(g + λW)
/// ```
///
/// with learning rate η and L2 weight decay λ (PyTorch's `SGD` with `momentum=0`, and
/// Keras's `SGD` with `momentum=0` when λ = 0). No state. Defaults: η = 0.01 (Keras;
/// recent PyTorch versions default to 1e-3, older ones require η), λ = 0. For momentum
/// see [`Momentum`](crate::Momentum).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_optim::{Optimizer, Sgd};
/// let mut w = Tensor::<f32>::from_vec(vec![1.0, -2.0], [2])?.requires_grad();
/// let grads = w.mul(&w)?.sum_all().backward()?; // g = 2w
/// let mut opt = Sgd::new(0.25)?;
/// opt.step(&mut [&mut w], &grads)?;
/// assert_eq!(w.to_vec(), vec![0.5, -1.0]); // w − 0.25·2w
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Sgd<T: Element> {
    cfg: SgdConfig,
    eng: Engine<T>,
}

impl<T: Element> Sgd<T> {
    /// SGD with learning rate `lr` and no weight decay.
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn new(lr: f64) -> Result<Self> {
        Self::from_config(SgdConfig::new(lr))
    }

    /// SGD with Keras's default learning rate, 0.01.
    pub fn keras_default() -> Result<Self> {
        Self::from_config(SgdConfig::default())
    }

    /// SGD from a full configuration.
    ///
    /// Errors if `lr` or `weight_decay` is NaN, infinite or negative.
    pub fn from_config(cfg: SgdConfig) -> Result<Self> {
        cfg.validate()?;
        Ok(Sgd {
            cfg,
            eng: Engine::new(),
        })
    }
}

impl Rule for SgdConfig {
    const KIND: &'static str = "SGD";
    const OPS: Ops = Ops {
        new: "Sgd",
        step: "Sgd.step",
        set_lr: "Sgd.set_learning_rate",
        set_clip: "Sgd.set_grad_clip",
        load: "Sgd.load_state",
    };

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &[]
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![("lr", self.lr), ("weight_decay", self.weight_decay)]
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        let cfg = SgdConfig {
            lr: h.get("lr")?,
            weight_decay: h.get("weight_decay")?,
        };
        cfg.validate()?;
        Ok(cfg)
    }

    fn update<T: Element, G: Fn(T) -> T>(&self, _t: u64, p: &mut [T], g: &[T], prep: G, _st: &mut [Vec<T>]) {
        let (lr, wd) = (c::<T>(self.lr), c::<T>(self.weight_decay));
        let decay = self.weight_decay != 0.0;
        for (p, &g) in p.iter_mut().zip(g) {
            let mut g = prep(g);
            if decay {
                g += wd * *p;
            }
            *p -= lr * g;
        }
    }
}

impl_optimizer!(Sgd, SgdConfig);
