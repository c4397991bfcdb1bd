//! The [`Optimizer`] trait, its serialisable [`OptimizerState`], and the step driver that
//! every optimizer shares.
//!
//! # How a step runs
//!
//! 1. **Check** every parameter before touching any: a gradient whose shape differs from
//!    its parameter, or a parameter whose size differs from the state kept for its
//!    position, is an error and nothing is updated.
//! 2. If [`GradClip`] asks for it, compute the total gradient norm (in `f64`).
//! 3. **Update** each parameter that has a gradient in one fused pass over its buffer,
//!    its state buffers and its gradient: no temporary tensors, and no allocation except
//!    the state buffers of a parameter's first update.
//!
//! State is keyed by the *position* of a parameter in the `params` slice, as PyTorch keys
//! it by parameter order: pass the parameters in the same order at every step. A
//! parameter without a gradient (frozen, or unused by the loss) is skipped: its state
//! and its per-parameter step count are left as they are.

use crate::clip::GradClip;
use serde::{Deserialize, Serialize};
use tapegrad_core::{Element, Error, Gradients, Result, Tensor};

/// A first-order optimizer: updates parameters in place from their gradients.
///
/// The trait is object-safe, so a training loop can hold a `Box<dyn Optimizer<T>>`.
/// Parameters are updated through [`Tensor::data_mut`], which keeps their autograd
/// identity. Drop the loss (and anything else holding the step's graph) before calling
/// [`Optimizer::step`]: while the graph holds a parameter's buffer, `data_mut` must copy
/// it first.
pub trait Optimizer<T: Element> {
    /// The optimizer's name, as stored in [`OptimizerState::kind`]: `"SGD"`, `"Momentum"`,
    /// `"RMSprop"` or `"Adam"`.
    fn kind(&self) -> &'static str;

    /// One update of every parameter that has a gradient in `grads`
    /// (looked up with [`Gradients::get`]; parameters without one are skipped).
    ///
    /// Errors, before anything is updated, if a gradient's shape differs from its
    /// parameter's or a parameter's size differs from its state from earlier steps.
    fn step(&mut self, params: &mut [&mut Tensor<T>], grads: &Gradients<T>) -> Result<()>;

    /// Like [`Optimizer::step`] with the gradients given explicitly, `grads[i]` for
    /// `params[i]` (`None` skips it): e.g. gradients clipped with [`clip_grad_norm`](crate::clip_grad_norm).
    ///
    /// Errors if the two slices differ in length.
    fn step_with_grads(&mut self, params: &mut [&mut Tensor<T>], grads: &[Option<Tensor<T>>]) -> Result<()>;

    /// The low-level step over raw buffers: `updates[i] = (parameter i, its gradient)`,
    /// `None` to skip it. [`Optimizer::step`] is this with the tensors' buffers.
    ///
    /// Errors if a gradient's length differs from its parameter's.
    fn step_slices(&mut self, updates: &mut [(&mut [T], Option<&[T]>)]) -> Result<()>;

    /// The learning rate η used by the next step.
    fn learning_rate(&self) -> T;

    /// Sets η for the next steps (e.g. from an [`LrSchedule`](crate::LrSchedule)).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    fn set_learning_rate(&mut self, lr: T) -> Result<()>;

    /// Number of steps taken (calls of a `step` method that succeeded).
    fn step_count(&self) -> u64;

    /// The gradient clipping applied inside each step.
    fn grad_clip(&self) -> GradClip;

    /// Sets the gradient clipping applied inside each step (see [`GradClip`]).
    ///
    /// Errors if a threshold is NaN or not positive.
    fn set_grad_clip(&mut self, clip: GradClip) -> Result<()>;

    /// The total gradient norm that the last step measured, when clipping by norm is on
    /// (before clipping, like the return value of `torch.nn.utils.clip_grad_norm_`).
    fn last_grad_norm(&self) -> Option<f64>;

    /// A snapshot of everything the optimizer holds: hyper-parameters, clipping, step
    /// counts and state buffers.
    fn state(&self) -> OptimizerState<T>;

    /// Restores a snapshot taken by [`Optimizer::state`]: the hyper-parameters (learning
    /// rate included, as PyTorch's `load_state_dict` does), clipping, step counts and
    /// buffers all replace the current ones.
    ///
    /// Errors, leaving the optimizer unchanged, if the state is of another kind or
    /// element type, a hyper-parameter is missing, unknown or invalid, or the buffers do
    /// not fit the configuration or each other.
    fn load_state(&mut self, state: OptimizerState<T>) -> Result<()>;
}

/// One named state buffer of an optimizer, for every parameter position.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct StateBuffer<T> {
    /// The buffer's name, e.g. `"exp_avg"` (PyTorch's names).
    pub name: String,
    /// `per_param[i]` belongs to the parameter at position `i`, with its number of
    /// elements; empty while that parameter has not been updated yet.
    pub per_param: Vec<Vec<T>>,
}

/// A serialisable snapshot of an optimizer (see [`Optimizer::state`]).
///
/// Discrete options (the PyTorch or Keras form, Nesterov, centering, …) are stored among
/// the hyper-parameters as `0.0` or `1.0`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(bound(serialize = "T: Serialize", deserialize = "T: Deserialize<'de>"))]
pub struct OptimizerState<T> {
    /// [`Optimizer::kind`] of the optimizer that made it.
    pub kind: String,
    /// The element type, `"f32"` or `"f64"`.
    pub dtype: String,
    /// [`Optimizer::step_count`].
    pub step: u64,
    /// Hyper-parameters by name, e.g. `("lr", 1e-3)`.
    pub hyper: Vec<(String, f64)>,
    /// How many updates each parameter position has received (`t` in the bias
    /// corrections; 0 while a parameter has had no gradient yet).
    pub param_steps: Vec<u64>,
    /// The state buffers, in the optimizer's order.
    pub buffers: Vec<StateBuffer<T>>,
}

/// Leading bytes of [`OptimizerState::to_bytes`]: a name and a format version.
const MAGIC: &[u8; 8] = b"TGOPTIM1";

/// Largest decoded size [`OptimizerState::from_bytes`] accepts: 4 GiB − 1.
pub const MAX_STATE_BYTES: usize = u32::MAX as usize;

/// Decodes with bincode's limit on claimed bytes set to the smallest of 1 MiB, 16 MiB,
/// 256 MiB and [`MAX_STATE_BYTES`] that a genuine state of this many bytes can need (each
/// encoded byte decodes to at most 9 claimed bytes: a 1-byte varint claims 8). A hostile
/// length prefix thus makes the decoder allocate at most about 150× the input's size
/// (at least 1 MiB), never gigabytes for a small file.
fn decode_bounded<S: for<'de> Deserialize<'de>>(body: &[u8]) -> Result<(S, usize), bincode::error::DecodeError> {
    fn with<S: for<'de> Deserialize<'de>, const N: usize>(
        body: &[u8],
    ) -> Result<(S, usize), bincode::error::DecodeError> {
        bincode::serde::decode_from_slice(body, bincode::config::standard().with_limit::<N>())
    }
    let need = body.len().saturating_mul(9).saturating_add(1 << 16);
    match need {
        n if n <= 1 << 20 => with::<S, { 1 << 20 }>(body),
        n if n <= 1 << 24 => with::<S, { 1 << 24 }>(body),
        n if n <= 1 << 28 => with::<S, { 1 << 28 }>(body),
        _ => with::<S, MAX_STATE_BYTES>(body),
    }
}

impl<T: Element + Serialize + for<'de> Deserialize<'de>> OptimizerState<T> {
    /// Encodes the state: 8 magic bytes, then the fields in bincode's standard encoding.
    pub fn to_bytes(&self) -> Result<Vec<u8>> {
        let body = bincode::serde::encode_to_vec(self, bincode::config::standard())
            .map_err(|e| Error::Format(format!("optimizer state: cannot encode: {e}")))?;
        let mut out = Vec::with_capacity(MAGIC.len() + body.len());
        out.extend_from_slice(MAGIC);
        out.extend_from_slice(&body);
        Ok(out)
    }

    /// Decodes bytes written by [`OptimizerState::to_bytes`].
    ///
    /// Decoding is bounded (see [`MAX_STATE_BYTES`]): a corrupt or hostile length prefix
    /// cannot make it allocate more than about 150× the input's size (at least 1 MiB).
    /// Errors ([`Error::Format`]) on a wrong header, a truncated or malformed body,
    /// trailing bytes, or a state of another element type.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        let body = bytes.strip_prefix(MAGIC.as_slice()).ok_or_else(|| {
            Error::Format("optimizer state: missing the TGOPTIM1 header (not an optimizer state file?)".into())
        })?;
        let (state, read): (Self, usize) =
            decode_bounded(body).map_err(|e| Error::Format(format!("optimizer state: cannot decode: {e}")))?;
        if read != body.len() {
            return Err(Error::Format(format!(
                "optimizer state: {} trailing bytes after the state",
                body.len() - read
            )));
        }
        if state.dtype != T::DTYPE {
            return Err(Error::Format(format!(
                "optimizer state: holds {} buffers, expected {}",
                state.dtype,
                T::DTYPE
            )));
        }
        Ok(state)
    }
}

/// Implements [`Optimizer`] for `$ty<T>`, a struct holding `cfg: $cfg` (a [`Rule`]) and `eng: Engine<T>`.
macro_rules! impl_optimizer {
    ($ty:ident, $cfg:ident) => {
        impl<T: tapegrad_core::Element> $crate::optimizer::Optimizer<T> for $ty<T> {
            fn kind(&self) -> &'static str {
                <$cfg as $crate::engine::Rule>::KIND
            }

            fn step(
                &mut self,
                params: &mut [&mut tapegrad_core::Tensor<T>],
                grads: &tapegrad_core::Gradients<T>,
            ) -> tapegrad_core::Result<()> {
                let mut b = $crate::engine::TensorBatch { params, grads };
                $crate::engine::run_step(&self.cfg, &mut self.eng, &mut b)
            }

            fn step_with_grads(
                &mut self,
                params: &mut [&mut tapegrad_core::Tensor<T>],
                grads: &[Option<tapegrad_core::Tensor<T>>],
            ) -> tapegrad_core::Result<()> {
                let mut b = $crate::engine::ListBatch { params, grads };
                b.check_len(<$cfg as $crate::engine::Rule>::OPS.step)?;
                $crate::engine::run_step(&self.cfg, &mut self.eng, &mut b)
            }

            fn step_slices(&mut self, updates: &mut [(&mut [T], Option<&[T]>)]) -> tapegrad_core::Result<()> {
                let mut b = $crate::engine::SliceBatch(updates);
                $crate::engine::run_step(&self.cfg, &mut self.eng, &mut b)
            }

            fn learning_rate(&self) -> T {
                T::from_f64_lossy($crate::engine::Rule::lr(&self.cfg))
            }

            fn set_learning_rate(&mut self, lr: T) -> tapegrad_core::Result<()> {
                $crate::engine::check_lr(<$cfg as $crate::engine::Rule>::OPS.set_lr, lr.as_f64())?;
                $crate::engine::Rule::set_lr(&mut self.cfg, lr.as_f64());
                Ok(())
            }

            fn step_count(&self) -> u64 {
                self.eng.step_count()
            }

            fn grad_clip(&self) -> $crate::clip::GradClip {
                self.eng.clip
            }

            fn set_grad_clip(&mut self, clip: $crate::clip::GradClip) -> tapegrad_core::Result<()> {
                clip.validate(<$cfg as $crate::engine::Rule>::OPS.set_clip)?;
                self.eng.clip = clip;
                Ok(())
            }

            fn last_grad_norm(&self) -> Option<f64> {
                self.eng.last_norm
            }

            fn state(&self) -> $crate::optimizer::OptimizerState<T> {
                $crate::engine::snapshot(&self.cfg, &self.eng)
            }

            fn load_state(&mut self, state: $crate::optimizer::OptimizerState<T>) -> tapegrad_core::Result<()> {
                let (cfg, eng) = $crate::engine::restore(state)?;
                self.cfg = cfg;
                self.eng = eng;
                Ok(())
            }
        }

        impl<T: tapegrad_core::Element> $ty<T> {
            /// The configuration in use.
            pub fn config(&self) -> &$cfg {
                &self.cfg
            }

            /// The same optimizer with gradient clipping inside each step (see [`GradClip`](crate::GradClip)).
            ///
            /// Errors if a threshold is NaN or not positive.
            pub fn with_grad_clip(mut self, clip: $crate::clip::GradClip) -> tapegrad_core::Result<Self> {
                $crate::optimizer::Optimizer::<T>::set_grad_clip(&mut self, clip)?;
                Ok(self)
            }
        }
    };
}

pub(crate) use impl_optimizer;
