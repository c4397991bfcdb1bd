#!/usr/bin/env bash
# Issue 12's portability target (a dependent crate built with cargo's defaults within 2% of
# the workspace build), checked without timings, which move by more than 2% on a shared
# machine. Builds examples/mnist.rs in the workspace and through a dependent crate
# (scripts/dependent_build.sh), then compares
#
#   1. instructions per training step, counted by callgrind (the seed MLP on the shipped
#      MNIST, one thread; 100 and 300 steps, the difference divided by 200, so start-up,
#      loading and the test-set evaluation drop out). Valgrind reports no AVX-512, so the
#      kernels take their AVX2 paths here;
#   2. the machine code of the step's hot kernels on their AVX-512 paths (the optimizer's
#      fused update, the zero-skipping products, the GEMM microkernel, the batch gather,
#      dropout's keystream), instruction by instruction with addresses masked.
#
# Prints one RESULT line for each, and exits non-zero when a kernel's code differs.
#
#   bash scripts/dependent_check.sh
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
cd "$ROOT"
command -v valgrind >/dev/null || { echo "dependent_check.sh: needs valgrind (apt-get install valgrind)" >&2; exit 1; }
cargo build --release --example mnist -q
W=$ROOT/target/release/examples/mnist
D=$(bash scripts/dependent_build.sh)

count() { # binary training-samples -> total instructions (Ir)
    local out
    out=$(mktemp)
    valgrind --tool=callgrind --callgrind-out-file="$out" "$1" --epochs 1 --limit "$2" --threads 1 >/dev/null 2>&1
    grep '^summary:' "$out" | awk '{print $2}'
    rm -f "$out"
}
per_step() {
    local a b
    a=$(count "$1" 3200)
    b=$(count "$1" 9600)
    echo $(((b - a) / 200))
}
iw=$(per_step "$W")
id=$(per_step "$D")
echo "RESULT bench=dependent_instructions workspace_per_step=$iw dependent_per_step=$id ratio=$(awk "BEGIN {printf \"%.5f\", $id / $iw}")"

# A function's instructions with addresses, RIP offsets and comments masked.
code() {
    objdump -d --no-show-raw-insn --disassemble="$2" "$1" | sed -n '/>:$/,$p' | tail -n +2 |
        sed -E 's/^ *[0-9a-f]+:\s*//; s/[0-9a-f]{5,} <[^>]*>/ADDR/g; s/-?0x[0-9a-f]{5,}\(%rip\)/RIP/g; s/#.*$//'
}
HOT='fused_update.*avx512|sparse6sliced.*avx512|sparse6gemm_w.*avx512|gemm3x8610avx512_f32|gather_extend|stream6blocks.*avx512'
same=0
differ=0
nm "$D" | awk '{print $3}' >"${TMPDIR:-/tmp}/dependent_syms.$$"
for sym in $(nm "$W" | awk '{print $3}' | grep -E "$HOT"); do
    # The same function in the other binary: the same mangled path, whatever its hash.
    base=${sym%17h????????????????E}
    found=no
    for other in $(grep -F "$base" "${TMPDIR:-/tmp}/dependent_syms.$$"); do
        if cmp -s <(code "$W" "$sym") <(code "$D" "$other"); then
            found=yes
        fi
    done
    if [ "$found" = yes ]; then
        same=$((same + 1))
    else
        differ=$((differ + 1))
        echo "differs: $sym" >&2
    fi
done
rm -f "${TMPDIR:-/tmp}/dependent_syms.$$"
echo "RESULT bench=dependent_code hot_functions=$((same + differ)) identical=$same differ=$differ"
[ "$differ" -eq 0 ] && [ "$same" -gt 0 ]
