#!/usr/bin/env bash
# Side-by-side benchmarks of tapegrad and ../shared/peers, one run at a time in one session,
# so that the ratios compare like with like. Prints the RESULT lines and appends them to
# $OUT (default bench-results.txt). Needs the peers set up as their README says
# (python venv: peers/python/setup.sh; Rust: cargo build --release -p dfdx-peer|candle-peer|burn-peer).
#
#   bash scripts/bench_peers.sh [micro] [mlp2] [mlp10] [dependent] [cnn2] [table]   (default: the first three)
#
# micro: matmul GFLOP/s and the 10,000-op autograd chain; mlp2: 2-epoch MNIST runs, twice
# each, interleaved; mlp10: one 10-epoch run each (accuracy and steady epochs); cnn2: the MNIST
# convnet on the first 12,800 images for 2 epochs (the last one timed), tapegrad and Keras
# alternated $CNN_ROUNDS times (default 5), then PyTorch once; dependent:
# the workspace's MNIST build against the same example built by a dependent crate with
# cargo's defaults (scripts/dependent_build.sh), three 2-epoch runs each, alternated;
# table: issue 12's before/after table in one sitting, $TABLE_ROUNDS rounds (default 3), each
# alternating this tree and the commit $BEFORE_REF (default 4233702, the last before issue
# 12's work; checked out and built once in $BEFORE_DIR, default target/before) on the seed
# MLP (workspace and dependent-crate builds), the compute-bound MLP 784-1024-10 at batch
# 256, square matmuls 64-2048 and the tape chain, beside PyTorch, JAX (the epoch as one
# lax.scan), numpy and dfdx.
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/.." && pwd)
SHARED=${SHARED:-$ROOT/../shared}
VENV=${PEERS_VENV:-$HOME/.cache/tapegrad-peers/venv}
PT=${CARGO_TARGET_DIR_PEERS:-$HOME/.cache/tapegrad-peers/target}/release
OUT=${OUT:-$ROOT/bench-results.txt}
export RAYON_NUM_THREADS=2 OMP_NUM_THREADS=2 MKL_NUM_THREADS=2 OPENBLAS_NUM_THREADS=2
parts=${*:-micro mlp2 mlp10}

cd "$ROOT"
cargo build --release --example mnist --example mnist_cnn -q
CORE_BENCH=$(cargo bench -p tapegrad-core --bench core --no-run 2>&1 | grep -o 'target/release/deps/core-[0-9a-f]*')
export MNIST_DIR=$ROOT/data/mnist

run() { # name, command...
    local name=$1; shift
    echo "## $name" >&2
    "$@" 2>&1 | grep '^RESULT' | sed "s/\$/ run=$name/" | tee -a "$OUT"
}

for part in $parts; do
    case $part in
    micro)
        run core "$CORE_BENCH"
        run numpy-torch "$VENV/bin/python" "$SHARED/peers/python/matmul.py"
        run torch-tape "$VENV/bin/python" "$SHARED/peers/python/tape_overhead.py" --no-jax --jit-ops
        for p in dfdx candle burn; do [ -x "$PT/${p}_micro" ] && run "$p-micro" "$PT/${p}_micro"; done
        ;;
    mlp2)
        for rep in 1 2; do
            run "tapegrad-e2-$rep" target/release/examples/mnist --epochs 2
            run "torch-e2-$rep" "$VENV/bin/python" "$SHARED/peers/python/torch_mlp.py" --epochs 2
            [ -x "$PT/dfdx_mlp" ] && run "dfdx-e2-$rep" "$PT/dfdx_mlp" --epochs 2
            [ -x "$PT/candle_mlp" ] && run "candle-e2-$rep" "$PT/candle_mlp" --epochs 2
            if [ -x "$PT/burn_mlp" ]; then
                run "burn-flex-e2-$rep" "$PT/burn_mlp" --epochs 2 --backend flex
                run "burn-ndarray-e2-$rep" "$PT/burn_mlp" --epochs 2 --backend ndarray
            fi
            run "jax-step-e2-$rep" "$VENV/bin/python" "$SHARED/peers/python/jax_mlp.py" --epochs 2 --mode step
        done
        ;;
    dependent)
        DEP=$(bash scripts/dependent_build.sh)
        for rep in 1 2 3; do
            run "tapegrad-workspace-e2-$rep" target/release/examples/mnist --epochs 2
            run "tapegrad-dependent-e2-$rep" "$DEP" --epochs 2
        done
        ;;
    cnn2)
        for rep in $(seq "${CNN_ROUNDS:-5}"); do
            run "tapegrad-cnn-$rep" target/release/examples/mnist_cnn --epochs 2 --limit 12800 --threads 2
            run "keras-cnn-$rep" "$VENV/bin/python" "$SHARED/peers/python/keras_cnn.py" --epochs 2 --limit 12800
        done
        run torch-cnn "$VENV/bin/python" "$SHARED/peers/python/torch_cnn.py" --epochs 2 --limit 12800 --threads 2
        ;;
    table)
        BEFORE_REF=${BEFORE_REF:-4233702}
        BD=${BEFORE_DIR:-$ROOT/target/before}
        if [ ! -d "$BD" ]; then git -C "$ROOT" worktree add -f "$BD" "$BEFORE_REF" >&2 || exit 1; fi
        (cd "$BD" && cargo build --release --example mnist -q) || exit 1
        BEFORE_BENCH=$BD/$(cd "$BD" && cargo bench -p tapegrad-core --bench core --no-run 2>&1 | grep -o 'target/release/deps/core-[0-9a-f]*')
        mkdir -p "$BD/scripts" && cp scripts/dependent_build.sh "$BD/scripts/"
        DEP=$(bash scripts/dependent_build.sh)
        BEFORE_DEP=$(bash "$BD/scripts/dependent_build.sh")
        SIZES="64 128 256 512 1024 2048"
        BIG="--epochs 2 --hidden 1024 --batch-size 256"
        for rep in $(seq "${TABLE_ROUNDS:-3}"); do
            run "table-seed-now-$rep" target/release/examples/mnist --epochs 2
            run "table-seed-before-$rep" "$BD/target/release/examples/mnist" --epochs 2
            run "table-seed-now-dependent-$rep" "$DEP" --epochs 2
            run "table-seed-before-dependent-$rep" "$BEFORE_DEP" --epochs 2
            run "table-seed-torch-$rep" "$VENV/bin/python" "$SHARED/peers/python/torch_mlp.py" --epochs 2
            run "table-seed-jax-scan-$rep" "$VENV/bin/python" "$SHARED/peers/python/jax_mlp.py" --epochs 3 --mode scan
            [ -x "$PT/dfdx_mlp" ] && run "table-seed-dfdx-$rep" "$PT/dfdx_mlp" --epochs 2
            run "table-big-now-$rep" target/release/examples/mnist $BIG --threads 2
            run "table-big-before-$rep" "$BD/target/release/examples/mnist" $BIG --threads 2
            run "table-big-torch-$rep" "$VENV/bin/python" "$SHARED/peers/python/torch_mlp.py" $BIG
            run "table-matmul-now-$rep" "$CORE_BENCH" matmul $SIZES
            run "table-matmul-before-$rep" "$BEFORE_BENCH" matmul $SIZES
            run "table-matmul-numpy-torch-$rep" "$VENV/bin/python" "$SHARED/peers/python/matmul.py" --no-jax --sizes $SIZES
            run "table-tape-now-$rep" "$CORE_BENCH" tape
            run "table-tape-before-$rep" "$BEFORE_BENCH" tape
            [ -x "$PT/dfdx_micro" ] && run "table-tape-dfdx-$rep" "$PT/dfdx_micro"
        done
        run table-tape-torch "$VENV/bin/python" "$SHARED/peers/python/tape_overhead.py" --no-jax --jit-ops
        ;;
    mlp10)
        run tapegrad-e10 target/release/examples/mnist --epochs 10
        run torch-e10 "$VENV/bin/python" "$SHARED/peers/python/torch_mlp.py" --epochs 10
        [ -x "$PT/dfdx_mlp" ] && run dfdx-e10 "$PT/dfdx_mlp" --epochs 10
        [ -x "$PT/burn_mlp" ] && run burn-flex-e10 "$PT/burn_mlp" --epochs 10 --backend flex
        run keras-e10 "$VENV/bin/python" "$SHARED/peers/python/keras_mlp.py" --epochs 10
        ;;
    esac
done
