//! The [`Optimizer`] trait and [`Optim`], the one generic optimizer that runs every
//! update rule.
//!
//! # How a step runs ([`Optim`]'s three `step` methods share it)
//!
//! 1. **Check** every parameter before touching any: each gradient has its parameter's
//!    shape, no name appears twice, a parameter with state from earlier steps still has
//!    that state's shape, and the step count cannot overflow. Any problem is an error and
//!    nothing is updated.
//! 2. **Prepare**: measure the total gradient norm if [`GradClip`] clips by norm, count
//!    the step, and create the state of each parameter updated for the first time
//!    (zeroed buffers, keyed by the parameter's name). This is the only allocation.
//! 3. **Update** each parameter that has a gradient in one fused, branch-free pass over
//!    its buffer, its state buffers and its gradient (the `update` of the
//!    configuration: one file per optimizer holds its equation and loop).
//!
//! State is keyed by the parameter's **name**, like the `state_dict` names of a
//! [`Module`](https://docs.rs/tapegrad-nn): freezing a layer (so that it is not passed, or
//! has no gradient) leaves every other parameter's state attached to it, and a parameter
//! without a gradient keeps its state and its update count `t` unchanged.

use crate::clip::GradClip;
use crate::rule::{check_lr, clamp_abs, Rule};
use crate::state::{ParamEntry, StateCheck};
use crate::OptimizerState;
use rayon::prelude::*;
use std::collections::BTreeMap;
use tapegrad_core::{Element, Error, Gradients, Result, Tensor};

/// A first-order optimizer: updates named parameters in place from their gradients.
///
/// Object-safe, so a training loop can hold a `Box<dyn Optimizer<T>>`. Parameters are
/// updated through [`Tensor::data_mut`], which keeps their autograd identity: drop the
/// loss (and anything else holding the step's graph) before stepping, or `data_mut` must
/// copy the buffer first. Every hyper-parameter is an `f64`, whatever `T`.
///
/// ```
/// use tapegrad_core::Tensor;
/// use tapegrad_optim::{Optimizer, Sgd};
/// let mut w = Tensor::<f32>::from_vec(vec![1.0, -2.0], [2])?.requires_grad();
/// let grads = w.mul(&w)?.sum_all().backward()?; // g = 2w
/// let mut opt: Box<dyn Optimizer<f32>> = Box::new(Sgd::pytorch(0.25)?);
/// opt.step(&mut [("w".to_string(), &mut w)], &grads)?;
/// assert_eq!(w.to_vec(), vec![0.5, -1.0]); // w − 0.25·2w
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub trait Optimizer<T: Element> {
    /// The optimizer's kind, as stored in [`OptimizerState::kind`]: `"SGD"`, `"Momentum"`,
    /// `"RMSprop"`, `"Adam"` or `"AdamW"`.
    fn kind(&self) -> &'static str;

    /// One update of every parameter that has a gradient in `grads` (looked up with
    /// [`Gradients::get`]; the others are skipped and keep their state). With a model:
    /// `opt.step(&mut model.trainable_parameters_mut(), &grads)`.
    ///
    /// Errors, before anything is updated, if a gradient's shape differs from its
    /// parameter's, a name appears twice, a parameter's shape differs from its state's,
    /// or the step count would overflow.
    fn step(&mut self, params: &mut [(String, &mut Tensor<T>)], grads: &Gradients<T>) -> Result<()>;

    /// Like [`Optimizer::step`] with the gradients given explicitly, `grads[i]` for
    /// `params[i]` (`None` skips it): e.g. gradients clipped with
    /// [`clip_grad_norm`](crate::clip_grad_norm).
    ///
    /// Errors as [`Optimizer::step`] does, and if the two slices differ in length.
    fn step_with_grads(&mut self, params: &mut [(String, &mut Tensor<T>)], grads: &[Option<Tensor<T>>]) -> Result<()>;

    /// The step over raw buffers: `(name, parameter, gradient)`, `None` to skip it. A
    /// parameter's state made here has the 1-D shape `[len]`.
    ///
    /// Errors as [`Optimizer::step`] does (comparing lengths instead of shapes).
    #[allow(clippy::type_complexity)] // (name, parameter, gradient): spelled out on purpose
    fn step_slices(&mut self, updates: &mut [(&str, &mut [T], Option<&[T]>)]) -> Result<()>;

    /// The learning rate η used by the next step.
    fn learning_rate(&self) -> f64;

    /// Sets η for the next steps (e.g. from an [`LrSchedule`](crate::LrSchedule)).
    ///
    /// Errors if `lr` is NaN, infinite or negative.
    fn set_learning_rate(&mut self, lr: f64) -> Result<()>;

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
    /// counts and each parameter's state under its name and shape.
    fn state(&self) -> OptimizerState<T>;

    /// Restores a snapshot taken by [`Optimizer::state`], for the named parameters
    /// `params` this optimizer will drive (e.g. `model.parameters()`, frozen ones
    /// included). Hyper-parameters (learning rate included, as PyTorch's
    /// `load_state_dict` does), clipping, step counts and buffers all replace the current
    /// ones.
    ///
    /// Errors, leaving the optimizer unchanged, if the state is of another kind, a
    /// hyper-parameter is missing, unknown or invalid, a counter or buffer is invalid
    /// (see [`OptimizerState`]), or, in one error listing them all, if entries name a
    /// parameter not in `params` or have another shape than it.
    fn load_state(&mut self, state: OptimizerState<T>, params: &[(String, &Tensor<T>)]) -> Result<()>;
}

/// One parameter's state: its shape, its update count `t` and the rule's buffers.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Slot<T> {
    pub shape: Vec<usize>,
    pub t: u64,
    pub bufs: Vec<Vec<T>>,
}

/// The optimizer of configuration `C` (its update rule) over elements `T`: per-parameter
/// state by name, step count, gradient clipping.
///
/// Use it through its aliases [`Sgd`](crate::Sgd), [`Momentum`](crate::Momentum),
/// [`RmsProp`](crate::RmsProp), [`Adam`](crate::Adam) and [`AdamW`](crate::AdamW), built
/// with their presets (`pytorch(lr)`, `keras(lr)`, `pytorch_default()`,
/// `keras_default()`) or [`Optim::from_config`].
///
/// ```
/// use tapegrad_optim::{Adam, AdamConfig, Optimizer};
/// let mut opt = Adam::<f64>::from_config(AdamConfig { beta1: 0.8, ..AdamConfig::pytorch(0.1) })?;
/// let mut w = vec![1.0];
/// opt.step_slices(&mut [("w", &mut w[..], Some(&[0.5][..]))])?;
/// assert!((w[0] - 0.9).abs() < 1e-7); // the first Adam step is ≈ η·sign(g)
/// assert_eq!(opt.config().beta1, 0.8);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
#[derive(Clone, Debug)]
pub struct Optim<C, T> {
    cfg: C,
    step: u64,
    slots: BTreeMap<String, Slot<T>>,
    clip: GradClip,
    last_norm: Option<f64>,
}

/// How step 3 treats each gradient element: clamped to `±clamp`, then scaled.
#[derive(Clone, Copy)]
struct Prep<T> {
    clamp: Option<T>,
    scale: Option<T>,
}

/// What the checks of one parameter see: its name, and, when it has a gradient, its
/// shape (`None` for raw slices) and the gradient.
type Item<'a, T> = (&'a str, Option<(Option<&'a [usize]>, &'a [T])>);

impl<C: Rule, T: Element> Optim<C, T> {
    /// The optimizer from a full configuration, e.g.
    /// `AdamConfig { beta2: 0.99, ..AdamConfig::pytorch(1e-3) }`.
    ///
    /// Errors, naming the optimizer, the hyper-parameter and its value, if one is out of
    /// range (see the configuration's fields).
    pub fn from_config(cfg: C) -> Result<Self> {
        cfg.validate()?;
        Ok(Optim {
            cfg,
            step: 0,
            slots: BTreeMap::new(),
            clip: GradClip::none(),
            last_norm: None,
        })
    }

    /// The configuration in use.
    pub fn config(&self) -> &C {
        &self.cfg
    }

    /// The same optimizer with gradient clipping inside each step (see [`GradClip`]).
    ///
    /// Errors if a threshold is NaN or not positive.
    pub fn with_grad_clip(mut self, clip: GradClip) -> Result<Self> {
        self.set_grad_clip(clip)?;
        Ok(self)
    }

    /// Steps 1 and 2 of the [module docs](self): check everything, then measure the norm,
    /// count the step and create new parameters' state. `names` and `items` list every
    /// parameter.
    fn prepare<'a, N, I>(&mut self, names: impl Fn() -> N, items: impl Fn() -> I) -> Result<Prep<T>>
    where
        N: Iterator<Item = &'a str>,
        I: Iterator<Item = Item<'a, T>>,
        T: 'a,
    {
        let op = C::NAME;
        // Pairwise, so that no step allocates: n²/2 string comparisons, negligible next
        // to the update itself for the parameter counts of real models.
        for (i, name) in names().enumerate() {
            if names().skip(i + 1).any(|other| other == name) {
                return Err(Error::bad_value(
                    op,
                    format!("step: parameter `{name}` is passed twice (names key the optimizer's state)"),
                ));
            }
        }
        let clamp = self.clip.max_value.map(T::from_f64_lossy);
        let cv = clamp.unwrap_or_else(T::infinity);
        let mut sumsq = 0.0f64;
        for (name, item) in items() {
            let Some((shape, g)) = item else { continue };
            if let Some(slot) = self.slots.get(name) {
                let fits = match shape {
                    Some(shape) => shape == slot.shape.as_slice(),
                    None => Some(g.len()) == slot.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d)),
                };
                if !fits {
                    let what = shape.map_or(format!("{} elements", g.len()), |s| format!("shape {s:?}"));
                    return Err(Error::bad_shape(
                        op,
                        format!(
                            "step: parameter `{name}` has {what} but its state from earlier steps has shape {:?}",
                            slot.shape
                        ),
                    ));
                }
            }
            if self.clip.max_norm.is_some() {
                sumsq += g.iter().map(|&x| clamp_abs(x, cv).as_f64().powi(2)).sum::<f64>();
            }
        }
        self.step = self
            .step
            .checked_add(1)
            .ok_or_else(|| Error::bad_value(op, format!("step: the step count {} would overflow", self.step)))?;
        let n_bufs = self.cfg.buffer_names().len();
        for (name, item) in items() {
            let Some((shape, g)) = item else { continue };
            if !self.slots.contains_key(name) {
                let slot = Slot {
                    shape: shape.map_or_else(|| vec![g.len()], <[usize]>::to_vec),
                    t: 0,
                    bufs: vec![vec![T::zero(); g.len()]; n_bufs],
                };
                self.slots.insert(name.to_string(), slot);
            }
        }
        let scale = match self.clip.max_norm {
            Some(max) => {
                let norm = sumsq.sqrt();
                self.last_norm = Some(norm);
                let coef = max / (norm + 1e-6);
                (coef < 1.0).then(|| T::from_f64_lossy(coef))
            }
            None => {
                self.last_norm = None;
                None
            }
        };
        Ok(Prep { clamp, scale })
    }

    /// Step 3 for one parameter: its rule's fused update, with clipping folded in.
    fn update(&mut self, name: &str, p: &mut [T], g: &[T], prep: Prep<T>) {
        let slot = self
            .slots
            .get_mut(name)
            .expect("prepare made every updated parameter's state");
        slot.t += 1; // ≤ the step count, which prepare checked
        let (t, bufs, cfg) = (slot.t, &mut slot.bufs, &self.cfg);
        let run = |p: &mut [T], g: &[T], st: &mut [&mut [T]]| match (prep.clamp, prep.scale) {
            (None, None) => fused_update(cfg, t, p, g, |x| x, st),
            (Some(c), None) => fused_update(cfg, t, p, g, move |x| clamp_abs(x, c), st),
            (None, Some(s)) => fused_update(cfg, t, p, g, move |x| x * s, st),
            (Some(c), Some(s)) => fused_update(cfg, t, p, g, move |x| clamp_abs(x, c) * s, st),
        };
        if p.len() >= PAR_MIN && rayon::current_num_threads() > 1 {
            // Fixed pieces of the parameter, its gradient and each state buffer, updated on
            // the pool: the update is elementwise, so the values are those of one pass.
            let mut pieces: Vec<Piece<'_, T>> = p
                .chunks_mut(PIECE)
                .zip(g.chunks(PIECE))
                .map(|(p, g)| (p, g, Vec::new()))
                .collect();
            for buf in bufs.iter_mut() {
                for (piece, b) in pieces.iter_mut().zip(buf.chunks_mut(PIECE)) {
                    piece.2.push(b);
                }
            }
            pieces.into_par_iter().for_each(|(p, g, mut st)| run(p, g, &mut st));
        } else {
            // The buffers as slices, without allocating (a step allocates nothing).
            let n = bufs.len();
            assert!(n <= MAX_BUFS, "a rule with {n} state buffers");
            let mut st: [&mut [T]; MAX_BUFS] = Default::default();
            for (s, b) in st.iter_mut().zip(bufs.iter_mut()) {
                *s = &mut b[..];
            }
            run(p, g, &mut st[..n]);
        }
    }
}

/// From this many elements a parameter's update is split over rayon's pool, in pieces of
/// [`PIECE`]. Waking the pool costs more than updating a smaller parameter: split over two
/// threads, the seed MLP's 100 K-element layer made its epoch 60% slower (session 5), while
/// the 800 K-element layer of the 784-1024-10 MLP took a serial millisecond per step.
const PAR_MIN: usize = 1 << 19;

/// Elements per piece of a split update.
const PIECE: usize = 1 << 16;

/// A piece of a split update: the parameter's, the gradient's and each buffer's.
type Piece<'a, T> = (&'a mut [T], &'a [T], Vec<&'a mut [T]>);

/// The most state buffers a rule keeps (centered RMSprop with momentum: three).
const MAX_BUFS: usize = 3;

/// A rule's fused update, compiled for several instruction sets (x86-64-v4 with AVX-512,
/// v3 with AVX2, v2; [`multiversion`](mod@multiversion)) and run with the best one the CPU has, so a binary
/// built with default flags updates on the widest vectors. The rules' `update` methods
/// are `#[inline(always)]`, so their loops are compiled inside each version. The values
/// are the same on every path (no FMA contraction).
#[multiversion::multiversion(targets = "simd")]
fn fused_update<C: Rule, T: Element, G: Fn(T) -> T + Copy>(
    cfg: &C,
    t: u64,
    p: &mut [T],
    g: &[T],
    prep: G,
    st: &mut [&mut [T]],
) {
    cfg.update(t, p, g, prep, st)
}

fn grad_shape_error(name: &str, p: &Tensor<impl Element>, g: &Tensor<impl Element>, op: &'static str) -> Error {
    Error::bad_shape(
        op,
        format!(
            "step: parameter `{name}` has shape {} but its gradient has shape {}",
            p.shape(),
            g.shape()
        ),
    )
}

impl<C: Rule, T: Element> Optimizer<T> for Optim<C, T> {
    fn kind(&self) -> &'static str {
        C::KIND
    }

    fn step(&mut self, params: &mut [(String, &mut Tensor<T>)], grads: &Gradients<T>) -> Result<()> {
        for (name, p) in params.iter() {
            match grads.get(p) {
                Some(g) if g.shape() != p.shape() => return Err(grad_shape_error(name, p, g, C::NAME)),
                _ => {}
            }
        }
        let prep = self.prepare(
            || params.iter().map(|(n, _)| n.as_str()),
            || {
                params
                    .iter()
                    .map(|(n, p)| (n.as_str(), grads.get(p).map(|g| (Some(p.dims()), g.data()))))
            },
        )?;
        for (name, p) in params.iter_mut() {
            if let Some(g) = grads.get(p) {
                self.update(name, p.data_mut(), g.data(), prep);
            }
        }
        Ok(())
    }

    fn step_with_grads(&mut self, params: &mut [(String, &mut Tensor<T>)], grads: &[Option<Tensor<T>>]) -> Result<()> {
        if params.len() != grads.len() {
            return Err(Error::bad_value(
                C::NAME,
                format!(
                    "step: {} parameters but {} gradients (one per parameter, None to skip it)",
                    params.len(),
                    grads.len()
                ),
            ));
        }
        for ((name, p), g) in params.iter().zip(grads) {
            match g {
                Some(g) if g.shape() != p.shape() => return Err(grad_shape_error(name, p, g, C::NAME)),
                _ => {}
            }
        }
        let prep = self.prepare(
            || params.iter().map(|(n, _)| n.as_str()),
            || {
                params
                    .iter()
                    .zip(grads)
                    .map(|((n, p), g)| (n.as_str(), g.as_ref().map(|g| (Some(p.dims()), g.data()))))
            },
        )?;
        for ((name, p), g) in params.iter_mut().zip(grads) {
            if let Some(g) = g {
                self.update(name, p.data_mut(), g.data(), prep);
            }
        }
        Ok(())
    }

    fn step_slices(&mut self, updates: &mut [(&str, &mut [T], Option<&[T]>)]) -> Result<()> {
        for (name, p, g) in updates.iter() {
            match g {
                Some(g) if g.len() != p.len() => {
                    return Err(Error::bad_shape(
                        C::NAME,
                        format!(
                            "step: parameter `{name}` has {} elements but its gradient has {}",
                            p.len(),
                            g.len()
                        ),
                    ))
                }
                _ => {}
            }
        }
        let prep = self.prepare(
            || updates.iter().map(|(n, _, _)| *n),
            || updates.iter().map(|(n, _, g)| (*n, g.map(|g| (None, g)))),
        )?;
        for (name, p, g) in updates.iter_mut() {
            if let Some(g) = *g {
                self.update(name, p, g, prep);
            }
        }
        Ok(())
    }

    fn learning_rate(&self) -> f64 {
        self.cfg.lr()
    }

    fn set_learning_rate(&mut self, lr: f64) -> Result<()> {
        check_lr(C::NAME, lr)?;
        self.cfg.set_lr(lr);
        Ok(())
    }

    fn step_count(&self) -> u64 {
        self.step
    }

    fn grad_clip(&self) -> GradClip {
        self.clip
    }

    fn set_grad_clip(&mut self, clip: GradClip) -> Result<()> {
        clip.validate(C::NAME)?;
        self.clip = clip;
        Ok(())
    }

    fn last_grad_norm(&self) -> Option<f64> {
        self.last_norm
    }

    fn state(&self) -> OptimizerState<T> {
        let mut hyper: Vec<(String, f64)> = self.cfg.hyper().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        hyper.push(("max_grad_norm".into(), self.clip.max_norm.unwrap_or(f64::INFINITY)));
        hyper.push(("max_grad_value".into(), self.clip.max_value.unwrap_or(f64::INFINITY)));
        OptimizerState {
            kind: C::KIND.to_string(),
            step: self.step,
            hyper,
            buffer_names: self.cfg.buffer_names().iter().map(|s| s.to_string()).collect(),
            params: self
                .slots
                .iter()
                .map(|(name, s)| ParamEntry {
                    name: name.clone(),
                    shape: s.shape.clone(),
                    step: s.t,
                    buffers: s.bufs.clone(),
                })
                .collect(),
        }
    }

    fn load_state(&mut self, state: OptimizerState<T>, params: &[(String, &Tensor<T>)]) -> Result<()> {
        let op = C::NAME;
        let fail = |m: String| Error::bad_value(op, format!("load_state: {m}"));
        if state.kind != C::KIND {
            return Err(fail(format!(
                "cannot load a {} state into a {} optimizer",
                state.kind,
                C::KIND
            )));
        }
        let mut h = crate::rule::Hyper::new(op, &state.hyper);
        let cfg = C::from_hyper(&mut h)?;
        let clip = GradClip {
            max_norm: h.optional_positive("max_grad_norm")?,
            max_value: h.optional_positive("max_grad_value")?,
        };
        h.finish()?;
        cfg.validate()?;
        let names = cfg.buffer_names();
        if state.buffer_names != names {
            return Err(fail(format!(
                "the state has buffers {:?} but this configuration keeps {names:?}",
                state.buffer_names
            )));
        }
        state
            .check(StateCheck {
                nonnegative: cfg.nonnegative_buffers(),
            })
            .map_err(fail)?;
        let mismatches: Vec<String> = state
            .params
            .iter()
            .filter_map(|e| match params.iter().find(|(n, _)| *n == e.name) {
                None => Some(format!(
                    "`{}` (shape {:?}) is not among the parameters",
                    e.name, e.shape
                )),
                Some((_, p)) if p.dims() != e.shape.as_slice() => Some(format!(
                    "`{}` has shape {:?} in the state but {} in the parameters",
                    e.name,
                    e.shape,
                    p.shape()
                )),
                Some(_) => None,
            })
            .collect();
        if !mismatches.is_empty() {
            return Err(fail(format!(
                "{} entries do not fit the parameters: {}",
                mismatches.len(),
                mismatches.join("; ")
            )));
        }
        self.cfg = cfg;
        self.clip = clip;
        self.step = state.step;
        self.last_norm = None;
        self.slots = state
            .params
            .into_iter()
            .map(|e| {
                let slot = Slot {
                    shape: e.shape,
                    t: e.step,
                    bufs: e.buffers,
                };
                (e.name, slot)
            })
            .collect();
        Ok(())
    }
}
