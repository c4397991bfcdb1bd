//! The machinery shared by all optimizers: the [`Rule`] an optimizer implements, the
//! [`Engine`] holding step counts, state buffers and clipping, the step driver
//! [`run_step`], state snapshots, and hyper-parameter validation.

use crate::clip::GradClip;
use crate::optimizer::{OptimizerState, StateBuffer};
use tapegrad_core::{Element, Error, Gradients, Result, Tensor};

/// A state value (momentum, moment or running average) with subnormal magnitude
/// (below `T::min_positive_value()`, 1.2e-38 in `f32`) stored as zero.
///
/// Running averages decay geometrically (Adam's m by β₁ = 0.9 a step) wherever a
/// gradient stops, so they pass through the subnormal range, and each arithmetic
/// operation on a subnormal costs ~100 cycles on x86 (it measured as a 60% slowdown of
/// an MNIST epoch). The value it replaces changes the parameter update by less than
/// 1e-30 relative; normal values are untouched, bit for bit.
#[inline(always)]
pub(crate) fn flush_subnormal<T: Element>(x: T) -> T {
    if x.abs() < T::min_positive_value() {
        T::zero()
    } else {
        x
    }
}

/// Error-message names of one optimizer's operations.
pub(crate) struct Ops {
    pub new: &'static str,
    pub step: &'static str,
    pub set_lr: &'static str,
    pub set_clip: &'static str,
    pub load: &'static str,
}

/// An optimizer's configuration and per-element update rule, independent of `T`.
pub(crate) trait Rule: Sized {
    const KIND: &'static str;
    const OPS: Ops;
    fn lr(&self) -> f64;
    fn set_lr(&mut self, lr: f64);
    /// Names of the per-parameter state buffers this configuration keeps.
    fn buffer_names(&self) -> &'static [&'static str];
    /// Hyper-parameters by name (flags as 0/1).
    fn hyper(&self) -> Vec<(&'static str, f64)>;
    /// The inverse of `hyper`, validated.
    fn from_hyper(h: &mut Hyper<'_>) -> Result<Self>;
    /// One parameter's update. `t` is the parameter's update count including this one
    /// (1 on its first update), `prep` maps a raw gradient element to the one to use
    /// (clipping), and `st` holds one buffer per [`Rule::buffer_names`], each as long as `p`.
    fn update<T: Element, G: Fn(T) -> T>(&self, t: u64, p: &mut [T], g: &[T], prep: G, st: &mut [Vec<T>]);
}

/// What every optimizer keeps besides its configuration.
#[derive(Clone, Debug, Default)]
pub(crate) struct Engine<T> {
    step: u64,
    param_steps: Vec<u64>,
    /// `bufs[i][k]`: buffer `k` of parameter `i` (empty until its first update).
    bufs: Vec<Vec<Vec<T>>>,
    pub clip: GradClip,
    pub last_norm: Option<f64>,
}

impl<T: Element> Engine<T> {
    pub(crate) fn new() -> Self {
        Engine {
            step: 0,
            param_steps: Vec::new(),
            bufs: Vec::new(),
            clip: GradClip::none(),
            last_norm: None,
        }
    }

    pub(crate) fn step_count(&self) -> u64 {
        self.step
    }
}

/// Parameters paired with gradients, however the caller holds them.
pub(crate) trait Batch<T: Element> {
    fn len(&self) -> usize;
    /// Parameter `i`'s gradient (`None`: skip it), after checking that it fits the parameter.
    fn grad(&self, op: &'static str, i: usize) -> Result<Option<&[T]>>;
    /// Parameter `i` and its gradient, for the update.
    fn pair(&mut self, i: usize) -> Option<(&mut [T], &[T])>;
}

fn shape_error(op: &'static str, i: usize, p: &Tensor<impl Element>, g: &Tensor<impl Element>) -> Error {
    Error::bad_shape(
        op,
        format!(
            "parameter {i} has shape {} but its gradient has shape {}",
            p.shape(),
            g.shape()
        ),
    )
}

pub(crate) struct TensorBatch<'p, 'q, 'g, T: Element> {
    pub params: &'p mut [&'q mut Tensor<T>],
    pub grads: &'g Gradients<T>,
}

impl<T: Element> Batch<T> for TensorBatch<'_, '_, '_, T> {
    fn len(&self) -> usize {
        self.params.len()
    }
    fn grad(&self, op: &'static str, i: usize) -> Result<Option<&[T]>> {
        let p = &*self.params[i];
        match self.grads.get(p) {
            Some(g) if g.shape() != p.shape() => Err(shape_error(op, i, p, g)),
            g => Ok(g.map(|g| g.data())),
        }
    }
    fn pair(&mut self, i: usize) -> Option<(&mut [T], &[T])> {
        let grads: &Gradients<T> = self.grads;
        let g = grads.get(self.params[i])?;
        Some((self.params[i].data_mut(), g.data()))
    }
}

pub(crate) struct ListBatch<'p, 'q, 'g, T: Element> {
    pub params: &'p mut [&'q mut Tensor<T>],
    pub grads: &'g [Option<Tensor<T>>],
}

impl<T: Element> ListBatch<'_, '_, '_, T> {
    pub(crate) fn check_len(&self, op: &'static str) -> Result<()> {
        if self.params.len() != self.grads.len() {
            return Err(Error::bad_value(
                op,
                format!(
                    "{} parameters but {} gradients (one per parameter, None to skip it)",
                    self.params.len(),
                    self.grads.len()
                ),
            ));
        }
        Ok(())
    }
}

impl<T: Element> Batch<T> for ListBatch<'_, '_, '_, T> {
    fn len(&self) -> usize {
        self.params.len()
    }
    fn grad(&self, op: &'static str, i: usize) -> Result<Option<&[T]>> {
        let p = &*self.params[i];
        match &self.grads[i] {
            Some(g) if g.shape() != p.shape() => Err(shape_error(op, i, p, g)),
            g => Ok(g.as_ref().map(|g| g.data())),
        }
    }
    fn pair(&mut self, i: usize) -> Option<(&mut [T], &[T])> {
        let grads: &[Option<Tensor<T>>] = self.grads;
        let g = grads[i].as_ref()?;
        Some((self.params[i].data_mut(), g.data()))
    }
}

pub(crate) struct SliceBatch<'s, 'a, 'b, T>(pub &'s mut [(&'a mut [T], Option<&'b [T]>)]);

impl<T: Element> Batch<T> for SliceBatch<'_, '_, '_, T> {
    fn len(&self) -> usize {
        self.0.len()
    }
    fn grad(&self, op: &'static str, i: usize) -> Result<Option<&[T]>> {
        let (p, g) = &self.0[i];
        match *g {
            Some(g) if g.len() != p.len() => Err(Error::bad_shape(
                op,
                format!(
                    "parameter {i} has {} elements but its gradient has {}",
                    p.len(),
                    g.len()
                ),
            )),
            g => Ok(g),
        }
    }
    fn pair(&mut self, i: usize) -> Option<(&mut [T], &[T])> {
        let (p, g) = &mut self.0[i];
        let g: &[T] = (*g)?;
        Some((&mut **p, g))
    }
}

/// Clamps to `[-c, c]`, letting NaN through (so a NaN gradient still shows).
#[inline(always)]
pub(crate) fn clamp_abs<T: Element>(x: T, c: T) -> T {
    if x > c {
        c
    } else if x < -c {
        -c
    } else {
        x
    }
}

/// The shared step: check everything, measure the norm if clipping by norm, update.
pub(crate) fn run_step<T: Element, R: Rule, B: Batch<T>>(rule: &R, eng: &mut Engine<T>, batch: &mut B) -> Result<()> {
    let op = R::OPS.step;
    let n = batch.len();
    let max_value = eng.clip.max_value.map(T::from_f64_lossy);
    let cv = max_value.unwrap_or_else(T::infinity);
    let mut sumsq = 0.0f64;
    for i in 0..n {
        let Some(g) = batch.grad(op, i)? else { continue };
        if let Some(st) = eng.bufs.get(i) {
            for (buf, name) in st.iter().zip(rule.buffer_names()) {
                if buf.len() != g.len() {
                    return Err(Error::bad_shape(
                        op,
                        format!(
                            "parameter {i} has {} elements but its state buffer `{name}` has {} \
                             (were the parameters passed in another order, or resized?)",
                            g.len(),
                            buf.len()
                        ),
                    ));
                }
            }
        }
        if eng.clip.max_norm.is_some() {
            sumsq += g.iter().map(|&x| clamp_abs(x, cv).as_f64().powi(2)).sum::<f64>();
        }
    }
    let scale = match eng.clip.max_norm {
        Some(max) => {
            let norm = sumsq.sqrt();
            eng.last_norm = Some(norm);
            let coef = max / (norm + 1e-6);
            (coef < 1.0).then(|| T::from_f64_lossy(coef))
        }
        None => {
            eng.last_norm = None;
            None
        }
    };
    eng.step += 1;
    if eng.bufs.len() < n {
        eng.bufs.resize_with(n, Vec::new);
        eng.param_steps.resize(n, 0);
    }
    let n_bufs = rule.buffer_names().len();
    for i in 0..n {
        let Some((p, g)) = batch.pair(i) else { continue };
        let st = &mut eng.bufs[i];
        if eng.param_steps[i] == 0 {
            st.clear();
            st.resize_with(n_bufs, || vec![T::zero(); p.len()]);
        }
        eng.param_steps[i] += 1;
        let t = eng.param_steps[i];
        match (max_value, scale) {
            (None, None) => rule.update(t, p, g, |x| x, st),
            (Some(c), None) => rule.update(t, p, g, |x| clamp_abs(x, c), st),
            (None, Some(s)) => rule.update(t, p, g, |x| x * s, st),
            (Some(c), Some(s)) => rule.update(t, p, g, |x| clamp_abs(x, c) * s, st),
        }
    }
    Ok(())
}

/// The snapshot of `rule` and `eng`.
pub(crate) fn snapshot<T: Element, R: Rule>(rule: &R, eng: &Engine<T>) -> OptimizerState<T> {
    let mut hyper: Vec<(String, f64)> = rule.hyper().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
    hyper.push(("max_grad_norm".into(), eng.clip.max_norm.unwrap_or(f64::INFINITY)));
    hyper.push(("max_grad_value".into(), eng.clip.max_value.unwrap_or(f64::INFINITY)));
    let buffers = rule
        .buffer_names()
        .iter()
        .enumerate()
        .map(|(k, name)| StateBuffer {
            name: name.to_string(),
            per_param: eng
                .bufs
                .iter()
                .map(|st| st.get(k).cloned().unwrap_or_default())
                .collect(),
        })
        .collect();
    OptimizerState {
        kind: R::KIND.to_string(),
        dtype: T::DTYPE.to_string(),
        step: eng.step,
        hyper,
        param_steps: eng.param_steps.clone(),
        buffers,
    }
}

/// Validates `state` against `R` and rebuilds the configuration and engine from it.
pub(crate) fn restore<T: Element, R: Rule>(state: OptimizerState<T>) -> Result<(R, Engine<T>)> {
    let op = R::OPS.load;
    if state.kind != R::KIND {
        return Err(Error::bad_value(
            op,
            format!("cannot load a {} state into a {} optimizer", state.kind, R::KIND),
        ));
    }
    if state.dtype != T::DTYPE {
        return Err(Error::bad_value(
            op,
            format!(
                "cannot load a state of {} buffers into an {} optimizer",
                state.dtype,
                T::DTYPE
            ),
        ));
    }
    let mut h = Hyper::new(op, &state.hyper);
    let rule = R::from_hyper(&mut h)?;
    let clip = GradClip {
        max_norm: h.optional_positive("max_grad_norm")?,
        max_value: h.optional_positive("max_grad_value")?,
    };
    h.finish()?;
    let names = rule.buffer_names();
    let found: Vec<&str> = state.buffers.iter().map(|b| b.name.as_str()).collect();
    if found != names {
        return Err(Error::bad_value(
            op,
            format!("the state has buffers {found:?} but this configuration keeps {names:?}"),
        ));
    }
    let n = state.param_steps.len();
    if let Some(&t) = state.param_steps.iter().find(|&&t| t > state.step) {
        return Err(Error::bad_value(
            op,
            format!(
                "a parameter has {t} updates but the optimizer only {} steps",
                state.step
            ),
        ));
    }
    let mut bufs: Vec<Vec<Vec<T>>> = (0..n).map(|_| Vec::with_capacity(names.len())).collect();
    for b in state.buffers {
        if b.per_param.len() != n {
            return Err(Error::bad_value(
                op,
                format!(
                    "buffer `{}` has {} parameter slots but the state has {n}",
                    b.name,
                    b.per_param.len()
                ),
            ));
        }
        for (i, v) in b.per_param.into_iter().enumerate() {
            bufs[i].push(v);
        }
    }
    for (i, st) in bufs.iter_mut().enumerate() {
        let lens: Vec<usize> = st.iter().map(Vec::len).collect();
        if state.param_steps[i] == 0 {
            if lens.iter().any(|&l| l != 0) {
                return Err(Error::bad_value(
                    op,
                    format!("parameter {i} has no updates but non-empty buffers of sizes {lens:?}"),
                ));
            }
            st.clear();
        } else if lens.windows(2).any(|w| w[0] != w[1]) {
            return Err(Error::bad_value(
                op,
                format!("the buffers of parameter {i} have mismatched sizes {lens:?} (names {names:?})"),
            ));
        }
    }
    let eng = Engine {
        step: state.step,
        param_steps: state.param_steps,
        bufs,
        clip,
        last_norm: None,
    };
    Ok((rule, eng))
}

/// Reads named hyper-parameters out of a state, rejecting missing and unknown ones.
pub(crate) struct Hyper<'a> {
    op: &'static str,
    entries: &'a [(String, f64)],
    used: Vec<bool>,
}

impl<'a> Hyper<'a> {
    fn new(op: &'static str, entries: &'a [(String, f64)]) -> Self {
        Hyper {
            op,
            entries,
            used: vec![false; entries.len()],
        }
    }

    pub(crate) fn get(&mut self, name: &str) -> Result<f64> {
        match self.entries.iter().position(|(k, _)| k == name) {
            Some(i) => {
                self.used[i] = true;
                Ok(self.entries[i].1)
            }
            None => Err(Error::bad_value(
                self.op,
                format!("the state has no hyper-parameter `{name}`"),
            )),
        }
    }

    pub(crate) fn flag(&mut self, name: &str) -> Result<bool> {
        match self.get(name)? {
            0.0 => Ok(false),
            1.0 => Ok(true),
            v => Err(Error::bad_value(
                self.op,
                format!("hyper-parameter `{name}` is a flag (0 or 1), got {v}"),
            )),
        }
    }

    fn optional_positive(&mut self, name: &str) -> Result<Option<f64>> {
        let v = self.get(name)?;
        if v == f64::INFINITY {
            return Ok(None);
        }
        check_positive(self.op, name, v)?;
        Ok(Some(v))
    }

    fn finish(self) -> Result<()> {
        match self.used.iter().position(|u| !u) {
            Some(i) => Err(Error::bad_value(
                self.op,
                format!("unexpected hyper-parameter `{}` in the state", self.entries[i].0),
            )),
            None => Ok(()),
        }
    }
}

/// `lr` must be finite and ≥ 0.
pub(crate) fn check_lr(op: &'static str, lr: f64) -> Result<()> {
    check_nonneg(op, "learning rate", lr)
}

/// `v` must be finite and ≥ 0.
pub(crate) fn check_nonneg(op: &'static str, name: &str, v: f64) -> Result<()> {
    if v.is_finite() && v >= 0.0 {
        Ok(())
    } else {
        Err(Error::bad_value(op, format!("{name} must be finite and ≥ 0, got {v}")))
    }
}

/// `v` must be > 0 (∞ allowed) and not NaN.
pub(crate) fn check_positive(op: &'static str, name: &str, v: f64) -> Result<()> {
    if v > 0.0 {
        Ok(())
    } else {
        Err(Error::bad_value(op, format!("{name} must be > 0, got {v}")))
    }
}

/// `v` must lie in `[0, 1)`, or `[0, 1]` when `closed`.
pub(crate) fn check_unit(op: &'static str, name: &str, v: f64, closed: bool) -> Result<()> {
    let ok = v >= 0.0 && (v < 1.0 || (closed && v == 1.0));
    if ok {
        Ok(())
    } else {
        let range = if closed { "[0, 1]" } else { "[0, 1)" };
        Err(Error::bad_value(op, format!("{name} must lie in {range}, got {v}")))
    }
}

/// `b^t` in `f64` for a step count `t` (`powi` while `t` fits an `i32`).
#[inline]
pub(crate) fn pow_t(b: f64, t: u64) -> f64 {
    match i32::try_from(t) {
        Ok(t) => b.powi(t),
        Err(_) => b.powf(t as f64),
    }
}

#[inline(always)]
pub(crate) fn c<T: Element>(v: f64) -> T {
    T::from_f64_lossy(v)
}
