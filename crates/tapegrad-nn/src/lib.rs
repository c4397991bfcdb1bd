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
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod checkpoint;
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
mod state;

pub use dense::Dense;
pub use dropout::Dropout;
pub use init::Init;
pub use labels::Labels;
pub use layers::{Activation, Flatten, LeakyReLU, ReLU, Sigmoid, Softmax, Tanh};
pub use loss::Reduction;
pub use module::{Module, Param, StateDict, TorchParam};
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
