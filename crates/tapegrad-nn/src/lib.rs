//! # tapegrad-nn
//!
//! Layers, losses, metrics and checkpoints on top of [`tapegrad_core`]'s tape, with the
//! names a Keras or PyTorch user looks for.
//!
//! - [`Module`]: the layer trait (`forward`, named parameters, train/eval, freezing,
//!   `state_dict`/`load_state_dict`), with [`Param`] for a trainable tensor;
//! - layers: [`Dense`] (`x·W + b` with an optional [`Activation`]), [`Dropout`],
//!   [`Flatten`], [`ReLU`], [`Sigmoid`], [`Tanh`], [`Softmax`], [`LeakyReLU`], and the
//!   container [`Sequential`];
//! - [`init`]: Glorot, He, LeCun and PyTorch-default initialisers ([`Init`]);
//! - [`loss`]: MSE, MAE, binary and categorical cross-entropies (from probabilities or
//!   logits, dense or integer labels), each with a [`Reduction`];
//! - [`metrics`]: [`accuracy`](metrics::accuracy) and a [`RunningMean`](metrics::RunningMean);
//! - [`checkpoint`] (tapegrad's checksummed format, atomic saves) and [`safetensors`].
//!
//! Parameters are tracked leaves: after `loss.backward()`, each one's gradient is
//! `grads.get(param)`. A full step, with plain SGD written out:
//!
//! ```
//! use rand::{rngs::StdRng, SeedableRng};
//! use tapegrad_core::Tensor;
//! use tapegrad_nn::{loss, Activation, Dense, Module, Reduction, Sequential};
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut model = Sequential::<f64>::new()
//!     .add(Dense::new(2, 8, &mut rng)?.with_activation(Activation::Tanh))
//!     .add(Dense::new(8, 2, &mut rng)?);
//! let x = Tensor::from_vec(vec![0.0, 1.0, 1.0, 0.0], [2, 2])?;
//! let labels = [1, 0];
//! let before = loss::cross_entropy(&model.forward(&x)?, &labels, Reduction::Mean)?.item()?;
//! for _ in 0..20 {
//!     let l = loss::cross_entropy(&model.forward(&x)?, &labels, Reduction::Mean)?;
//!     let grads = l.backward()?;
//!     for p in model.trainable_parameters_mut() {
//!         if let Some(g) = grads.get(p).cloned() {
//!             for (w, g) in p.data_mut().iter_mut().zip(g.data()) {
//!                 *w -= 0.5 * g;
//!             }
//!         }
//!     }
//! }
//! let after = loss::cross_entropy(&model.forward(&x)?, &labels, Reduction::Mean)?.item()?;
//! assert!(after < before);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

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
pub mod safetensors;
mod sequential;

pub use conv::{AvgPool2d, Conv1d, Conv2d, GlobalAvgPool2d, MaxPool2d, Reshape};
pub use dense::Dense;
pub use dropout::Dropout;
pub use init::Init;
pub use labels::Labels;
pub use layers::{Activation, Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh};
pub use loss::Reduction;
pub use module::{Module, Param, StateDict};
pub use sequential::Sequential;
