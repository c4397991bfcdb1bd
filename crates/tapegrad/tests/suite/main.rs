//! The facade's integration tests, in one binary.

mod user_op_sweep;
