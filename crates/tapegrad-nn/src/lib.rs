//! # tapegrad-nn
//!
//! Layers, losses, metrics and checkpoints on top of [`tapegrad_core`]'s tape, with the
//! names a Keras or PyTorch user looks for.
//!
//! - [`Module`]: the layer trait (`forward`, named parameters, train/eval, freezing,
//!   `state_dict`/`load_state_dict`, strict or not with a [`LoadReport`], PyTorch names
//!   through [`TorchParam`]), with [`Param`] for a trainable tensor;
//! - layers: [`Dense`] (`x·W + b` with an optional [`Activation`]), [`Dropout`],
//!   [`Flatten`], [`ReLU`], [`Sigmoid`], [`Tanh`], [`Softmax`], [`LeakyReLU`], and the
//!   container [`Sequential`];
//! - convolution and pooling: [`Conv2d`], [`Conv1d`], [`MaxPool2d`], [`AvgPool2d`],
//!   [`GlobalAvgPool2d`], [`Reshape`]; normalization: [`BatchNorm1d`], [`BatchNorm2d`]
//!   (running statistics as [buffers](Module::buffers)), [`LayerNorm`]; sequences:
//!   [`Embedding`], [`MultiHeadAttention`], [`TransformerBlock`], [`Gelu`];
//! - [`init`]: Glorot, He, LeCun and PyTorch-default initialisers ([`Init`]);
//! - [`loss`]: MSE, MAE, binary and categorical cross-entropies (from probabilities or
//!   logits, dense or integer labels), each with a [`Reduction`];
//! - [`metrics`]: [`accuracy`](metrics::accuracy) and a [`RunningMean`](metrics::RunningMean);
//! - [`checkpoint`] (tapegrad's checksummed format, atomic saves) and [`safetensors`]
//!   (PyTorch's or Keras's layout, for moving weights between frameworks).
//!
//! Parameters are tracked leaves: after `loss.backward()`, each one's gradient is
//! `grads.get(param)`. A full step, with plain SGD written out:
//!
//! ```
//! use tapegrad_nn::{SeedableRng, StdRng};
//! use tapegrad_core::Tensor;
//! use tapegrad_nn::loss::sparse_categorical_cross_entropy_with_logits;
//! use tapegrad_nn::{Activation, Dense, Module, Reduction, Sequential};
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut model = Sequential::<f64>::new()
//!     .add(Dense::new(2, 8, &mut rng)?.with_activation(Activation::Tanh))
//!     .add(Dense::new(8, 2, &mut rng)?);
//! let x = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], [2, 2])?;
//! let labels = [1, 0];
//! let before = sparse_categorical_cross_entropy_with_logits(&model.forward(&x)?, &labels, Reduction::Mean)?.item()?;
//! for _ in 0..20 {
//!     let l = sparse_categorical_cross_entropy_with_logits(&model.forward(&x)?, &labels, Reduction::Mean)?;
//!     let grads = l.backward()?;
//!     for (_, p) in model.trainable_parameters_mut() {
//!         if let Some(g) = grads.get(p).cloned() {
//!             for (w, g) in p.data_mut().iter_mut().zip(g.data()) {
//!                 *w -= 0.5 * g;
//!             }
//!         }
//!     }
//! }
//! let after = sparse_categorical_cross_entropy_with_logits(&model.forward(&x)?, &labels, Reduction::Mean)?.item()?;
//! assert!(after < before);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```
//!
//! A model that is not a stack of layers is a [`Module`] of the user's own: a residual
//! block `y = relu(x + conv₂(relu(conv₁(x))))` is its two convolutions, a forward, and
//! their parameters under prefixes.
//!
//! ```
//! use rand::{rngs::StdRng, SeedableRng};
//! use tapegrad_core::{ops::conv::Padding, Result, Tensor};
//! use tapegrad_nn::{Conv2d, Module, Param};
//!
//! struct Residual {
//!     conv1: Conv2d<f32>,
//!     conv2: Conv2d<f32>,
//! }
//!
//! impl Module<f32> for Residual {
//!     fn forward(&mut self, x: &Tensor<f32>) -> Result<Tensor<f32>> {
//!         let h = self.conv1.forward(x)?.relu();
//!         Ok(x.add(&self.conv2.forward(&h)?)?.relu())
//!     }
//!     fn params(&self) -> Vec<(String, &Param<f32>)> {
//!         let p1 = self.conv1.params().into_iter().map(|(n, p)| (format!("conv1.{n}"), p));
//!         p1.chain(self.conv2.params().into_iter().map(|(n, p)| (format!("conv2.{n}"), p))).collect()
//!     }
//!     fn params_mut(&mut self) -> Vec<(String, &mut Param<f32>)> {
//!         let p1 = self.conv1.params_mut().into_iter().map(|(n, p)| (format!("conv1.{n}"), p));
//!         p1.chain(self.conv2.params_mut().into_iter().map(|(n, p)| (format!("conv2.{n}"), p))).collect()
//!     }
//! }
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut block = Residual {
//!     conv1: Conv2d::new(8, 8, [3, 3], &mut rng)?.with_padding(Padding::Same),
//!     conv2: Conv2d::new(8, 8, [3, 3], &mut rng)?.with_padding(Padding::Same),
//! };
//! let y = block.forward(&Tensor::ones([2, 8, 5, 5])?)?;
//! assert_eq!(y.dims(), &[2, 8, 5, 5]);
//! assert_eq!(block.trainable_parameters_mut().len(), 4);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod attention;
pub mod checkpoint;
mod conv;
mod dense;
mod dropout;
pub mod init;
mod labels;
mod layers;
pub mod loss;
pub mod metrics;
mod module;
mod norm;
pub mod safetensors;
mod sequential;
mod state;

pub use attention::{Embedding, Gelu, MultiHeadAttention, TransformerBlock};
pub use conv::{AvgPool2d, Conv1d, Conv2d, GlobalAvgPool2d, MaxPool2d, Reshape};
pub use dense::Dense;
pub use dropout::Dropout;
pub use init::Init;
pub use labels::Labels;
pub use layers::{Activation, Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh};
pub use loss::Reduction;
pub use module::{Module, Param, StateDict, TorchParam};
pub use norm::{BatchNorm1d, BatchNorm2d, LayerNorm};
pub use sequential::Sequential;
pub use state::LoadReport;

/// The `rand` crate this crate's layers and initialisers are built against (0.9), so a
/// program needs no `rand` dependency of its own (a second, different `rand` in the
/// dependency tree would give RNG types that the layers do not accept).
///
/// ```
/// use tapegrad_nn::rand::seq::SliceRandom;
/// use tapegrad_nn::{Dense, Rng, SeedableRng, StdRng};
/// let mut rng = StdRng::seed_from_u64(0);
/// let layer = Dense::<f32>::new(3, 2, &mut rng)?;
/// let mut order = [0, 1, 2];
/// order.shuffle(&mut rng);
/// let coin: bool = rng.random();
/// # let _ = (layer, coin);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub use rand;
pub use rand::rngs::StdRng;
pub use rand::{Rng, SeedableRng};
