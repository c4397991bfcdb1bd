//! [`Dense`]: the fully connected layer `y = f(x·W + b)`.

use crate::init::Init;
use crate::layers::Activation;
use crate::module::{Module, Param, TorchParam};
use rand::Rng;
use tapegrad_core::{Element, Error, Result, Tensor};

/// A fully connected layer: `y = f(x·W + b)` for `x: [N, in]` (or `[..., in]`),
/// `W: [in, out]`, `b: [out]` and an optional [`Activation`] `f`.
///
/// The weight is stored `[in, out]`, Keras's kernel layout, so the forward is a plain
/// `x.matmul(W)` (PyTorch's `nn.Linear` stores the transpose, `[out, in]`). Gradients:
/// ∂L/∂W = xᵀ·∂L/∂z, ∂L/∂b = Σₙ ∂L/∂z, ∂L/∂x = ∂L/∂z·Wᵀ with z = x·W + b.
///
/// The forward never makes `x` tracked: when `x` is the network's (untracked) input, the
/// matmul rule skips ∂L/∂x, which nobody needs.
///
/// ```
/// use tapegrad_nn::{SeedableRng, StdRng};
/// use tapegrad_core::Tensor;
/// use tapegrad_nn::{Activation, Dense, Module};
/// let mut rng = StdRng::seed_from_u64(42);
/// let mut layer = Dense::<f64>::new(3, 2, &mut rng)?.with_activation(Activation::Tanh);
/// let x = Tensor::from_vec(vec![1.0, 2.0, 3.0], [1, 3])?;
/// let y = layer.forward(&x)?;
/// let grads = y.sum_all().backward()?;
/// assert_eq!(grads.wrt(layer.weight())?.dims(), &[3, 2]);
/// assert!(grads.get(&x).is_none()); // the input stayed untracked
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Dense<T: Element> {
    weight: Param<T>,
    bias: Option<Param<T>>,
    activation: Activation,
}

impl<T: Element> Dense<T> {
    /// Keras's defaults: weight [`Init::GlorotUniform`], zero bias, no activation.
    ///
    /// Errors if `in_features` or `out_features` is 0.
    pub fn new<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Result<Self> {
        Self::with_init(in_features, out_features, Init::GlorotUniform, Init::Zeros, rng)
    }

    /// PyTorch's `nn.Linear` initialisation: weight and bias both U(±1/√in)
    /// ([`Init::TorchLinear`]); no activation.
    pub fn linear<R: Rng + ?Sized>(in_features: usize, out_features: usize, rng: &mut R) -> Result<Self> {
        Self::with_init(in_features, out_features, Init::TorchLinear, Init::TorchLinear, rng)
    }

    /// A layer with the given weight and bias initialisers (the fans are `in` and `out`).
    pub fn with_init<R: Rng + ?Sized>(
        in_features: usize,
        out_features: usize,
        weight_init: Init,
        bias_init: Init,
        rng: &mut R,
    ) -> Result<Self> {
        if in_features == 0 || out_features == 0 {
            return Err(Error::bad_value(
                "Dense",
                format!("needs at least one input and one output feature, got {in_features} → {out_features}"),
            ));
        }
        let w = weight_init.sample([in_features, out_features], in_features, out_features, rng)?;
        let b = bias_init.sample([out_features], in_features, out_features, rng)?;
        Ok(Dense {
            weight: Param::new(w),
            bias: Some(Param::new(b)),
            activation: Activation::Linear,
        })
    }

    /// A layer with the given weight `[in, out]` and optional bias `[out]`. Untracked tensors
    /// become new leaves; tracked ones are kept, so gradients reach the caller's leaves (see
    /// [`Param::new`]).
    pub fn from_weights(weight: Tensor<T>, bias: Option<Tensor<T>>) -> Result<Self> {
        if weight.ndim() != 2 {
            return Err(Error::bad_shape(
                "Dense::from_weights",
                format!("the weight must be [in, out], got shape {}", weight.shape()),
            ));
        }
        if let Some(b) = &bias {
            if b.dims() != [weight.dims()[1]] {
                return Err(Error::mismatch(
                    "Dense::from_weights",
                    weight.shape(),
                    b.shape(),
                    "a bias of shape [out] for a weight of shape [in, out]",
                ));
            }
        }
        Ok(Dense {
            weight: Param::new(weight),
            bias: bias.map(Param::new),
            activation: Activation::Linear,
        })
    }

    /// Sets the activation applied after `x·W + b`.
    pub fn with_activation(mut self, activation: Activation) -> Self {
        self.activation = activation;
        self
    }

    /// Drops the bias (Keras's `use_bias=False`, PyTorch's `bias=False`).
    pub fn without_bias(mut self) -> Self {
        self.bias = None;
        self
    }

    /// The weight `[in, out]`.
    pub fn weight(&self) -> &Tensor<T> {
        self.weight.tensor()
    }

    /// The bias `[out]`, if the layer has one.
    pub fn bias(&self) -> Option<&Tensor<T>> {
        self.bias.as_ref().map(Param::tensor)
    }

    /// The activation.
    pub fn activation(&self) -> Activation {
        self.activation
    }

    /// Number of input features (dim 0 of the weight; 0 if the weight was replaced by a
    /// tensor of fewer than 2 dims through [`Module::parameters_mut`], which
    /// [`forward`](Module::forward) then reports as an error).
    pub fn in_features(&self) -> usize {
        self.weight.tensor().dims().first().copied().unwrap_or(0)
    }

    /// Number of output features (dim 1 of the weight; 0 if it has none, see
    /// [`in_features`](Dense::in_features)).
    pub fn out_features(&self) -> usize {
        self.weight.tensor().dims().get(1).copied().unwrap_or(0)
    }
}

impl<T: Element> Module<T> for Dense<T> {
    fn forward(&mut self, x: &Tensor<T>) -> Result<Tensor<T>> {
        if self.weight.tensor().ndim() != 2 {
            return Err(Error::bad_shape(
                "Dense",
                format!(
                    "the weight must be [in, out], but it was replaced by a tensor of shape {}",
                    self.weight.tensor().shape()
                ),
            ));
        }
        if x.ndim() == 0 || x.dims()[x.ndim() - 1] != self.in_features() {
            return Err(Error::mismatch(
                "Dense",
                x.shape(),
                self.weight.tensor().shape(),
                "an input [..., in] for a weight [in, out]",
            ));
        }
        let z = x.matmul(self.weight.tensor())?;
        let z = match &self.bias {
            Some(b) => z.add(b.tensor())?,
            None => z,
        };
        self.activation.apply(&z)
    }

    fn params(&self) -> Vec<(String, &Param<T>)> {
        let mut out = vec![("weight".to_string(), &self.weight)];
        if let Some(b) = &self.bias {
            out.push(("bias".to_string(), b));
        }
        out
    }

    fn params_mut(&mut self) -> Vec<(String, &mut Param<T>)> {
        let mut out = vec![("weight".to_string(), &mut self.weight)];
        if let Some(b) = &mut self.bias {
            out.push(("bias".to_string(), b));
        }
        out
    }

    /// `nn.Linear`, plus one module for the activation unless it is linear.
    fn torch_modules(&self) -> usize {
        if self.activation == Activation::Linear {
            1
        } else {
            2
        }
    }

    /// `weight` transposed (`nn.Linear.weight` is `[out, in]`), `bias` as is.
    fn torch_params(&self) -> Vec<TorchParam> {
        self.params()
            .into_iter()
            .map(|(name, _)| TorchParam {
                transposed: name == "weight",
                name,
            })
            .collect()
    }

    fn describe(&self) -> String {
        let bias = if self.bias.is_some() { "" } else { ", no bias" };
        format!(
            "Dense({} → {}, {}{bias})",
            self.in_features(),
            self.out_features(),
            self.activation.name()
        )
    }
}
