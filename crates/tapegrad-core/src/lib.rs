//! # tapegrad-core
//!
//! A tape-based reverse-mode automatic differentiation engine over a generic
//! n-dimensional [`Tensor`] of `f32` or `f64`.
//!
//! - [`tensor`]: the tensor type, constructors and accessors;
//! - [`ops`]: every differentiable op, forward and gradient rule side by side;
//! - [`tape`]: recording and the backward sweep; [`gradients`]: [`Tensor::backward`],
//!   [`grad`], [`Gradients`]; [`grad_mode`]: [`no_grad`]; [`anomaly`]: [`detect_anomaly`],
//!   which finds the first op to produce a NaN or an infinity;
//! - [`func`]: function transforms (`value_and_grad`, `vjp`, `jvp`, `hvp`, `jacobian`,
//!   `hessian`), composable to any order, like `torch.func`;
//! - [`gradcheck`](mod@gradcheck): finite-difference checks of any function's gradients;
//! - `testing` (cargo feature `testing`): proptest strategies, `check_grads` and the op
//!   registry's `OpSpec`, for property tests of backprop math;
//! - `kernels`: the loops and GEMM behind the ops; [`buffer_cache`]: large freed buffers
//!   reused by the next tensor of their size (no fresh pages per training step).
//!
//! ```
//! use tapegrad_core::Tensor;
//! // y = f(Wx + b) with f = tanh, and ∂y/∂W by the chain rule.
//! let w = Tensor::<f64>::from_vec(vec![0.5, -0.3], [1, 2])?.requires_grad();
//! let b = Tensor::<f64>::from_vec(vec![0.1], [1])?.requires_grad();
//! let x = Tensor::<f64>::from_vec(vec![2.0, 1.0], [2, 1])?;
//! let y = w.matmul(&x)?.squeeze(1)?.add(&b)?.tanh().sum_all();
//! let grads = y.backward()?;
//! let dy = 1.0 - y.item()?.powi(2); // tanh' = 1 − tanh²
//! assert!((grads.wrt(&w)?.to_vec()[0] - dy * 2.0).abs() < 1e-12);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```
//!
//! Errors: fallible ops return [`Result`]; the `+ − × ÷` operator overloads panic with the
//! same message (see [`error`]).
#![deny(unsafe_code)]
#![warn(missing_docs)]

pub mod anomaly;
pub mod buffer_cache;
mod display;
pub mod element;
pub mod error;
pub mod func;
pub mod grad_mode;
pub mod gradcheck;
pub mod gradients;
pub(crate) mod kernels;
pub mod ops;
pub mod shape;
mod storage;
pub mod tape;
pub mod tensor;
#[cfg(feature = "testing")]
pub mod testing;

pub use anomaly::{detect_anomaly, detect_anomaly_guard, is_anomaly_enabled, AnomalyGuard};
pub use buffer_cache::{buffer_cache_bytes, buffer_cache_limit, set_buffer_cache_limit};
pub use element::Element;
pub use error::{Error, Result};
pub use grad_mode::{is_grad_enabled, no_grad, no_grad_guard, GradModeGuard};
pub use gradcheck::{gradcheck, gradgradcheck, GradCheck, GradCheckReport};
pub use gradients::{grad, Gradients};
pub use ops::index::IndexTensor;
pub use ops::OpKind;
pub use shape::{Axes, Shape};
pub use tape::{BackwardCtx, InputGrads};
pub use tensor::Tensor;
