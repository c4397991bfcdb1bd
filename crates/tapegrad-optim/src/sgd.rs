//! Plain stochastic gradient descent.

use crate::optimizer::Optim;
use crate::rule::{c, check_lr, check_nonneg, Hyper, Rule};
use tapegrad_core::{Element, Result};

/// Configuration of [`Sgd`]: `W ← W − η·(g + λW)`.
///
/// ```
/// use tapegrad_optim::{Optimizer, Sgd, SgdConfig};
/// let mut opt = Sgd::<f64>::from_config(SgdConfig { weight_decay: 0.5, ..SgdConfig::pytorch(0.1) })?;
/// let mut w = vec![2.0];
/// opt.step_slices(&mut [("w", &mut w[..], Some(&[1.0][..]))])?;
/// assert_eq!(w[0], 2.0 - 0.1 * (1.0 + 0.5 * 2.0));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SgdConfig {
    /// Learning rate η ≥ 0.
    pub lr: f64,
    /// L2 weight decay λ ≥ 0, added to the gradient (PyTorch's `weight_decay`; 0: none).
    pub weight_decay: f64,
}

impl SgdConfig {
    /// `torch.optim.SGD(lr=lr)`: no weight decay.
    pub fn pytorch(lr: f64) -> Self {
        SgdConfig { lr, weight_decay: 0.0 }
    }

    /// `keras.optimizers.SGD(learning_rate=lr)`: the same update (Keras's `weight_decay`
    /// is the decoupled kind and is not offered).
    pub fn keras(lr: f64) -> Self {
        SgdConfig { lr, weight_decay: 0.0 }
    }
}

/// Stochastic gradient descent (PyTorch's `SGD` and Keras's `SGD` with `momentum = 0`):
///
/// ```text
/// W ← W − η·(g + λW)
/// ```
///
/// with learning rate η and L2 weight decay λ. No state besides each parameter's update
/// count. For momentum see [`Momentum`](crate::Momentum).
///
/// | preset | η | λ |
/// |-|-|-|
/// | [`Sgd::pytorch_default`] | 1e-3 (PyTorch ≥ 2.2's default; older versions require η) | 0 |
/// | [`Sgd::keras_default`] (`keras.optimizers.SGD()`) | 0.01 | 0 |
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_optim::{Optimizer, Sgd};
/// let mut w = Tensor::<f32>::from_vec(vec![1.0, -2.0], [2])?.requires_grad();
/// let grads = w.mul(&w)?.sum_all().backward()?; // g = 2w
/// let mut opt = Sgd::pytorch(0.25)?;
/// opt.step(&mut [("w".to_string(), &mut w)], &grads)?;
/// assert_eq!(w.to_vec(), vec![0.5, -1.0]); // w − 0.25·2w
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub type Sgd<T> = Optim<SgdConfig, T>;

impl<T: Element> Optim<SgdConfig, T> {
    /// `torch.optim.SGD(params, lr)` ([`SgdConfig::pytorch`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn pytorch(lr: f64) -> Result<Self> {
        Self::from_config(SgdConfig::pytorch(lr))
    }

    /// `keras.optimizers.SGD(learning_rate=lr)` ([`SgdConfig::keras`]).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    pub fn keras(lr: f64) -> Result<Self> {
        Self::from_config(SgdConfig::keras(lr))
    }

    /// η = 1e-3, the default of recent PyTorch (≥ 2.2; older versions have none).
    pub fn pytorch_default() -> Result<Self> {
        Self::pytorch(1e-3)
    }

    /// η = 0.01, Keras's default.
    pub fn keras_default() -> Result<Self> {
        Self::keras(0.01)
    }
}

impl Rule for SgdConfig {
    const NAME: &'static str = "Sgd";
    const KIND: &'static str = "SGD";

    fn lr(&self) -> f64 {
        self.lr
    }

    fn set_lr(&mut self, lr: f64) {
        self.lr = lr;
    }

    fn validate(&self) -> Result<()> {
        check_lr(Self::NAME, self.lr)?;
        check_nonneg(Self::NAME, "weight_decay", self.weight_decay)
    }

    fn buffer_names(&self) -> &'static [&'static str] {
        &[]
    }

    fn hyper(&self) -> Vec<(&'static str, f64)> {
        vec![("lr", self.lr), ("weight_decay", self.weight_decay)]
    }

    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self> {
        Ok(SgdConfig {
            lr: h.get("lr")?,
            weight_decay: h.get("weight_decay")?,
        })
    }

    #[inline(always)]
    fn update<T: Element, G: Fn(T) -> T + Copy>(&self, _t: u64, p: &mut [T], g: &[T], prep: G, _st: &mut [&mut [T]]) {
        let (lr, wd) = (c::<T>(self.lr), c::<T>(self.weight_decay));
        if self.weight_decay == 0.0 {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * prep(g);
            }
        } else {
            for (p, &g) in p.iter_mut().zip(g) {
                *p -= lr * (prep(g) + wd * *p);
            }
        }
    }
}
