//! The facade's integration tests, in one binary.

mod adder;
/// The examples' shared code (their models), so the training tests run exactly the models
/// the examples train.
#[path = "../../../../examples/common/mod.rs"]
mod common;
mod training;
mod user_op_sweep;
