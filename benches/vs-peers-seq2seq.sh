#!/usr/bin/env bash
# attend vs PyTorch, side by side in one run: GRU encoder-decoder with and without Bahdanau
# attention (../shared/peers/seq2seq_bench.py), training and greedy decoding.
#
#   bash benches/vs-peers-seq2seq.sh                  # defaults below; prints a markdown table
#   ROUNDS=5 THREADS="1 2" MODELS="attn noattn" bash benches/vs-peers-seq2seq.sh
#
# Each round runs, for every thread count and model, `attend bench seq2seq --mode both` and
# `seq2seq_bench.py --mode both` (decoding first, then 3 warm-up + 20 timed training steps),
# alternating which side goes first, each after waiting for a quiet machine (no rustc/cargo,
# < 10% of the CPU busy over 3 s; gives up after QUIET_TIMEOUT s and runs anyway). Lines with
# foreign_cpu > MAX_FOREIGN are dropped from the table. Per row: median of the per-run medians
# of each side and their ratio (attend tokens/s ÷ torch tokens/s). Helpers: benches/lib.sh.
#
# Environment: ROUNDS (3), THREADS ("1 2"), MODELS ("attn noattn"), MAX_FOREIGN (0.05),
# QUIET_TIMEOUT (600), BUILD (1; 0 = use the binary already built), PEERS (../shared/peers),
# PEERS_PY (/opt/peers/bin/python), OUT (raw JSON lines, default target/vs-peers/seq2seq-<date>.jsonl).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PY="${PEERS_PY:-/opt/peers/bin/python}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1 2}"
MODELS="${MODELS:-attn noattn}"
MAX_FOREIGN="${MAX_FOREIGN:-0.05}"
QUIET_TIMEOUT="${QUIET_TIMEOUT:-600}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/target/vs-peers/seq2seq-$STAMP.jsonl}"

source "$ROOT/benches/lib.sh"
require_peer seq2seq_bench.py
mkdir -p "$(dirname "$OUT")"
cd "$ROOT"
build_attend
ATTEND=./target/release/attend

run_side() {  # side threads model
  local flag=()
  [[ $3 == noattn ]] && flag=(--no-attention)
  wait_quiet
  if [[ $1 == attend ]]; then
    "$ATTEND" --threads "$2" bench seq2seq "${flag[@]}" --mode both --json | tee -a "$OUT"
  else
    "$PY" "$PEERS/seq2seq_bench.py" "${flag[@]}" --mode both --threads "$2" | tee -a "$OUT"
  fi
}

for round in $(seq 1 "$ROUNDS"); do
  for t in $THREADS; do
    for m in $MODELS; do
      if (( round % 2 )); then order="attend torch"; else order="torch attend"; fi
      for side in $order; do
        echo "== round $round, $side, $m, $t thread(s)" >&2
        run_side "$side" "$t" "$m"
      done
    done
  done
done

vs_table "$OUT" "$MAX_FOREIGN"
