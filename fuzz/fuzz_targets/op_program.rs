//! Bytes → a short program of tensor ops (shapes, axes, indices and values from the bytes,
//! NaN/∞/subnormals and invalid arguments included), run forward and backward. Invalid
//! programs must return errors, valid ones gradients of their inputs' shapes; nothing may
//! panic. The interpreter is the one the core's test suite runs under proptest.
#![no_main]

use libfuzzer_sys::fuzz_target;

include!("../../crates/tapegrad-core/tests/suite/op_program_interp.rs");

fuzz_target!(|data: &[u8]| {
    if let Err(e) = run_op_program(data) {
        panic!("{e}");
    }
});
