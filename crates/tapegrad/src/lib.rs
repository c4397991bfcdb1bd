//! # tapegrad
//!
//! One dependency for the whole framework:
//!
//! - [`core`]: tensors, tape-based autograd, gradcheck (re-exported at the top level too),
//!   with [`func`] (function transforms) and anomaly mode ([`detect_anomaly`]);
//! - `testing` (cargo feature `testing`): proptest strategies, `check_grads`, `OpSpec`;
//! - [`nn`]: layers, losses, metrics, checkpoints;
//! - [`optim`]: SGD, Momentum, RMSProp, Adam/AdamW with PyTorch and Keras presets;
//! - [`train`]: datasets of tensors (vectors, CSV, IDX/MNIST), batches, `fit`/`evaluate` for any
//!   loss with metrics and callbacks, training history;
//! - [`prelude`]: the names most programs need.
//!
//! ```
//! use tapegrad::prelude::*;
//! let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?.requires_grad();
//! let y = x.exp().sum_all();
//! let g = y.backward()?.wrt(&x)?;
//! assert!((g.to_vec()[1] - 2f64.exp()).abs() < 1e-12);
//! # Ok::<(), tapegrad::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub use tapegrad_core as core;
/// Function transforms (`torch.func`): see [`tapegrad_core::func`].
pub use tapegrad_core::func;
/// Property-based testing of backprop math (cargo feature `testing`): see
/// [`tapegrad_core::testing`].
#[cfg(feature = "testing")]
pub use tapegrad_core::testing;
pub use tapegrad_core::*;
pub use tapegrad_nn as nn;
pub use tapegrad_optim as optim;
pub use tapegrad_train as train;

/// The names most programs need: `use tapegrad::prelude::*;`.
pub mod prelude {
    pub use tapegrad_core::{
        detect_anomaly, grad, gradcheck, gradgradcheck, no_grad, Element, Error, GradCheck, Gradients, IndexTensor,
        Result, Shape, Tensor,
    };
    pub use tapegrad_nn::{
        loss, metrics, rand, Activation, Dense, Dropout, Flatten, Module, Reduction, Rng, SeedableRng, Sequential,
        StdRng,
    };
    pub use tapegrad_optim::{
        Adam, AdamConfig, AdamForm, AdamW, AdamWConfig, ConstantLr, CosineAnnealing, EpsPlacement, ExponentialDecay,
        GradClip, LrSchedule, Momentum, MomentumConfig, MomentumStyle, MultiStepDecay, Optimizer, RmsProp,
        RmsPropConfig, Sgd, SgdConfig, StepDecay,
    };
    pub use tapegrad_train::{
        evaluate, fit, Dataset, Features, FitConfig, History, Metric, Mnist, TargetData, Targets, Validation, Verbosity,
    };
}
