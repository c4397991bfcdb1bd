//! tapegrad-core's integration tests, in one binary (linking one test binary per file
//! dominated a cold CI run). `memory.rs` stays its own binary: it installs a counting
//! global allocator.

mod anomaly;
mod common;
mod edge_cases;
mod func;
mod hardening;
mod nn_values;
mod op_program;
mod properties;
mod registry;
mod registry_nn;
mod tape;
mod testing_api;
