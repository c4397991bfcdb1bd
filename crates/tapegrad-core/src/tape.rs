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
//!
//! A rule may return a gradient at a shape its input broadcasts to (a binary op's rule
//! works at the broadcast output shape); the sweep sums it back over the broadcast
//! dimensions, here and nowhere else. The tape knows no list of ops: a node holds its
//! op's name (for errors), its rule and, in [anomaly mode](crate::anomaly), its call site.
//! Grad mode lives in [`crate::grad_mode`], the result of a sweep in [`crate::Gradients`].

use crate::anomaly::{check_backward, check_forward, is_anomaly_enabled, take_pending, Site};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::grad_mode::{is_grad_enabled, set_grad_enabled};
pub(crate) use crate::ops::one;
use crate::shape::Shape;
use crate::storage::Storage;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::panic::{RefUnwindSafe, UnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering as AtomicOrdering};
use std::sync::Arc;
use std::{cmp::Ordering, collections::BinaryHeap};

static NEXT_ID: AtomicU64 = AtomicU64::new(1);

/// Gradients of one op's inputs, in input order; `None` where an input needs none.
pub type InputGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

// Unwind-safe so that tensors can cross `catch_unwind` (as in tests of panicking operators).
type Rule<T> = Box<dyn Fn(&BackwardCtx<'_, T>) -> Result<InputGrads<T>> + Send + Sync + UnwindSafe + RefUnwindSafe>;

/// One recorded op (or a leaf, which has no rule). See the [module docs](self).
pub(crate) struct Node<T: Element> {
    pub(crate) id: u64,
    /// The op's name, for error messages and [`Tensor::recorded_ops`].
    pub(crate) name: &'static str,
    pub(crate) inputs: SmallVec<[Tensor<T>; 2]>,
    rule: Option<Rule<T>>,
    /// Where the op was called, captured only in anomaly mode ([`crate::anomaly`]).
    site: Site,
    /// The output buffer, kept only by ops whose rule reads the output (exp, tanh, …).
    saved_output: Option<Storage<T>>,
    output_shape: Shape,
}

impl<T: Element> Node<T> {
    pub(crate) fn leaf() -> Arc<Self> {
        Arc::new(Node {
            id: NEXT_ID.fetch_add(1, AtomicOrdering::Relaxed),
            name: "leaf",
            inputs: SmallVec::new(),
            rule: None,
            site: None,
            saved_output: None,
            output_shape: Shape::scalar(),
        })
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.rule.is_none()
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
    ///
    /// Errors, naming the op, if the op was recorded without `save_output`.
    pub fn output(&self) -> Result<Tensor<T>> {
        let data = self.node.saved_output.clone().ok_or_else(|| {
            Error::autograd(
                self.node.name,
                "the gradient rule reads the op's output, but the op was recorded without \
                 save_output = true",
            )
        })?;
        Ok(Tensor {
            data,
            shape: self.node.output_shape.clone(),
            node: Some(Arc::clone(self.node)),
        })
    }
}

/// Records `out = op(inputs)` if gradients are enabled and any input is tracked; otherwise
/// returns `out` untouched and the rule is never boxed. `name` names the op in errors;
/// `save_output` keeps the output buffer for rules that call [`BackwardCtx::output`].
#[track_caller]
pub(crate) fn record<T, F>(
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
    let mut site = None;
    if is_anomaly_enabled() {
        site = Some(std::panic::Location::caller()); // the user's call (ops are #[track_caller])
        check_forward(name, inputs, &out, site);
    }
    out.node = Some(Arc::new(Node {
        id: NEXT_ID.fetch_add(1, AtomicOrdering::Relaxed),
        name,
        inputs: inputs.iter().map(|&t| t.clone()).collect(),
        rule: Some(Box::new(rule)),
        site,
        saved_output: save_output.then(|| out.data.clone()),
        output_shape: out.shape.clone(),
    }));
    out
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

/// Which gradients a sweep keeps: of leaves, or of these sorted ids (the sweep stops
/// below the smallest).
pub(crate) enum Keep<'a> {
    Leaves,
    Ids(&'a [u64]),
}

/// `g`, a rule's gradient for `input`, at the input's shape: summed over the dims the
/// input was broadcast along, or an error blaming the rule.
fn to_input_shape<T: Element>(node: &Node<T>, g: Tensor<T>, input: &Tensor<T>) -> Result<Tensor<T>> {
    if g.shape() == input.shape() {
        Ok(g)
    } else if input.shape().broadcasts_to(g.shape()) {
        g.sum_to(input.shape())
    } else {
        Err(Error::autograd(
            "backward",
            format!(
                "the rule of {} returned a gradient of shape {} for an input of shape {} \
                 (a bug in that rule)",
                node.name,
                g.shape(),
                input.shape()
            ),
        ))
    }
}

pub(crate) fn sweep<T: Element>(
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
    let anomaly = is_anomaly_enabled();
    if anomaly {
        take_pending()?;
    }
    // Without create_graph the rules' own ops are not recorded: plain, cheap tensors.
    let _mode = set_grad_enabled(create_graph);
    let floor = match keep {
        Keep::Ids(ids) => ids.first().copied().unwrap_or(u64::MAX),
        Keep::Leaves => 0,
    };
    let mut kept = Vec::new();
    let (node, grad) = (root_node, seed);
    let mut heap = BinaryHeap::from([Pending { node, grad }]);
    while let Some(mut p) = heap.pop() {
        if p.node.id < floor {
            break;
        }
        while let Some(q) = heap.peek_mut().filter(|q| q.node.id == p.node.id) {
            p.grad = p.grad.add(&std::collections::binary_heap::PeekMut::pop(q).grad)?;
        }
        let node = p.node;
        let wanted = match keep {
            Keep::Leaves => node.is_leaf(),
            Keep::Ids(ids) => ids.binary_search(&node.id).is_ok(),
        };
        if wanted {
            kept.push((node.id, p.grad.clone()));
        }
        // An empty output's gradient adds zero to its inputs': skip the rule (and its work).
        let Some(rule) = node.rule.as_ref().filter(|_| p.grad.numel() > 0) else {
            continue;
        };
        let grads = rule(&BackwardCtx { node, grad: &p.grad })?;
        if anomaly {
            check_backward(node.name, &node.inputs, &grads, node.site)?;
        }
        for (input, g) in node.inputs.iter().zip(grads) {
            if let (Some(in_node), Some(g)) = (&input.node, g) {
                let grad = to_input_shape(node, g, input)?;
                heap.push(Pending { node: in_node, grad });
            }
        }
    }
    kept.reverse();
    Ok(kept)
}
