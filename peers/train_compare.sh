#!/usr/bin/env bash
# The crate's training step beside PyTorch's and Keras's, alternated, R rounds per
# thread count: prints every round's `lib threads ms_per_step GFLOP/s` lines.
# Needs: cargo build --release --example train_step; the peers venv (README.md).
set -euo pipefail
R=${1:-5}
PY=${PY:-/tmp/peers-venv/bin/python}
cd "$(dirname "$0")/.."
for t in 1 2; do
  cpus=$([ "$t" = 1 ] && echo 0 || echo 0,1)
  for _ in $(seq "$R"); do
    taskset -c "$cpus" target/release/examples/train_step "$t"
    "$PY" peers/train_step.py --lib all --threads "$t" --rounds 1 2>/dev/null
  done
done
