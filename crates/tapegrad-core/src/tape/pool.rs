//! Recycled tape nodes.
//!
//! Every recorded op allocates one node and every graph is freed when its last tensor
//! goes, so a graph of thousands of tiny ops (a long chain, an unrolled loop) allocates
//! and frees thousands of same-sized blocks at once: far more than the allocator's
//! per-thread cache holds (glibc's keeps 7 per size), so both went through its slow
//! paths, a fifth of the tape's cost. Instead, a node released by its last tensor is
//! emptied (its inputs, rule and saved output dropped) and kept here, on the thread that
//! released it, and the next op recorded on that thread fills it in again.
//!
//! The pool holds at most [`MAX_NODES`] nodes per element type per thread (224 bytes each
//! for `f32`, 248 for `f64`, with the count and the allocator's header: about 4 MiB); past
//! that, released nodes are freed.
//! Releasing is iterative, so that freeing a long chain cannot overflow the stack (the tape
//! suite's `deep_chains_neither_recurse_nor_overflow` frees one of 200,000 ops).

use super::Node;
use crate::element::Element;
use smallvec::SmallVec;
use std::any::Any;
use std::cell::RefCell;
use triomphe::Arc;

/// The most nodes kept per element type per thread.
pub(crate) const MAX_NODES: usize = 1 << 14;

type Pool<T> = Vec<Arc<Node<T>>>;

thread_local! {
    static POOLS: RefCell<(Pool<f32>, Pool<f64>)> = const { RefCell::new((Vec::new(), Vec::new())) };
}

/// Runs `f` on this thread's pool for `T`; `None` while the thread is being torn down.
fn with_pool<T: Element, R>(f: impl FnOnce(&mut Pool<T>) -> R) -> Option<R> {
    POOLS
        .try_with(|pools| {
            let (p32, p64) = &mut *pools.borrow_mut();
            // `Element` is sealed to f32 and f64: one of the two downcasts succeeds.
            match (p32 as &mut dyn Any).downcast_mut::<Pool<T>>() {
                Some(pool) => f(pool),
                None => f((p64 as &mut dyn Any)
                    .downcast_mut::<Pool<T>>()
                    .expect("Element is f32 or f64")),
            }
        })
        .ok()
}

/// An emptied node from this thread's pool, if it has one.
pub(super) fn take<T: Element>() -> Option<Arc<Node<T>>> {
    with_pool(|pool: &mut Pool<T>| pool.pop()).flatten()
}

/// Drops a tensor's reference to its node; where it was the last one, empties the node,
/// releases its inputs' nodes the same way, and keeps the node for reuse.
pub(crate) fn release<T: Element>(node: Arc<Node<T>>) {
    if Arc::count(&node) > 1 {
        return; // shared (the common case: an op's input): dropping `node` decrements it
    }
    let mut stack: SmallVec<[Arc<Node<T>>; 4]> = SmallVec::new();
    stack.push(node);
    while let Some(mut n) = stack.pop() {
        // Shared: dropping `n` only decrements its count.
        let Some(inner) = Arc::get_mut(&mut n) else { continue };
        for t in inner.inputs.iter_mut() {
            if let Some(input) = t.node.take() {
                stack.push(input);
            }
        }
        // What the rule captured may hold tensors: dropped here, outside the pool's borrow.
        inner.empty();
        // Past the bound (or while the thread is torn down), `n` is freed.
        with_pool(|pool: &mut Pool<T>| {
            if pool.len() < MAX_NODES {
                pool.push(n);
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    fn pooled<T: Element>() -> usize {
        with_pool(|pool: &mut Pool<T>| pool.len()).unwrap()
    }

    #[test]
    fn released_nodes_are_reused_and_the_pool_is_bounded() {
        // A fresh thread: its pools start empty and no other test shares them.
        std::thread::spawn(|| {
            let x = Tensor::<f64>::scalar(0.5).requires_grad();
            let mut y = x.clone();
            for _ in 0..MAX_NODES + 100 {
                y = y.mul_scalar(1.0);
            }
            assert_eq!(pooled::<f64>(), 0, "no node is released while the chain is alive");
            drop(y);
            assert_eq!(pooled::<f64>(), MAX_NODES, "the pool keeps at most MAX_NODES");
            assert_eq!(pooled::<f32>(), 0, "f32 and f64 have their own pools");
            // Reused nodes get fresh ids and a fresh graph: gradients are unaffected.
            let z = x.mul_scalar(3.0).tanh().sum_all();
            assert_eq!(pooled::<f64>(), MAX_NODES - 3);
            let ids = [z.node_id().unwrap(), x.node_id().unwrap()];
            assert!(ids[0] > ids[1]);
            let g = z.backward().unwrap().wrt(&x).unwrap().item().unwrap();
            assert_eq!(g, 3.0 * (1.0 - 1.5f64.tanh().powi(2)));
            // A node still shared by another tensor is not taken.
            let a = x.mul_scalar(2.0);
            let b = a.clone();
            let before = pooled::<f64>();
            drop(a);
            assert_eq!(pooled::<f64>(), before);
            drop(b);
            assert_eq!(pooled::<f64>(), before + 1);
            // A many-input op's input list is freed, not kept in the pool.
            let xs: Vec<_> = (0..5).map(|_| x.mul_scalar(1.0)).collect();
            let refs: Vec<&Tensor<f64>> = xs.iter().collect();
            drop(Tensor::stack(&refs, 0).unwrap());
            let spilled = with_pool(|pool: &mut Pool<f64>| pool.iter().any(|n| n.inputs.spilled())).unwrap();
            assert!(!spilled, "an emptied node keeps no heap-allocated input list");
        })
        .join()
        .unwrap();
    }
}
