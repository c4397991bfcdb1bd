//! Function transforms, like PyTorch's `torch.func` (and `torch.autograd.functional.hvp`):
//! derivatives of a *function* `f: (x₁, …, xₙ) ↦ y`, given as a closure
//! `Fn(&[Tensor<T>]) -> Result<Tensor<T>>`, rather than of a recorded tensor.
//!
//! | transform | returns | cost, in backward passes beyond one forward (MLP, measured) |
//! | --- | --- | --- |
//! | [`value_and_grad`] | `f(x)`, `∇f(x)` (scalar `f`) | 1 (0.9–1.2) |
//! | [`grad`] | the function `x ↦ ∇ₓᵢf(x)`, composable | same, per call |
//! | [`vjp`] | `f(x)` and the pullback `v ↦ vᵀJ` | 1 per call (1.0–1.3) |
//! | [`jvp`] | `f(x)` and `J·t` | 3–4 (double VJP) |
//! | [`hvp`] | `f(x)` and `H·v` (scalar `f`) | 5–9 (reverse over reverse) |
//! | [`jacobian`] | `∂y/∂xᵢ`, shape `y.dims ++ xᵢ.dims` | `m` (reverse) or ≈ 2 + `n` (forward) |
//! | [`hessian`] | `∂²f/∂xᵢ∂xⱼ`, shape `xᵢ.dims ++ xⱼ.dims` | a Jacobian of each gradient |
//!
//! (`cargo bench -p tapegrad-core --bench core -- func`: an MLP loss, batch 256,
//! 64 → 128 → 10; `(time − forward) / backward`, three runs on a loaded 2-core machine.)
//! Second-order transforms cost more than the "≈ 2–3 backward passes" often quoted: the
//! recorded backward pass uses the differentiable (unfused) rules and records them, and
//! the pass through it also re-traverses the forward graph the rules read, so an MLP's
//! `hvp` runs about 14 matmuls where forward and backward run 2 and 3.
//!
//! Forward mode is the *double-VJP* construction: with `u` a dummy cotangent,
//! `g(u) = Jᵀu` is linear in `u`, so `∂⟨g(u), t⟩/∂u = J t`. It needs no forward-mode rule per
//! op (every op's rule is differentiable, see [`crate::tape`]) but costs a recorded backward
//! pass plus a backward pass through it (which stops at `u`), 3–4 plain backward passes.
//!
//! **Nesting** works to any order, as in `torch.func`: every transform hands `f` its own
//! view of the inputs (a fresh leaf, or an `alias` op of an input that an outer transform
//! tracks), and keeps its results differentiable exactly when the outer computation is
//! being recorded, i.e. when `f`'s graph reaches a tensor tracked from outside (an input or
//! a captured weight). So `grad(grad(f, 0), 0)` is the second derivative, a closure that
//! captures tracked weights yields gradients differentiable in those weights (the WGAN-GP
//! penalty), and at the top level results are plain tensors. The transforms record ops
//! even inside [`no_grad`](crate::no_grad) (like `torch.func.grad`); there, results are plain.
//!
//! ```
//! use tapegrad_core::{func, Tensor};
//! // f(x) = Σ x³: ∇f = 3x², H = diag(6x), and the third derivative of x³ is 6.
//! let f = |xs: &[Tensor<f64>]| Ok(xs[0].powf(3.0)?.sum_all());
//! let x = Tensor::from_vec(vec![1.0, -2.0], [2])?;
//! let (y, g) = func::value_and_grad(f, &[x.clone()])?;
//! assert_eq!((y.item()?, g[0].to_vec()), (-7.0, vec![3.0, 12.0]));
//! assert_eq!(func::hessian(f, &[x.clone()])?[0][0].to_vec(), vec![6.0, 0.0, 0.0, -12.0]);
//! let d1 = func::grad(|xs: &[Tensor<f64>]| Ok(xs[0].powf(3.0)?), 0);
//! let d3 = func::grad(func::grad(d1, 0), 0);
//! assert_eq!(d3(&[Tensor::scalar(0.5)])?.item()?, 6.0);
//! # Ok::<(), tapegrad_core::Error>(())
//! ```

use crate::element::Element;
use crate::error::{Error, Result};
use crate::grad_mode::{is_grad_enabled, set_grad_enabled, GradModeGuard};
use crate::gradients::grad as reverse;
use crate::ops::{one, OpKind};
use crate::tape::Node;
use crate::tensor::Tensor;
use std::collections::HashSet;
use triomphe::Arc;

/// One transform's view of its inputs: what `f` sees, and where the transform's own part of
/// the graph begins.
struct Level<T: Element> {
    inner: Vec<Tensor<T>>,
    /// Node ids below this one were recorded before the transform began.
    start: u64,
    outer_grad: bool,
}

impl<T: Element> Level<T> {
    /// Switches grad mode on (until the returned guard is dropped) and makes the level's
    /// own inputs, remembering whether the caller was recording.
    fn enter(xs: &[Tensor<T>]) -> (GradModeGuard, Self) {
        let outer_grad = is_grad_enabled();
        let on = set_grad_enabled(true);
        (on, Self::inputs(xs, outer_grad))
    }

    fn inputs(xs: &[Tensor<T>], outer_grad: bool) -> Self {
        // A new block of ids: every node recorded before now, on any thread, has a smaller
        // id than the marker, and every later node of this thread a larger one.
        crate::tape::begin_block();
        let marker = Tensor::<T>::scalar(T::zero()).requires_grad();
        let start = marker.node_id().expect("a fresh leaf has an id");
        let inner = xs
            .iter()
            .map(|x| {
                if x.is_tracked() && outer_grad {
                    alias(x)
                } else {
                    x.detach().requires_grad()
                }
            })
            .collect();
        Level {
            inner,
            start,
            outer_grad,
        }
    }

    fn refs(&self) -> Vec<&Tensor<T>> {
        self.inner.iter().collect()
    }

    /// Whether results must stay differentiable for an outer computation: `y`'s graph
    /// reaches a node recorded before this level, or `extra` (tangents, cotangents) is tracked.
    fn nested(&self, y: &Tensor<T>, extra: &[Tensor<T>]) -> bool {
        self.outer_grad && (extra.iter().any(|t| t.is_tracked()) || reaches_below(y, self.start))
    }

    /// `vᵀ ∂y/∂xᵢ` for every input (zeros where `y` does not depend on one).
    fn pull(&self, y: &Tensor<T>, v: Option<&Tensor<T>>, create_graph: bool) -> Result<Vec<Tensor<T>>> {
        if y.is_tracked() {
            reverse(y, &self.refs(), v, create_graph)
        } else {
            Ok(self.inner.iter().map(|x| x.zeros_like()).collect())
        }
    }
}

/// Whether the graph of `y` holds a node with an id below `start` (searching no further
/// down than such a node).
fn reaches_below<T: Element>(y: &Tensor<T>, start: u64) -> bool {
    let mut seen = HashSet::new();
    let mut stack: Vec<&Arc<Node<T>>> = y.node.iter().collect();
    while let Some(n) = stack.pop() {
        if n.id < start {
            return true;
        }
        if seen.insert(n.id) {
            stack.extend(n.inputs.iter().filter_map(|t| t.node.as_ref()));
        }
    }
    false
}

/// The identity, recorded: a nested transform's own handle on an input an outer one tracks.
fn alias<T: Element>(x: &Tensor<T>) -> Tensor<T> {
    let out = Tensor::from_storage(x.data.clone(), x.shape.clone());
    crate::tape::record(OpKind::Alias.name(), &[x], out, false, |ctx| Ok(one(ctx.grad.clone())))
}

fn finish<T: Element>(y: Tensor<T>, nested: bool) -> Tensor<T> {
    if nested {
        y
    } else {
        y.detach()
    }
}

fn need_scalar<T: Element>(op: &'static str, y: &Tensor<T>) -> Result<()> {
    if y.numel() == 1 {
        Ok(())
    } else {
        Err(Error::bad_shape(
            op,
            format!("f must return a single element, got shape {}", y.shape()),
        ))
    }
}

/// `Σᵢ ⟨aᵢ, bᵢ⟩` over the tracked `aᵢ` (untracked ones are constant zeros here).
fn inner_product<T: Element>(op: &'static str, a: &[Tensor<T>], b: &[Tensor<T>]) -> Result<Option<Tensor<T>>> {
    let mut s: Option<Tensor<T>> = None;
    for (a, b) in a.iter().zip(b) {
        if a.shape() != b.shape() {
            return Err(Error::mismatch(
                op,
                a.shape(),
                b.shape(),
                "one vector of each input's shape",
            ));
        }
        if a.is_tracked() {
            let term = a.mul(b)?.sum_all();
            s = Some(match s {
                Some(s) => s.add(&term)?,
                None => term,
            });
        }
    }
    Ok(s)
}

fn check_count<T: Element>(op: &'static str, xs: &[Tensor<T>], vs: &[Tensor<T>]) -> Result<()> {
    if xs.len() == vs.len() {
        Ok(())
    } else {
        Err(Error::bad_value(
            op,
            format!(
                "{} inputs but {} vectors: give one vector per input",
                xs.len(),
                vs.len()
            ),
        ))
    }
}

/// `f(x)` and its gradient `∇f(x)` with respect to every input, for `f` returning a single
/// element (like `torch.func.grad_and_value`, value first as in `jax.value_and_grad`).
///
/// ```
/// use tapegrad_core::{func, Tensor};
/// // f(x, w) = Σ (x·w)²: ∂f/∂x = 2xw², ∂f/∂w = 2x²w.
/// let f = |xs: &[Tensor<f64>]| Ok(xs[0].mul(&xs[1])?.square().sum_all());
/// let (x, w) = (Tensor::from_vec(vec![1.0, 2.0], [2])?, Tensor::from_vec(vec![3.0, -1.0], [2])?);
/// let (y, g) = func::value_and_grad(f, &[x, w])?;
/// assert_eq!(y.item()?, 13.0);
/// assert_eq!((g[0].to_vec(), g[1].to_vec()), (vec![18.0, 4.0], vec![6.0, -8.0]));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn value_and_grad<T, F>(f: F, xs: &[Tensor<T>]) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    let (_on, lv) = Level::enter(xs);
    let y = f(&lv.inner)?;
    need_scalar("value_and_grad", &y)?;
    let nested = lv.nested(&y, &[]);
    let g = lv.pull(&y, None, nested)?;
    Ok((finish(y, nested), g))
}

/// The function `x ↦ ∂f/∂x_argnum` (like `torch.func.grad(f, argnums)`), for `f` returning a
/// single element. It has `f`'s own form, so it composes: `grad(grad(f, 0), 0)` is the
/// second derivative of a scalar function, and so on to any order.
///
/// ```
/// use tapegrad_core::{func, Tensor};
/// let tanh = |xs: &[Tensor<f64>]| Ok(xs[0].tanh());
/// let d2 = func::grad(func::grad(tanh, 0), 0); // −2 tanh x (1 − tanh² x)
/// let t = 0.5f64.tanh();
/// assert!((d2(&[Tensor::scalar(0.5)])?.item()? + 2.0 * t * (1.0 - t * t)).abs() < 1e-12);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn grad<T, F>(f: F, argnum: usize) -> impl Fn(&[Tensor<T>]) -> Result<Tensor<T>>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    move |xs: &[Tensor<T>]| {
        if argnum >= xs.len() {
            return Err(Error::bad_value(
                "grad",
                format!("argnum {argnum} is out of range for {} input(s)", xs.len()),
            ));
        }
        let (_, mut g) = value_and_grad(&f, xs)?;
        Ok(g.swap_remove(argnum))
    }
}

/// The pullback of [`vjp`]: maps a cotangent `v` (shaped like `f`'s output) to `vᵀ ∂y/∂xᵢ`
/// for every input. Call it as often as you like; each call is one backward pass.
pub struct Pullback<T: Element> {
    level: Level<T>,
    y: Tensor<T>,
    nested: bool,
}

impl<T: Element> Pullback<T> {
    /// `vᵀJ` for each input, shaped like that input (differentiable if `v` or an input is
    /// tracked from outside). Errors if `v` is not shaped like the output.
    ///
    /// ```
    /// use tapegrad_core::{func, Tensor};
    /// let x = Tensor::<f64>::from_vec(vec![1.0, 2.0], [2])?;
    /// let (y, pull) = func::vjp(|xs| Ok(xs[0].square()), &[x])?; // J = diag(2x)
    /// assert_eq!(y.to_vec(), vec![1.0, 4.0]);
    /// assert_eq!(pull.call(&Tensor::from_vec(vec![1.0, 10.0], [2])?)?[0].to_vec(), vec![2.0, 40.0]);
    /// # Ok::<(), tapegrad_core::Error>(())
    /// ```
    pub fn call(&self, v: &Tensor<T>) -> Result<Vec<Tensor<T>>> {
        if v.shape() != self.y.shape() {
            return Err(Error::mismatch(
                "vjp",
                self.y.shape(),
                v.shape(),
                "a cotangent of the output's shape",
            ));
        }
        let create_graph = self.nested || (v.is_tracked() && is_grad_enabled());
        self.level.pull(&self.y, Some(v), create_graph)
    }
}

/// `f(x)` and its pullback `v ↦ vᵀJ` (like `torch.func.vjp`): reverse mode for any output
/// shape. The graph of `f(x)` is kept by the pullback until it is dropped.
///
/// ```
/// use tapegrad_core::{func, Tensor};
/// // y = A x: the pullback of v is Aᵀ v.
/// let a = Tensor::<f64>::from_vec(vec![1.0, 2.0, 3.0, 4.0], [2, 2])?;
/// let x = Tensor::from_vec(vec![1.0, 1.0], [2])?;
/// let (y, pull) = func::vjp(|xs| a.matmul(&xs[0]), &[x])?;
/// assert_eq!(y.to_vec(), vec![3.0, 7.0]);
/// assert_eq!(pull.call(&Tensor::from_vec(vec![1.0, 0.0], [2])?)?[0].to_vec(), vec![1.0, 2.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn vjp<T, F>(f: F, xs: &[Tensor<T>]) -> Result<(Tensor<T>, Pullback<T>)>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    let (_on, level) = Level::enter(xs);
    let y = f(&level.inner)?;
    let nested = level.nested(&y, &[]);
    let value = finish(y.clone(), nested);
    Ok((value, Pullback { level, y, nested }))
}

/// `f(x)` and the Jacobian-vector product `J·t = Σᵢ ∂y/∂xᵢ · tᵢ` (like `torch.func.jvp`):
/// forward mode, by the double-VJP construction of the [module docs](self) (3–4 backward
/// passes). `tangents` has one tensor per input, shaped like it.
///
/// ```
/// use tapegrad_core::{func, Tensor};
/// // y = x², so J·t = 2x·t.
/// let x = Tensor::<f64>::from_vec(vec![1.0, 3.0], [2])?;
/// let t = Tensor::from_vec(vec![1.0, -1.0], [2])?;
/// let (y, jt) = func::jvp(|xs| Ok(xs[0].square()), &[x], &[t])?;
/// assert_eq!((y.to_vec(), jt.to_vec()), (vec![1.0, 9.0], vec![2.0, -6.0]));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn jvp<T, F>(f: F, primals: &[Tensor<T>], tangents: &[Tensor<T>]) -> Result<(Tensor<T>, Tensor<T>)>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    check_count("jvp", primals, tangents)?;
    let (_on, lv) = Level::enter(primals);
    let y = f(&lv.inner)?;
    let nested = lv.nested(&y, tangents);
    let u = y.zeros_like().requires_grad();
    let g = lv.pull(&y, Some(&u), true)?;
    let jt = match inner_product("jvp", &g, tangents)? {
        Some(s) if s.is_tracked() => reverse(&s, &[&u], None, nested)?.remove(0),
        _ => y.zeros_like(),
    };
    Ok((finish(y, nested), jt))
}

/// `f(x)` and the Hessian-vector product `H·v = Σⱼ ∂²f/∂xᵢ∂xⱼ · vⱼ` for every input `i`,
/// without forming `H` (like `torch.autograd.functional.hvp`), for `f` returning a single
/// element: reverse over reverse, `∇ₓ⟨∇ₓf, v⟩`, a recorded backward pass and a backward
/// pass through it (5–9 plain backward passes on an MLP, see the [module docs](self)).
///
/// ```
/// use tapegrad_core::{func, Tensor};
/// // f = x₀²x₁: H = [[2x₁, 2x₀], [2x₀, 0]].
/// let f = |xs: &[Tensor<f64>]| Ok(xs[0].square().mul(&xs[1])?.sum_all());
/// let (x0, x1) = (Tensor::scalar(2.0), Tensor::scalar(3.0));
/// let (_, hv) = func::hvp(f, &[x0, x1], &[Tensor::scalar(1.0), Tensor::scalar(0.0)])?;
/// assert_eq!((hv[0].item()?, hv[1].item()?), (6.0, 4.0));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn hvp<T, F>(f: F, xs: &[Tensor<T>], vs: &[Tensor<T>]) -> Result<(Tensor<T>, Vec<Tensor<T>>)>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    check_count("hvp", xs, vs)?;
    let (_on, lv) = Level::enter(xs);
    let y = f(&lv.inner)?;
    need_scalar("hvp", &y)?;
    let nested = lv.nested(&y, vs);
    let g = lv.pull(&y, None, true)?;
    let hv = match inner_product("hvp", &g, vs)? {
        Some(s) => lv.pull(&s, None, nested)?,
        None => lv.inner.iter().map(|x| x.zeros_like()).collect(),
    };
    Ok((finish(y, nested), hv))
}

/// How [`jacobian`] computes: by rows (one VJP per output element) or by columns (one JVP
/// per input element), or whichever needs fewer passes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum JacobianMode {
    /// Reverse when the output has no more elements than the inputs together, else forward.
    #[default]
    Auto,
    /// `torch.func.jacrev`: `m` backward passes for an output of `m` elements.
    Reverse,
    /// `torch.func.jacfwd`: one recorded backward pass, then one pass through it per input
    /// element (the double-VJP construction).
    Forward,
}

/// The Jacobian of `f` with respect to each input: `J[i]` has shape `y.dims ++ xᵢ.dims`,
/// `J[i][a, b] = ∂y[a]/∂xᵢ[b]` (the layout of `torch.func.jacrev`/`jacfwd`).
///
/// ```
/// use tapegrad_core::func::{jacobian, JacobianMode};
/// use tapegrad_core::Tensor;
/// // y = (x₀x₁, x₀ + x₁): J = [[x₁, x₀], [1, 1]].
/// let f = |xs: &[Tensor<f64>]| {
///     let (a, b) = (xs[0].narrow(0, 0, 1)?, xs[0].narrow(0, 1, 1)?);
///     Tensor::concat(&[&a.mul(&b)?, &a.add(&b)?], 0)
/// };
/// let x = Tensor::from_vec(vec![2.0, 5.0], [2])?;
/// for mode in [JacobianMode::Reverse, JacobianMode::Forward] {
///     let j = jacobian(f, &[x.clone()], mode)?.remove(0);
///     assert_eq!((j.dims(), j.to_vec()), (&[2, 2][..], vec![5.0, 2.0, 1.0, 1.0]));
/// }
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn jacobian<T, F>(f: F, xs: &[Tensor<T>], mode: JacobianMode) -> Result<Vec<Tensor<T>>>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    let (_on, lv) = Level::enter(xs);
    let y = f(&lv.inner)?;
    let nested = lv.nested(&y, &[]);
    let (m, n) = (y.numel(), xs.iter().map(|x| x.numel()).sum::<usize>());
    let forward = match mode {
        JacobianMode::Auto => m > n,
        JacobianMode::Reverse => false,
        JacobianMode::Forward => true,
    };
    let layout = |x: &Tensor<T>, parts: Vec<Tensor<T>>, axis: isize| -> Result<Tensor<T>> {
        let mut dims = y.dims().to_vec();
        dims.extend_from_slice(x.dims());
        if parts.is_empty() {
            return Tensor::zeros(dims);
        }
        Tensor::stack(&parts.iter().collect::<Vec<_>>(), axis)?.reshape(dims)
    };
    let mut columns: Vec<Vec<Tensor<T>>> = xs.iter().map(|_| Vec::new()).collect();
    if forward {
        let u = y.zeros_like().requires_grad();
        let g = lv.pull(&y, Some(&u), true)?;
        for ((gi, x), cols) in g.iter().zip(xs).zip(&mut columns) {
            let flat = gi.reshape([x.numel()])?;
            for k in 0..x.numel() {
                let s = flat.narrow(0, k, 1)?.sum_all();
                cols.push(if s.is_tracked() {
                    reverse(&s, &[&u], None, nested)?.remove(0)
                } else {
                    y.zeros_like()
                });
            }
        }
        xs.iter().zip(columns).map(|(x, c)| layout(x, c, -1)).collect()
    } else {
        for j in 0..m {
            let mut e = vec![T::zero(); m];
            e[j] = T::one();
            let seed = Tensor::from_parts(e, y.shape().clone());
            for ((g, x), rows) in lv.pull(&y, Some(&seed), nested)?.into_iter().zip(xs).zip(&mut columns) {
                rows.push(g.reshape([x.numel()])?);
            }
        }
        xs.iter().zip(columns).map(|(x, r)| layout(x, r, 0)).collect()
    }
}

/// The Hessian of a scalar `f`: `H[i][j] = ∂²f/∂xᵢ∂xⱼ`, of shape `xᵢ.dims ++ xⱼ.dims`
/// (`torch.func.hessian`, which is `jacfwd(jacrev(f))`; here the Jacobian of each gradient
/// `∇ₓᵢf`, by [`JacobianMode::Auto`]).
///
/// ```
/// use tapegrad_core::{func, Tensor};
/// // f(x) = xᵀAx has Hessian A + Aᵀ.
/// let a = Tensor::<f64>::from_vec(vec![1.0, 2.0, 0.0, 3.0], [2, 2])?;
/// let f = |xs: &[Tensor<f64>]| xs[0].matmul(&a)?.matmul(&xs[0]);
/// let h = func::hessian(f, &[Tensor::from_vec(vec![0.3, -0.4], [2])?])?;
/// assert_eq!(h[0][0].to_vec(), vec![2.0, 2.0, 2.0, 6.0]);
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn hessian<T, F>(f: F, xs: &[Tensor<T>]) -> Result<Vec<Vec<Tensor<T>>>>
where
    T: Element,
    F: Fn(&[Tensor<T>]) -> Result<Tensor<T>>,
{
    (0..xs.len())
        .map(|i| jacobian(grad(&f, i), xs, JacobianMode::Auto))
        .collect()
}
