#!/usr/bin/env bash
# Builds examples/mnist.rs the way a project that depends on tapegrad builds it: a crate
# outside this workspace (so none of the workspace's profiles or settings apply), with a
# path dependency on `tapegrad` and cargo's default release profile and flags. Prints the
# binary's path. Used by `scripts/bench_peers.sh dependent` to compare it with the
# workspace's own build (issue 12: within 2%).
#
#   bash scripts/dependent_build.sh [DIR]      (default: target/dependent)
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
DIR=${1:-$ROOT/target/dependent}
mkdir -p "$DIR"
cat >"$DIR/Cargo.toml" <<TOML
[package]
name = "tapegrad-dependent"
version = "0.1.0"
edition = "2021"
publish = false

[dependencies]
tapegrad = { path = "$ROOT/crates/tapegrad" }
rayon = "1.10"  # the example sets the thread count

[features]
mpi = []  # the example's distributed mode, left off

[[bin]]
name = "mnist"
path = "$ROOT/examples/mnist.rs"

[workspace]
TOML
# The workspace's lock file, so both builds use the same dependency versions.
cp "$ROOT/Cargo.lock" "$DIR/Cargo.lock"
(cd "$DIR" && env -u RUSTFLAGS -u CARGO_BUILD_RUSTFLAGS CARGO_TARGET_DIR="$DIR/target" cargo build --release -q)
echo "$DIR/target/release/mnist"
