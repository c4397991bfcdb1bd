//! The backward sweep: the graph's nodes in decreasing id order (see the [tape](super)),
//! each node's rule run once on the sum of the gradients that reached it.

use super::{BackwardCtx, InputGrads, Node};
use crate::anomaly::{check_backward, is_anomaly_enabled, take_pending};
use crate::element::Element;
use crate::error::{Error, Result};
use crate::grad_mode::set_grad_enabled;
use crate::tensor::Tensor;
use std::{cmp::Ordering, collections::BinaryHeap};
use triomphe::Arc;

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

/// The nodes waiting for backward that do not come next: a max-heap by id. The node that
/// comes next is held by the sweep itself (`cur`), so through a chain (each node's only
/// input is the next node) nothing goes through the heap and no gradient is moved twice.
type Heap<'g, T> = BinaryHeap<Pending<'g, T>>;

/// Adds to `p`'s gradient the gradients of the same node still in the heap.
#[inline]
fn gather<'g, T: Element>(heap: &mut Heap<'g, T>, p: &mut Pending<'g, T>) -> Result<()> {
    while let Some(q) = heap.peek_mut().filter(|q| q.node.id == p.node.id) {
        p.grad = p.grad.add(&std::collections::binary_heap::PeekMut::pop(q).grad)?;
    }
    Ok(())
}

/// Which gradients a sweep keeps: of leaves, or of these sorted ids (the sweep stops
/// below the smallest).
pub(crate) enum Keep<'a> {
    Leaves,
    Ids(&'a [u64]),
}

/// `g`, a rule's gradient for `input` at another shape, at the input's shape: summed over
/// the dims the input was broadcast along, or an error blaming the rule.
fn to_input_shape<T: Element>(node: &Node<T>, g: Tensor<T>, input: &Tensor<T>) -> Result<Tensor<T>> {
    if input.shape().broadcasts_to(g.shape()) {
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

/// Queues `g`, the gradient that `node`'s rule gave for `input` (ignored if the input is
/// untracked): as the next node to run (`cur`, once `have_next`) when no queued node comes
/// before it, else on the heap.
#[inline(always)]
fn queue<'g, T: Element>(
    node: &Node<T>,
    input: &'g Tensor<T>,
    g: Tensor<T>,
    cur: &mut Pending<'g, T>,
    heap: &mut Heap<'g, T>,
    have_next: &mut bool,
) -> Result<()> {
    let Some(in_node) = &input.node else {
        return Ok(());
    };
    let grad = if g.shape() == input.shape() {
        g
    } else {
        to_input_shape(node, g, input)?
    };
    let p = Pending { node: in_node, grad };
    if *have_next {
        if p.node.id > cur.node.id {
            heap.push(std::mem::replace(cur, p));
        } else {
            heap.push(p);
        }
    } else if heap.peek().is_some_and(|q| q.node.id > p.node.id) {
        heap.push(p);
    } else {
        *cur = p;
        *have_next = true;
    }
    Ok(())
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
    let mut grads = InputGrads::new();
    let mut heap = Heap::new();
    // The node being run; once its rule has run, replaced by the next node.
    let mut cur = Pending {
        node: root_node,
        grad: seed,
    };
    while cur.node.id >= floor {
        gather(&mut heap, &mut cur)?;
        let node = cur.node;
        let wanted = match keep {
            Keep::Leaves => node.is_leaf(),
            Keep::Ids(ids) => ids.binary_search(&node.id).is_ok(),
        };
        if wanted {
            kept.push((node.id, cur.grad.clone()));
        }
        // Whether `cur` holds the next node yet (else it is the heap's top).
        let mut have_next = false;
        // An empty output's gradient adds zero to its inputs': skip the rule (and its work).
        if let Some(rule) = node.rule.as_ref().filter(|_| cur.grad.numel() > 0) {
            let ctx = BackwardCtx { node, grad: &cur.grad };
            // A one-input rule's gradient is taken by value: through the rules' vector (an
            // `Option` per input) each was copied at an offset that stalled the load
            // reading it back (a sixth of a chain's backward). Anomaly mode checks the
            // gradients in the vector, so it takes the general path (and runs the rule once).
            let single = if anomaly { None } else { rule.single(&ctx) };
            match single {
                Some(g) => queue(node, &node.inputs[0], g?, &mut cur, &mut heap, &mut have_next)?,
                None => {
                    rule.call(&ctx, &mut grads)?;
                    if anomaly {
                        check_backward(node.name, &node.inputs, &grads, node.site)?;
                    }
                    for (input, g) in node.inputs.iter().zip(grads.drain(..)) {
                        if let Some(g) = g {
                            queue(node, input, g, &mut cur, &mut heap, &mut have_next)?;
                        }
                    }
                }
            }
        }
        if !have_next {
            match heap.pop() {
                Some(p) => cur = p,
                None => break,
            }
        }
    }
    kept.reverse();
    Ok(kept)
}
