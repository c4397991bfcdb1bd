#!/bin/sh
# Runs one fuzz target built by build-stable.sh: new inputs go to corpus/<target>, the
# committed seeds/<target> are read as well, crashes land in artifacts/<target>/.
# Usage: fuzz/run-stable.sh <target> [libFuzzer flags, e.g. -max_total_time=600]
set -eu
cd "$(dirname "$0")"
t="$1"
shift
bin="${CARGO_TARGET_DIR:-target}/x86_64-unknown-linux-gnu/release/$t"
mkdir -p "corpus/$t" "artifacts/$t" "seeds/$t"
exec "$bin" "corpus/$t" "seeds/$t" -artifact_prefix="artifacts/$t/" -timeout=10 -rss_limit_mb=2048 "$@"
