//! The tape: how ops are recorded and how [`Tensor::backward`] replays them in reverse.
//!
//! Every op on a tracked tensor records a `Node`: which op it was, its inputs, and its
//! *gradient rule*, a closure that maps the gradient of the output to the gradients of the
//! inputs (a vector-Jacobian product). Node ids are unique and an op's id is larger than
//! its inputs' ids (`tape/ids.rs`): the nodes sorted by decreasing id are a topological order
//! of the graph, i.e. the Wengert list read backwards.
//!
//! Backward pops nodes from a max-heap keyed by id, so it visits each node after every
//! node that uses it, summing the gradients that arrive by several paths, without
//! recursion, hashing or a visited set (through a chain, where each node's one input is
//! the next, the heap is bypassed). The graph lives in the tensors: dropping the last
//! tensor of a step releases that step's nodes (iteratively, so deep chains cannot
//! overflow the stack) into a bounded per-thread pool from which the next ops' nodes are
//! taken, and a training loop holds no graph from earlier steps.
//!
//! Gradient rules are written with the same differentiable tensor ops as everything else.
//! Under `create_graph`, backward records them too, which gives gradients of gradients.
//!
//! A rule may return a gradient at a shape its input broadcasts to (a binary op's rule
//! works at the broadcast output shape); the sweep sums it back over the broadcast
//! dimensions, here and nowhere else. The tape knows no list of ops: a node holds its
//! op's name (for errors), its rule and, in [anomaly mode](crate::anomaly), its call site.
//! Grad mode lives in [`crate::grad_mode`], the result of a sweep in [`crate::Gradients`].

use crate::anomaly::Site;
use crate::element::Element;
use crate::error::{Error, Result};
use crate::grad_mode::is_grad_enabled;
pub(crate) use crate::ops::one;
use crate::storage::Storage;
use crate::tensor::Tensor;
use smallvec::SmallVec;
use std::panic::{RefUnwindSafe, UnwindSafe};
// Nodes are shared through triomphe's `Arc`: std's without weak references, so asking
// whether a node is unique (taking it from the pool, releasing a graph) is a plain load
// rather than an atomic compare-and-swap, twice per op.
use triomphe::Arc;

mod ids;
mod pool;
mod record;
mod sweep;
pub(crate) use ids::begin_block;
pub(crate) use pool::release;
pub(crate) use record::{record, record_one, record_scalar};
pub(crate) use sweep::{sweep, Keep};

/// Gradients of one op's inputs, in input order; `None` where an input needs none.
pub type InputGrads<T> = SmallVec<[Option<Tensor<T>>; 2]>;

type BoxedRule<T> =
    dyn Fn(&BackwardCtx<'_, T>, &mut InputGrads<T>) -> Result<()> + Send + Sync + UnwindSafe + RefUnwindSafe;

type OneRule<T> = dyn Fn(&BackwardCtx<'_, T>) -> Result<Tensor<T>> + Send + Sync + UnwindSafe + RefUnwindSafe;

/// A node's gradient rule.
pub(crate) enum Rule<T: Element> {
    /// Any closure, boxed (a closure that captures nothing is not allocated). It writes
    /// its gradients into the sweep's vector: returning the inline vector by value cost
    /// two 150-byte copies per node. Unwind-safe so that tensors can cross `catch_unwind`
    /// (as in tests of panicking operators).
    Boxed(Box<BoxedRule<T>>),
    /// A one-input op's rule as a plain function of one scalar argument of the op
    /// (`mul_scalar`'s factor, `powf`'s exponent), held in the node: boxing the closure
    /// that captured it was an allocation per op.
    Scalar(fn(&BackwardCtx<'_, T>, T) -> Result<Tensor<T>>, T),
    /// A one-input op's rule returning that input's gradient, boxed like [`Rule::Boxed`]:
    /// the sweep takes the gradient by value instead of through its vector.
    One(Box<OneRule<T>>),
}

impl<T: Element> Rule<T> {
    /// Runs the rule, leaving the input gradients in `grads` (empty on entry).
    #[inline]
    pub(crate) fn call(&self, ctx: &BackwardCtx<'_, T>, grads: &mut InputGrads<T>) -> Result<()> {
        match self {
            Rule::Boxed(rule) => rule(ctx, grads),
            Rule::Scalar(rule, s) => {
                grads.push(Some(rule(ctx, *s)?));
                Ok(())
            }
            Rule::One(rule) => {
                grads.push(Some(rule(ctx)?));
                Ok(())
            }
        }
    }

    /// Runs a one-input op's rule ([`Rule::Scalar`], [`Rule::One`]), returning its input's
    /// gradient; `None` for any other rule.
    #[inline]
    pub(crate) fn single(&self, ctx: &BackwardCtx<'_, T>) -> Option<Result<Tensor<T>>> {
        match self {
            Rule::Boxed(_) => None,
            Rule::Scalar(rule, s) => Some(rule(ctx, *s)),
            Rule::One(rule) => Some(rule(ctx)),
        }
    }
}

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
    /// (The output's shape is not kept: the gradient reaching the node has it.)
    saved_output: Option<Storage<T>>,
}

impl<T: Element> Node<T> {
    pub(crate) fn leaf() -> Arc<Self> {
        Self::make("leaf", &[], None, None, None)
    }

    pub(crate) fn is_leaf(&self) -> bool {
        self.rule.is_none()
    }

    /// A node with a fresh id: an emptied one from this thread's [pool] filled in, else a
    /// new allocation.
    fn make(
        name: &'static str,
        inputs: &[&Tensor<T>],
        rule: Option<Rule<T>>,
        site: Site,
        saved_output: Option<Storage<T>>,
    ) -> Arc<Self> {
        let above = inputs
            .iter()
            .filter_map(|t| t.node.as_ref().map(|n| n.id))
            .max()
            .unwrap_or(0);
        let id = ids::next(above);
        if let Some(mut node) = pool::take() {
            // A pooled node is referenced by the pool alone, so this always succeeds.
            if let Some(n) = Arc::get_mut(&mut node) {
                n.id = id;
                n.name = name;
                for &t in inputs {
                    n.inputs.push(t.clone());
                }
                n.rule = rule;
                n.site = site;
                n.saved_output = saved_output;
                return node;
            }
        }
        Arc::new(Node {
            id,
            name,
            inputs: inputs.iter().map(|&t| t.clone()).collect(),
            rule,
            site,
            saved_output,
        })
    }

    /// Drops what the node holds, for the [pool].
    fn empty(&mut self) {
        if self.inputs.spilled() {
            self.inputs = SmallVec::new(); // a many-input op's list is freed, not kept
        } else {
            self.inputs.clear();
        }
        self.rule = None;
        self.saved_output = None;
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
        Ok(Tensor {
            data: self.saved_output()?.clone(),
            // Every tensor of a node has the node's output shape, and so has the gradient
            // that reaches it (the sweep checks the seed and shapes each input's gradient).
            shape: self.grad.shape().clone(),
            node: Some(Arc::clone(self.node)),
        })
    }

    /// The output's values alone, for a rule's fused (unrecorded) path: no tensor is made.
    pub(crate) fn output_values(&self) -> Result<&[T]> {
        Ok(self.saved_output()?)
    }

    fn saved_output(&self) -> Result<&Storage<T>> {
        self.node.saved_output.as_ref().ok_or_else(|| {
            Error::autograd(
                self.node.name,
                "the gradient rule reads the op's output, but the op was recorded without \
                 save_output = true",
            )
        })
    }
}
