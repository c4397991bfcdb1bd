//! Node ids: unique, and each op's larger than its inputs'.
//!
//! One global counter hands each thread a block of [`BLOCK`] ids at a time, and the thread
//! takes them in order: one atomic add per block instead of one per op (a tenth of a tiny
//! op's cost when it was per op). An op whose input has an id at or above the thread's next
//! one (a tensor made on another thread, from a later block) starts a new block: the counter
//! is past every id already handed out, so the op's id exceeds its inputs' ids.
//!
//! So ids are unique (the blocks are disjoint) and increase along every edge of a graph,
//! and on one thread they increase with time. Across threads they need not: code that asks
//! whether a node was recorded before some moment calls [`begin_block`] at that moment.

use std::cell::Cell;
use std::sync::atomic::{AtomicU64, Ordering};

/// Ids a thread takes from the counter at once.
const BLOCK: u64 = 1 << 12;

/// The next id not yet handed to any thread.
static NEXT: AtomicU64 = AtomicU64::new(1);

thread_local! {
    /// This thread's next id and the end of its block.
    static BLOCK_LEFT: Cell<(u64, u64)> = const { Cell::new((0, 0)) };
}

/// An id larger than `above` (the largest of the op's inputs' ids, 0 for none) and than
/// every id this thread took before.
#[inline]
pub(super) fn next(above: u64) -> u64 {
    BLOCK_LEFT
        .try_with(|b| {
            let (mut next, mut end) = b.get();
            if next >= end || next <= above {
                next = NEXT.fetch_add(BLOCK, Ordering::Relaxed);
                end = next + BLOCK;
            }
            b.set((next + 1, end));
            next
        })
        // While the thread is torn down: one id straight from the counter.
        .unwrap_or_else(|_| NEXT.fetch_add(1, Ordering::Relaxed))
}

/// Starts a new block on this thread: the next node recorded here gets an id larger than
/// every id handed out so far, on any thread, and later nodes of this thread larger ones
/// still.
pub(crate) fn begin_block() {
    // Ignored while the thread is torn down: `next` then takes ids from the counter.
    let _ = BLOCK_LEFT.try_with(|b| b.set((0, 0)));
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensor::Tensor;

    #[test]
    fn ids_increase_along_edges_made_on_other_threads() {
        // A tensor from a thread whose block lies above this thread's.
        let here = Tensor::<f64>::scalar(1.0).requires_grad();
        let there = std::thread::spawn(|| {
            begin_block();
            Tensor::<f64>::scalar(2.0).requires_grad().mul_scalar(3.0)
        })
        .join()
        .unwrap();
        assert!(there.node_id().unwrap() > here.node_id().unwrap());
        let y = here.mul(&there).unwrap();
        assert!(y.node_id().unwrap() > there.node_id().unwrap());
        let g = y.backward().unwrap();
        assert_eq!(g.wrt(&here).unwrap().item().unwrap(), 6.0);
        // After begin_block, this thread's ids pass everything handed out before.
        let before = NEXT.load(Ordering::Relaxed);
        begin_block();
        let z = here.mul_scalar(2.0);
        assert!(z.node_id().unwrap() >= before);
        // Ids keep increasing on a thread within and across blocks.
        let mut last = z.node_id().unwrap();
        for _ in 0..2 * BLOCK {
            let t = here.mul_scalar(1.0);
            let id = t.node_id().unwrap();
            assert!(id > last);
            last = id;
        }
    }
}
