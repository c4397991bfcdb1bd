//! The tape: how ops are recorded and how [`Tensor::backward`] replays them in reverse.
//!
//! Every op on a tracked tensor records a `Node`: which op it was, its inputs, and its
//! *gradient rule*, a closure that maps the gradient of the output to the gradients of the
//! inputs (a vector-Jacobian product). Node ids come from one increasing counter, so an
//! op's id is larger than its inputs' ids: the nodes sorted by decreasing id are a
//! topological order of the graph, i.e. the Wengert list read backwards.
//!
//! Backward pops nodes from a max-heap keyed by id, so it visits each node after every
//! node that uses it, summing the gradients that arrive by several paths, without
//! recursion, hashing or a visited set. The graph lives in the tensors: dropping the last
//! tensor of a step frees that step's nodes (iteratively, so deep chains cannot overflow
//! the stack), and a training loop holds no memory from earlier steps.
//!
//! Gradient rules are written with the same differentiable tensor ops as everything else.
//! Under `create_graph`, backward records them too, which gives gradients of gradients.

use crate::element::Element;
use crate::error::{Error, Result};
use crate::ops::OpKind;
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::Tensor;
use smallvec::{smallvec, SmallVec};
use std::cell::Cell;
use std::cmp::Ordering;
use std::collections::BinaryHeap;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

thread_local! {
    static GRAD_ENABLED: Cell<bool> = const { Cell::new(true) };
}

/// Gradients of one op's inputs, in input order; `None` where an input needs none.
pub type InputGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

// Unwind-safe so that tensors can cross `catch_unwind` (as in tests of panicking operators).
type Rule<T> = Box<dyn Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// One recorded op (or a leaf). See the [module docs](self).
pub(crate) struct Node<T: Element> {
    pub(crate) id: u64,
    kind: OpKind,
    /// The op's name in error messages: `kind.name()`, or a custom op's own.
    name: &'static str,
    inputs: SmallVec<[Tensor<T>; 2]>,
    rule: Option<Rule<T>>,
    /// The output buffer, kept only by ops whose rule reads the output (exp, tanh, …).
    saved_output: Option<Storage<T>>,
    output_shape: Shape,
}

impl<T: Element> Node<T> {
    pub(crate) fn leaf() -> Arc<Self> {
        Arc::new(Node {
            id: NEXT_ID.fetch_add(1, AtomicOrdering::Relaxed),
            kind: OpKind::Leaf,
            name: "leaf",
            inputs: SmallVec::new(),
            rule: None,
            saved_output: None,
            output_shape: Shape::scalar(),
        })
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.kind == OpKind::Leaf
    }
}

impl<T: Element> Drop for Node<T> {
    // Unlink the graph iteratively: the default recursive drop of a 100k-op chain would
    // overflow the stack.
    fn drop(&mut self) {
        let mut stack: SmallVec<[Arc<Node<T>>; 8]> = SmallVec::new();
        for t in self.inputs.drain(..) {
            stack.extend(t.node);
        }
        while let Some(n) = stack.pop() {
            if let Ok(mut owned) = Arc::try_unwrap(n) {
                for t in owned.inputs.drain(..) {
                    stack.extend(t.node);
                }
            }
        }
    }
}

/// Whether ops on tracked tensors are being recorded on this thread.
pub fn is_grad_enabled() -> bool {
    GRAD_ENABLED.with(|g| g.get())
}

/// Restores the previous grad mode when dropped; made by [`no_grad_guard`].
#[must_use = "gradients are re-enabled when the guard is dropped"]
pub struct GradModeGuard {
    prev: bool,
}

impl Drop for GradModeGuard {
    fn drop(&mut self) {
        GRAD_ENABLED.with(|g| g.set(self.prev));
    }
}

fn set_grad_enabled(on: bool) -> GradModeGuard {
    GradModeGuard {
        prev: GRAD_ENABLED.with(|g| g.replace(on)),
    }
}

/// Turns recording off on this thread until the guard is dropped.
pub fn no_grad_guard() -> GradModeGuard {
    set_grad_enabled(false)
}

/// Runs `f` with recording off on this thread (like `torch.no_grad()`): nothing inside is
/// recorded, results are untracked, and no tape cost is paid.
///
/// ```
/// use tapegrad_core::{no_grad, Tensor};
/// let w = Tensor::<f32>::ones([2]).requires_grad();
/// let y = no_grad(|| w.exp());
/// assert!(!y.is_tracked());
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn no_grad<R>(f: impl FnOnce() -> R) -> R {
    let _guard = set_grad_enabled(false);
    f()
}

/// What a gradient rule sees: the op's inputs, its output, and the output's gradient.
pub struct BackwardCtx<'a, T: Element> {
    node: &'a Arc<Node<T>>,
    /// The gradient of the loss with respect to this op's output.
    pub grad: &'a Tensor<T>,
}

impl<T: Element> BackwardCtx<'_, T> {
    /// Input `i` as it was when the op ran (tracked, so rules stay differentiable).
    #[inline]
    pub fn input(&self, i: usize) -> &Tensor<T> {
        &self.node.inputs[i]
    }

    /// Whether input `i` wants a gradient; rules skip the work for those that do not.
    #[inline]
    pub fn needs(&self, i: usize) -> bool {
        self.node.inputs[i].node.is_some()
    }

    /// Whether this backward pass is itself being recorded (`create_graph`). When it is
    /// not, a rule may compute its gradient with one fused pass instead of a chain of
    /// differentiable ops, as long as both give the same values.
    #[inline]
    pub fn create_graph(&self) -> bool {
        is_grad_enabled()
    }

    /// The op's output, for rules written in terms of it (exp, tanh, sigmoid, …).
    /// Only available to ops recorded with `save_output`.
    pub fn output(&self) -> Tensor<T> {
        let data = self
            .node
            .saved_output
            .clone()
            .expect("tapegrad bug: rule reads an output its op did not save");
        Tensor {
            data,
            shape: self.node.output_shape.clone(),
            node: Some(Arc::clone(self.node)),
        }
    }
}

/// Records `out = op(inputs)` if gradients are enabled and any input is tracked; otherwise
/// returns `out` untouched and the rule is never boxed. `save_output` keeps the output
/// buffer for rules that call [`BackwardCtx::output`].
pub(crate) fn record<T, F>(kind: OpKind, inputs: &[&Tensor<T>], out: Tensor<T>, save_output: bool, rule: F) -> Tensor<T>
where
    T: Element,
    F: Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    record_named(kind, kind.name(), inputs, out, save_output, rule)
}

/// [`record`] under a name of its own for error messages (custom ops).
pub(crate) fn record_named<T, F>(
    kind: OpKind,
    name: &'static str,
    inputs: &[&Tensor<T>],
    mut out: Tensor<T>,
    save_output: bool,
    rule: F,
) -> Tensor<T>
where
    T: Element,
    F: Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe + 'static,
{
    if !inputs.iter().any(|t| t.node.is_some()) || !is_grad_enabled() {
        return out;
    }
    out.node = Some(Arc::new(Node {
        id: NEXT_ID.fetch_add(1, AtomicOrdering::Relaxed),
        kind,
        name,
        inputs: inputs.iter().map(|&t| t.clone()).collect(),
        rule: Some(Box::new(rule)),
        saved_output: save_output.then(|| out.data.clone()),
        output_shape: out.shape.clone(),
    }));
    out
}

/// Gradients from one backward pass, looked up by the tensor they belong to.
///
/// Holds the gradient of every tracked leaf that the output depends on (and, for
/// [`grad`], of every tensor asked for).
pub struct Gradients<T: Element> {
    /// Sorted by node id, for binary search.
    entries: Vec<(u64, Tensor<T>)>,
    /// Made by `backward`, which keeps leaf gradients only.
    leaves_only: bool,
}

impl<T: Element> std::fmt::Debug for Gradients<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.entries.iter().map(|(id, g)| (id, g.shape())))
            .finish()
    }
}

impl<T: Element> Gradients<T> {
    /// The gradient for `t`, or `None` if `t` is untracked or the output does not depend on it.
    pub fn get(&self, t: &Tensor<T>) -> Option<&Tensor<T>> {
        let id = t.node_id()?;
        self.entries
            .binary_search_by_key(&id, |(i, _)| *i)
            .ok()
            .map(|i| &self.entries[i].1)
    }

    /// The gradient for `t`: zeros if the output does not depend on it. An error if `t`
    /// is not tracked (a gradient was asked of a tensor that cannot have one), or if it is
    /// an intermediate result and these gradients came from `backward`, which keeps those
    /// of leaves only (use [`grad`] for intermediate tensors).
    pub fn wrt(&self, t: &Tensor<T>) -> Result<Tensor<T>> {
        if self.leaves_only && t.is_tracked() && !t.is_leaf() {
            return Err(Error::autograd(
                "gradients",
                format!(
                    "the tensor of shape {} is an intermediate result, and backward() keeps the \
                     gradients of leaves only; use grad(&output, &[&tensor], …) for it",
                    t.shape()
                ),
            ));
        }
        if !t.is_tracked() {
            return Err(Error::autograd(
                "gradients",
                format!(
                    "a gradient was asked of an untracked tensor of shape {}; make it a leaf with \
                     .requires_grad() before using it",
                    t.shape()
                ),
            ));
        }
        Ok(self.get(t).cloned().unwrap_or_else(|| t.zeros_like()))
    }

    /// Number of gradients held.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// Whether no gradient is held.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

/// A node waiting for backward, with the gradient that has reached it. Borrowed from the
/// root's graph, which outlives the sweep, so queuing costs no reference counting.
struct Pending<'g, T: Element> {
    node: &'g Arc<Node<T>>,
    grad: Tensor<T>,
}

impl<T: Element> PartialEq for Pending<'_, T> {
    fn eq(&self, o: &Self) -> bool {
        self.node.id == o.node.id
    }
}
impl<T: Element> Eq for Pending<'_, T> {}
impl<T: Element> PartialOrd for Pending<'_, T> {
    fn partial_cmp(&self, o: &Self) -> Option<Ordering> {
        Some(self.cmp(o))
    }
}
impl<T: Element> Ord for Pending<'_, T> {
    fn cmp(&self, o: &Self) -> Ordering {
        self.node.id.cmp(&o.node.id)
    }
}

/// Which gradients a sweep keeps.
enum Keep<'a> {
    Leaves,
    /// Sorted ids of the tensors asked for; the sweep stops below the smallest.
    Ids(&'a [u64]),
}

fn sweep<T: Element>(
    root: &Tensor<T>,
    seed: Tensor<T>,
    create_graph: bool,
    keep: Keep<'_>,
) -> Result<Vec<(u64, Tensor<T>)>> {
    let root_node = root.node.as_ref().ok_or_else(|| {
        Error::autograd(
            "backward",
            format!(
                "the output (shape {}) is not tracked: no input required a gradient, or it was \
                 computed under no_grad",
                root.shape()
            ),
        )
    })?;
    if seed.shape() != root.shape() {
        return Err(Error::mismatch(
            "backward",
            root.shape(),
            seed.shape(),
            "a seed gradient of the output's shape",
        ));
    }
    // Without create_graph the rules' own ops are not recorded: plain, cheap tensors.
    let _mode = set_grad_enabled(create_graph);
    let floor = match keep {
        Keep::Ids(ids) => ids.first().copied().unwrap_or(u64::MAX),
        Keep::Leaves => 0,
    };
    let mut kept = Vec::new();
    let mut heap = BinaryHeap::new();
    heap.push(Pending {
        node: root_node,
        grad: seed,
    });
    while let Some(mut p) = heap.pop() {
        if p.node.id < floor {
            break;
        }
        while heap.peek().is_some_and(|q| q.node.id == p.node.id) {
            let q = heap.pop().expect("peeked");
            p.grad = p.grad.add(&q.grad)?;
        }
        let node = p.node;
        let wanted = match keep {
            Keep::Leaves => node.is_leaf(),
            Keep::Ids(ids) => ids.binary_search(&node.id).is_ok(),
        };
        if wanted {
            kept.push((node.id, p.grad.clone()));
        }
        let Some(rule) = &node.rule else { continue };
        let ctx = BackwardCtx { node, grad: &p.grad };
        let grads = rule(&ctx)?;
        for (input, g) in node.inputs.iter().zip(grads) {
            let (Some(in_node), Some(g)) = (&input.node, g) else {
                continue;
            };
            if g.shape() != input.shape() {
                return Err(Error::autograd(
                    "backward",
                    format!(
                        "the rule of {} returned a gradient of shape {} for an input of shape {} \
                         (a bug in that rule)",
                        node.name,
                        g.shape(),
                        input.shape()
                    ),
                ));
            }
            heap.push(Pending { node: in_node, grad: g });
        }
    }
    kept.reverse();
    Ok(kept)
}

impl<T: Element> Tensor<T> {
    /// Backpropagates from this single-element output (usually a loss) with seed 1 and
    /// returns the gradient of every tracked leaf it depends on.
    ///
    /// Errors if the tensor has more than one element (use [`Tensor::backward_with`]) or
    /// is untracked.
    pub fn backward(&self) -> Result<Gradients<T>> {
        if self.numel() != 1 {
            return Err(Error::autograd(
                "backward",
                format!(
                    "backward() needs a single-element output, got shape {}; pass a seed gradient \
                     of that shape to backward_with()",
                    self.shape()
                ),
            ));
        }
        self.backward_with(&self.ones_like(), false)
    }

    /// Backpropagates `seed` (∂L/∂self, same shape as `self`): a vector-Jacobian product.
    /// With `create_graph`, the backward ops are recorded too and the returned gradients
    /// are themselves differentiable (for grad-of-grad and Hessian-vector products).
    pub fn backward_with(&self, seed: &Tensor<T>, create_graph: bool) -> Result<Gradients<T>> {
        let entries = sweep(self, seed.clone(), create_graph, Keep::Leaves)?;
        Ok(Gradients {
            entries,
            leaves_only: true,
        })
    }
}

impl<T: Element> Tensor<T> {
    /// The kinds of op recorded in the graph that produced this tensor (each once, sorted),
    /// for inspecting what backward will run. Empty for untracked tensors.
    pub fn recorded_ops(&self) -> Vec<OpKind> {
        let mut seen = std::collections::HashSet::new();
        let mut kinds = std::collections::BTreeSet::new();
        let mut stack: Vec<&Arc<Node<T>>> = self.node.iter().collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n.id) {
                if !n.is_leaf() {
                    kinds.insert(n.kind);
                }
                stack.extend(n.inputs.iter().filter_map(|t| t.node.as_ref()));
            }
        }
        kinds.into_iter().collect()
    }
}

/// Gradients of `output` with respect to each of `inputs` (any tracked tensors, not only
/// leaves), like `torch.autograd.grad`. `seed` defaults to ones for a single-element
/// output. Inputs the output does not depend on get zeros.
///
/// ```
/// use tapegrad_core::{grad, Tensor};
/// let x = Tensor::<f64>::scalar(3.0).requires_grad();
/// let y = x.powf(3.0)?;                                       // y = x³
/// let dy = grad(&y, &[&x], None, true)?.remove(0);            // 3x² = 27, still tracked
/// let d2y = grad(&dy, &[&x], None, false)?.remove(0);         // 6x = 18
/// assert_eq!((dy.item()?, d2y.item()?), (27.0, 18.0));
/// # Ok::<(), tapegrad_core::Error>(())
/// ```
pub fn grad<T: Element>(
    output: &Tensor<T>,
    inputs: &[&Tensor<T>],
    seed: Option<&Tensor<T>>,
    create_graph: bool,
) -> Result<Vec<Tensor<T>>> {
    let mut ids: Vec<u64> = Vec::with_capacity(inputs.len());
    for t in inputs {
        ids.push(t.node_id().ok_or_else(|| {
            Error::autograd(
                "grad",
                format!("input of shape {} is not tracked, so it has no gradient", t.shape()),
            )
        })?);
    }
    let seed = match seed {
        Some(s) => s.clone(),
        None if output.numel() == 1 => output.ones_like(),
        None => {
            return Err(Error::autograd(
                "grad",
                format!(
                    "output of shape {} is not a single element: pass a seed",
                    output.shape()
                ),
            ))
        }
    };
    let mut sorted = ids.clone();
    sorted.sort_unstable();
    sorted.dedup();
    let entries = sweep(output, seed, create_graph, Keep::Ids(&sorted))?;
    let found = Gradients {
        entries,
        leaves_only: false,
    };
    inputs.iter().map(|t| found.wrt(t)).collect()
}

/// Convenience for rules: one gradient for a unary op.
#[inline]
pub(crate) fn one<T: Element>(g: Tensor<T>) -> InputGrads<T> {
    smallvec![Some(g)]
}
