//! # tapegrad-optim
//!
//! First-order optimizers for [`tapegrad_core`] tensors, gradient clipping, and
//! learning-rate schedules.
//!
//! | optimizer | update (per element, `g` the gradient) | file |
//! |-----------|-----------------------------------------|------|
//! | [`Sgd`] | `W ← W − η·(g + λW)` | `sgd.rs` |
//! | [`Momentum`] | heavy ball / Nesterov, two [`MomentumStyle`]s | `momentum.rs` |
//! | [`RmsProp`] | `s ← ρs + (1−ρ)g²`, `W ← W − η·g/(√s+ε)` or `/√(s+ε)` | `rmsprop.rs` |
//! | [`Adam`] | bias-corrected moments, two [`AdamForm`]s, L2 decay | `adam.rs` |
//! | [`AdamW`] | Adam with decoupled weight decay `W ← W·(1 − ηλ)` | `adamw.rs` |
//!
//! Every optimizer has one preset family, reproducing the framework's documented
//! defaults: `pytorch(lr)`, `keras(lr)`, `pytorch_default()`, `keras_default()`; anything
//! else is a field of its configuration struct ([`SgdConfig`], [`MomentumConfig`],
//! [`RmsPropConfig`], [`AdamConfig`], [`AdamWConfig`]), passed to
//! [`Optim::from_config`]. Each optimizer is [`Optim`] with its configuration: one
//! generic step (checks, clipping, state by name; see [`optimizer`]) runs the
//! configuration's fused per-element loop.
//!
//! PyTorch and Keras write some of these rules differently (where ε goes, how bias
//! correction is folded in, what the momentum buffer stores). Every optimizer here makes
//! the choice explicit: the presets named after a framework reproduce its documented
//! equations and defaults, and each type's documentation says when the forms differ.
//!
//! All optimizers implement the object-safe [`Optimizer`] trait: one fused pass over
//! each parameter's buffer per step; state kept **by parameter name** (so freezing a
//! layer cannot shift another parameter's moments onto the wrong tensor), allocated on a
//! parameter's first update and never again; and a validated, checksummed
//! [`OptimizerState`] for checkpoints.
//!
//! **One deliberate departure from the bare equations:** a state value (momentum buffer,
//! moment, running average) is stored as zero when its magnitude is below twice the
//! smallest normal number (1.2e-38 in `f32`, 2.2e-308 in `f64`) over the smallest factor
//! it is next multiplied by (β₁ and Adam's step size α for the first moment, β₂ for the
//! second; 2.4e-35 for Adam's m at η = 1e-3), so that neither it nor any product of it is
//! subnormal. Running averages decay geometrically where a gradient stops, and on x86 each
//! vector operation that reads or makes a subnormal costs ~100 cycles or more: storing
//! subnormal moments made MNIST epochs 60% slower, and the subnormal products `m·α` of
//! moments just above the smallest normal number still took a quarter of Adam's time on a
//! Xeon.
//! A flushed value would have moved a parameter by less than `2·1.2e-38/ε` (2.4e-31 at
//! Keras's ε = 1e-7); every other value is computed bit for bit as the equations say.
//! (TensorFlow, and so Keras, run with flush-to-zero on CPU for the same reason.)
//!
//! ```
//! use tapegrad_core::Tensor;
//! use tapegrad_optim::{Adam, Optimizer};
//!
//! // Minimise L = Σ (w − 3)² from w = 0.
//! let mut w = Tensor::<f64>::zeros([2])?.requires_grad();
//! let mut opt = Adam::pytorch(0.1)?;
//! for _ in 0..500 {
//!     let grads = {
//!         let d = w.add_scalar(-3.0);
//!         d.mul(&d)?.sum_all().backward()?
//!     }; // the loss (and its graph) is dropped here, so the update does not copy `w`
//!     opt.step(&mut [("w".to_string(), &mut w)], &grads)?;
//! }
//! assert!(w.data().iter().all(|&v| (v - 3.0).abs() < 1e-3));
//! # Ok::<(), tapegrad_core::Error>(())
//! ```
#![forbid(unsafe_code)]
#![warn(missing_docs)]

pub mod adam;
pub mod adamw;
pub mod clip;
pub mod momentum;
pub mod optimizer;
pub mod rmsprop;
mod rule;
pub mod schedule;
pub mod sgd;
pub mod state;

pub use adam::{Adam, AdamConfig, AdamForm};
pub use adamw::{AdamW, AdamWConfig};
pub use clip::{clip_grad_norm, clip_grad_value, grads_for, total_norm, GradClip};
pub use momentum::{Momentum, MomentumConfig, MomentumStyle};
pub use optimizer::{Optim, Optimizer};
pub use rmsprop::{EpsPlacement, RmsProp, RmsPropConfig};
pub use schedule::{ConstantLr, CosineAnnealing, ExponentialDecay, LrSchedule, MultiStepDecay, StepDecay};
pub use sgd::{Sgd, SgdConfig};
pub use state::{OptimizerState, ParamEntry, MAX_STATE_BYTES, STATE_FORMAT_VERSION};
