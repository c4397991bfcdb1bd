//! Parameter-free layers: [`Activation`] and its layer forms ([`ReLU`], [`Sigmoid`],
//! [`Tanh`], [`Softmax`], [`LeakyReLU`]), and [`Flatten`].

use crate::module::Module;
use tapegrad_core::{Element, Error, Result, Tensor};

/// An elementwise (or, for softmax, row-wise) nonlinearity, usable inside a
/// [`Dense`](crate::Dense) or on its own as a layer.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::Activation;
/// let x = Tensor::<f64>::from_vec(vec![-2.0, 0.5], [2])?;
/// assert_eq!(Activation::Relu.apply(&x)?.to_vec(), vec![0.0, 0.5]);
/// assert_eq!(Activation::LeakyRelu(0.1).apply(&x)?.to_vec(), vec![-0.2, 0.5]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Default)]
pub enum Activation {
    /// The identity, `f(x) = x` (Keras's `activation=None`/`"linear"`).
    #[default]
    Linear,
    /// `max(x, 0)`.
    Relu,
    /// `1/(1 + e⁻ˣ)`.
    Sigmoid,
    /// `tanh x`.
    Tanh,
    /// `ln(1 + eˣ)`, computed without overflow.
    Softplus,
    /// `x` for x > 0, else `α·x`. Keras's `LeakyReLU` defaults to α = 0.3, PyTorch's to
    /// 0.01: there is no default here.
    LeakyRelu(f64),
    /// `exp(xᵢ)/Σⱼ exp(xⱼ)` over the last axis, as Keras's `activation="softmax"`.
    Softmax,
}

impl Activation {
    /// Applies the function.
    pub fn apply<T: Element>(self, x: &Tensor<T>) -> Result<Tensor<T>> {
        Ok(match self {
            Activation::Linear => x.clone(),
            Activation::Relu => x.relu(),
            Activation::Sigmoid => x.sigmoid(),
            Activation::Tanh => x.tanh(),
            Activation::Softplus => x.softplus(),
            Activation::LeakyRelu(alpha) => x.leaky_relu(T::from_f64_lossy(alpha)),
            Activation::Softmax => x.softmax(-1)?,
        })
    }

    /// The lowercase Keras name (`"relu"`, `"leaky_relu(0.1)"`, …).
    pub fn name(self) -> String {
        match self {
            Activation::Linear => "linear".into(),
            Activation::Relu => "relu".into(),
            Activation::Sigmoid => "sigmoid".into(),
            Activation::Tanh => "tanh".into(),
            Activation::Softplus => "softplus".into(),
            Activation::LeakyRelu(a) => format!("leaky_relu({a})"),
            Activation::Softmax => "softmax".into(),
        }
    }
}

impl<T: Element> Module<T> for Activation {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        self.apply(x)
    }

    fn describe(&self) -> String {
        format!("Activation({})", self.name())
    }
}

macro_rules! activation_layer {
    ($(#[$doc:meta])* $name:ident, $act:expr) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, Default, PartialEq)]
        pub struct $name;

        impl<T: Element> Module<T> for $name {
            fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
                $act.apply(x)
            }

            fn describe(&self) -> String {
                stringify!($name).to_string()
            }
        }
    };
}

activation_layer!(
    /// `max(x, 0)` as a layer (`torch.nn.ReLU`, `keras.layers.ReLU`). ∂/∂x = 1 where x > 0.
    ReLU,
    Activation::Relu
);
activation_layer!(
    /// `σ(x) = 1/(1 + e⁻ˣ)` as a layer. ∂/∂x = σ(x)(1 − σ(x)).
    Sigmoid,
    Activation::Sigmoid
);
activation_layer!(
    /// `tanh x` as a layer. ∂/∂x = 1 − tanh²x.
    Tanh,
    Activation::Tanh
);

/// `x` where x > 0, else `α·x`, as a layer.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LeakyReLU {
    /// The slope for negative inputs.
    pub alpha: f64,
}

impl LeakyReLU {
    /// A leaky ReLU with slope `alpha` below zero.
    pub fn new(alpha: f64) -> Self {
        LeakyReLU { alpha }
    }
}

impl<T: Element> Module<T> for LeakyReLU {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        Activation::LeakyRelu(self.alpha).apply(x)
    }

    fn describe(&self) -> String {
        format!("LeakyReLU({})", self.alpha)
    }
}

/// `softmax(x)ᵢ = exp(xᵢ)/Σⱼ exp(xⱼ)` along `axis`, as a layer. Computed after
/// subtracting the maximum, so logits of ±1e4 give finite probabilities.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Softmax {
    /// The axis the probabilities sum to 1 along (negative counts from the end).
    pub axis: isize,
}

impl Softmax {
    /// Softmax along `axis` (Keras's default is `-1`; PyTorch's `nn.Softmax(dim=1)` is
    /// the same for `[N, C]` inputs).
    pub fn new(axis: isize) -> Self {
        Softmax { axis }
    }
}

impl Default for Softmax {
    fn default() -> Self {
        Softmax { axis: -1 }
    }
}

impl<T: Element> Module<T> for Softmax {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        x.softmax(self.axis)
    }

    fn describe(&self) -> String {
        format!("Softmax(axis={})", self.axis)
    }
}

/// Keeps dim 0 (the batch) and flattens the rest: `[N, d₁, …, dₖ] → [N, d₁·…·dₖ]`, like
/// `keras.layers.Flatten` and `torch.nn.Flatten()`. A 1-D input `[N]` becomes `[N, 1]`
/// (as in Keras).
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Flatten, Module};
/// let x = Tensor::<f32>::zeros([8, 28, 28])?;
/// assert_eq!(Flatten.forward(&x)?.dims(), &[8, 784]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Flatten;

impl<T: Element> Module<T> for Flatten {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        match x.ndim() {
            0 => Err(Error::bad_shape(
                "Flatten",
                "needs at least a batch dim, got a 0-d tensor",
            )),
            1 => x.unsqueeze(1),
            _ => x.flatten(1),
        }
    }
}
