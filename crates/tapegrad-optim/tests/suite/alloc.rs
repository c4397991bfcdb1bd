//! After the first step (which allocates the state buffers), a step allocates nothing.
//!
//! A counting global allocator, counting per thread so that parallel tests cannot interfere.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use tapegrad_core::Tensor;
use tapegrad_optim::{Adam, Optimizer};

struct Counting;

thread_local! {
    static ALLOCS: Cell<usize> = const { Cell::new(0) };
}

// SAFETY: forwards to the system allocator; only counts calls.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn allocs() -> usize {
    ALLOCS.with(Cell::get)
}

#[test]
fn steps_after_the_first_do_not_allocate() {
    for (name, mut opt) in crate::every_rule() {
        let (mut a, mut b) = (vec![1.0f32; 1000], vec![-1.0f32; 10]);
        let (ga, gb) = (vec![0.5f32; 1000], vec![0.25f32; 10]);
        let before = allocs();
        opt.step_slices(&mut [("a", &mut a[..], Some(&ga[..])), ("b", &mut b[..], Some(&gb[..]))])
            .unwrap();
        assert!(allocs() > before, "{name}: the first step allocates the state");
        let before = allocs();
        for _ in 0..10 {
            opt.step_slices(&mut [("a", &mut a[..], Some(&ga[..])), ("b", &mut b[..], Some(&gb[..]))])
                .unwrap();
        }
        assert_eq!(allocs() - before, 0, "{name}: steps after the first allocated");
    }
}

#[test]
fn tensor_steps_do_not_allocate_once_the_graph_is_dropped() {
    let mut w = Tensor::<f64>::ones([64]).unwrap().requires_grad();
    let mut opt = Adam::pytorch(0.01).unwrap();
    for step in 0..5 {
        let grads = w.mul(&w).unwrap().sum_all().backward().unwrap();
        let mut params = [("w".to_string(), &mut w)]; // the caller's names, made before counting
        let before = allocs();
        opt.step(&mut params, &grads).unwrap();
        if step > 0 {
            assert_eq!(allocs() - before, 0, "step {step}");
        }
    }
}
