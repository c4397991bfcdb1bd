//! Memory across training steps: after each step's graph is dropped, the heap holds
//! exactly what it held before the loop. Measured with a counting allocator that counts
//! per thread (the test harness allocates on its own threads meanwhile); everything here
//! runs on the test's thread.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tapegrad_core::{no_grad, Tensor};

struct Counting;
thread_local! {
    // Const-initialised and without a destructor, so the allocator may touch it.
    static LIVE_BYTES: Cell<isize> = const { Cell::new(0) };
}

fn live_bytes() -> isize {
    LIVE_BYTES.with(|b| b.get())
}

// SAFETY: forwards to the system allocator unchanged; only counts the bytes.
#[allow(unsafe_code)]
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        LIVE_BYTES.with(|b| b.set(b.get() + layout.size() as isize));
        // SAFETY: same layout the caller gave us.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        LIVE_BYTES.with(|b| b.set(b.get() - layout.size() as isize));
        // SAFETY: ptr came from `alloc` above with this layout.
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static ALLOC: Counting = Counting;

fn t(v: &[f64], s: &[usize]) -> Tensor<f64> {
    Tensor::from_vec(v.to_vec(), s).unwrap()
}

#[test]
fn a_training_loop_does_not_grow() {
    let mut w = t(&[0.5, -0.5, 0.25, 1.0], &[2, 2]).requires_grad();
    let x = t(&[1.0, 2.0, 3.0, 4.0], &[2, 2]);
    let step = |w: &mut Tensor<f64>| {
        let loss = x.matmul(w).unwrap().tanh().square().mean_all();
        let g = loss.backward().unwrap().wrt(w).unwrap();
        drop(loss);
        for (wi, gi) in w.data_mut().iter_mut().zip(g.data()) {
            *wi -= 0.01 * gi;
        }
    };
    step(&mut w); // the first step initialises thread-locals
    let baseline = live_bytes();
    for i in 0..10_000 {
        step(&mut w);
        if i % 1000 == 999 {
            assert_eq!(
                live_bytes(),
                baseline,
                "step {i}: memory from earlier steps is still held"
            );
        }
    }
    // no_grad records nothing: a forward under it leaves no graph behind either.
    let before = live_bytes();
    let y = no_grad(|| x.matmul(&w).unwrap().tanh());
    assert!(!y.is_tracked());
    drop(y);
    assert_eq!(live_bytes(), before);
}
