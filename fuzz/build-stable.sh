#!/bin/sh
# Builds the fuzz targets with libFuzzer's coverage instrumentation on a stable toolchain,
# with the flags cargo-fuzz passes. These are all stable flags; AddressSanitizer
# (cargo-fuzz's default, `-Zsanitizer=address`) is nightly-only and opt-in here with
# FUZZ_ASAN=1, which RUSTC_BOOTSTRAP=1 lets stable accept (the library is safe Rust, so
# it mostly costs speed).
# Usage: fuzz/build-stable.sh --bins   (or --bin <target>; binaries in
# $CARGO_TARGET_DIR or fuzz/target, under x86_64-unknown-linux-gnu/release/)
set -eu
cd "$(dirname "$0")"
export RUSTC_BOOTSTRAP=1
export RUSTFLAGS="-Cpasses=sancov-module -Cllvm-args=-sanitizer-coverage-level=4 \
-Cllvm-args=-sanitizer-coverage-inline-8bit-counters -Cllvm-args=-sanitizer-coverage-pc-table \
-Cllvm-args=-sanitizer-coverage-trace-compares -Cllvm-args=-sanitizer-coverage-stack-depth \
--cfg fuzzing -Cdebug-assertions -Coverflow-checks"
if [ "${FUZZ_ASAN:-0}" = 1 ]; then RUSTFLAGS="$RUSTFLAGS -Zsanitizer=address"; fi
exec cargo build --release --target x86_64-unknown-linux-gnu "$@"
