#!/usr/bin/env bash
# Instructions per training step, counted by callgrind on a build for baseline x86-64
# (a count must not depend on the build machine). Valgrind cannot run AVX-512 and does not
# report it, so the kernels dispatched at run time take their AVX2 (x86-64-v3) paths. Machine load does not move these numbers, so they catch regressions
# that timings on a shared machine cannot. Prints one RESULT line per model.
#
#   bash scripts/instructions.sh [mlp] [mlp-sparse] [cnn]      (default: all three)
#
# Runs examples/train_step.rs (one rayon thread, seeded synthetic batch) for A and B steps
# and divides the difference of the totals by B − A, so that start-up and the first
# step's allocations drop out.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "instructions.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR_PORTABLE:-$ROOT/target/portable}
RUSTFLAGS="-C target-cpu=x86-64" cargo build --release --example train_step -q
BIN=$CARGO_TARGET_DIR/release/examples/train_step
count() { # model steps -> total instructions (Ir)
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$BIN" --model "$1" --steps "$2" >/dev/null 2>&1
    grep '^summary:' "$out" | awk '{print $2}'
    rm -f "$out"
}
for model in ${*:-mlp mlp-sparse cnn}; do
    case $model in
        mlp | mlp-sparse) a=3; b=13 ;;
        cnn) a=2; b=4 ;;
        *) echo "instructions.sh: unknown model $model (mlp|mlp-sparse|cnn)" >&2; exit 2 ;;
    esac
    ia=$(count "$model" $a)
    ib=$(count "$model" $b)
    echo "RESULT bench=instructions model=$model steps=$a,$b instructions_per_step=$(( (ib - ia) / (b - a) ))"
done
