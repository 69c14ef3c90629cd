#!/bin/bash
# Side-by-side peer comparison, one thread, f32 Dense forward with bias + activation.
#   peers/compare.sh ROUNDS "M,K,N;M,K,N" acts [libs]
# Every (shape, act) runs ROUNDS rounds; in each, this crate (packed and unpacked), then
# each peer, for ~0.4 s each, all pinned to CPU 1 (taskset), so that every peer figure
# has one of ours a few seconds away. Prints per case each library's median GFLOP/s and
# the median of its per-round ratio to our packed path.
# Setup (once):
#   python3 -m venv /tmp/peers-venv && /tmp/peers-venv/bin/pip install -r peers/requirements.txt
#   (cd peers/gemm && RUSTFLAGS="-C target-cpu=native" cargo build --release)
#   (cd peers/candle && cargo build --release)
#   cargo build --release --example peer_ours
set -euo pipefail
cd "$(dirname "$0")/.."
R=$1; S=$2; A=$3; LIBS=${4:-"ort numpy jax gemm candle"}
PY=${PEERS_PYTHON:-/tmp/peers-venv/bin/python}
CPU=${PEERS_CPU:-1}
out=$(mktemp /tmp/peers-compare.XXXXXX)
IFS=';' read -ra SH <<< "$S"
for sh in "${SH[@]}"; do
  for act in ${A//,/ }; do
    for r in $(seq "$R"); do
      taskset -c "$CPU" target/release/examples/peer_ours "$sh" "$act" 0.4 | sed "s/^/R$r /" >> "$out"
      for lib in $LIBS; do
        if [ "$lib" = gemm ] || [ "$lib" = candle ]; then
          taskset -c "$CPU" "peers/$lib/target/release/peer_$lib" --lib "$lib" --shapes "$sh" --acts "$act" --seconds 0.4 | sed "s/^/R$r /" >> "$out"
        else
          taskset -c "$CPU" "$PY" peers/peer.py --lib "$lib" --shapes "$sh" --acts "$act" --seconds 0.4 2>/dev/null | sed "s/^/R$r /" >> "$out"
        fi
      done
    done
  done
done
python3 - "$out" <<'PY'
import sys, collections, statistics as st
d = collections.defaultdict(lambda: collections.defaultdict(dict))
for line in open(sys.argv[1]):
    p = line.split()
    if len(p) == 7:
        d[(p[2], p[3], p[4], p[5])][p[0]][p[1]] = float(p[6])
for key, rounds in d.items():
    libs = sorted({l for r in rounds.values() for l in r})
    cells = []
    for l in libs:
        g = [r[l] for r in rounds.values() if l in r]
        rat = [r[l] / r["packed"] for r in rounds.values() if l in r and "packed" in r]
        cells.append(f"{l} {st.median(g):.0f} ({st.median(rat):.2f}x)")
    print("x".join(key[:3]), key[3], " | ".join(cells))
PY
echo "raw: $out"
