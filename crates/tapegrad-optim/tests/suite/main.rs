//! tapegrad-optim's integration tests, in one binary (linking dominates test build time).

mod alloc;
mod api;
mod naming;
mod rules;
mod state_file;
mod training;
