#!/usr/bin/env bash
# attend vs PyTorch and CTranslate2, side by side in one run: the pre-norm Transformer 3+3, d = 256
# of ../shared/peers/transformer_bench.py, training and incremental greedy decoding, then greedy
# decoding with the same weights as CTranslate2 (ct2_from_numpy.py).
#
#   bash benches/vs-peers-transformer.sh              # defaults below; prints a markdown table
#   ROUNDS=5 THREADS="1 2" bash benches/vs-peers-transformer.sh
#   ROUNDS=1 THREADS=1 STEPS=2 REPS=2 WARMUP=1 QUIET_TIMEOUT=0 NPZ=/tmp/tfm.npz \
#     bash benches/vs-peers-transformer.sh             # smoke test (numbers mean nothing)
#
# 1. Fresh models: each round runs, for every thread count, `attend bench transformer --mode both`
#    and `transformer_bench.py --mode both --decode-impl incremental` (decoding first, then 3
#    warm-up + 20 timed training steps), alternating which side goes first.
# 2. Same weights: the peer's model is exported once (`transformer_bench.py --export-npz`, or NPZ),
#    imported into attend (`attend import-torch ... --config benches/transformer-bench.toml`), and
#    each round alternates `attend bench transformer --mode decode --weights RUN --check X.npz.json`
#    with `ct2_from_numpy.py --weights X.npz --beam 1` (its `ct2_translate` greedy line). Both check
#    their greedy output against torch's for the export's check batch (printed under the table).
# Every side waits for a quiet machine first (no rustc/cargo, < 10% of the CPU busy over 3 s; gives
# up after QUIET_TIMEOUT s and runs anyway). Lines with foreign_cpu > MAX_FOREIGN are dropped from
# the table. Per row: median of the per-run medians of each side and the ratio attend tokens/s ÷
# peer tokens/s. Helpers: benches/lib.sh.
#
# Environment: ROUNDS (3), THREADS ("1 2"), PARTS ("fresh same-weights"), STEPS (20 timed training
# steps), REPS (20 timed decoding calls), WARMUP (3), MAX_FOREIGN (0.05), QUIET_TIMEOUT (600),
# BUILD (1; 0 = use the binary already built), NPZ (an existing export to reuse; default: export
# into WORK), PEERS (../shared/peers), PEERS_PY (/opt/peers/bin/python),
# OUT (raw JSON lines, default target/vs-peers/transformer-<date>.jsonl; the export and the imported
# run directory go to WORK, default OUT without .jsonl).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PY="${PEERS_PY:-/opt/peers/bin/python}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1 2}"
PARTS="${PARTS:-fresh same-weights}"
STEPS="${STEPS:-20}"
REPS="${REPS:-20}"
WARMUP="${WARMUP:-3}"
MAX_FOREIGN="${MAX_FOREIGN:-0.05}"
QUIET_TIMEOUT="${QUIET_TIMEOUT:-600}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/target/vs-peers/transformer-$STAMP.jsonl}"
WORK="${WORK:-${OUT%.jsonl}}"

source "$ROOT/benches/lib.sh"
require_peer transformer_bench.py
require_peer ct2_from_numpy.py
mkdir -p "$(dirname "$OUT")" "$WORK"
cd "$ROOT"
build_attend
ATTEND=./target/release/attend

# side threads: fresh models, training and incremental greedy decoding
run_fresh() {
  wait_quiet
  if [[ $1 == attend ]]; then
    "$ATTEND" --threads "$2" bench transformer --mode both --steps "$STEPS" --decode-reps "$REPS" \
      --warmup "$WARMUP" --json | tee -a "$OUT"
  else
    "$PY" "$PEERS/transformer_bench.py" --mode both --decode-impl incremental --threads "$2" \
      --steps "$STEPS" --decode-reps "$REPS" --warmup "$WARMUP" | tee -a "$OUT"
  fi
}

# side threads: greedy decoding with the exported weights
run_same_weights() {
  wait_quiet
  if [[ $1 == attend ]]; then
    "$ATTEND" --threads "$2" bench transformer --mode decode --weights "$WORK/run" \
      --check "$NPZ.json" --decode-reps "$REPS" --warmup "$WARMUP" --json | tee -a "$OUT"
  else
    "$PY" "$PEERS/ct2_from_numpy.py" --weights "$NPZ" --beam 1 --threads "$2" --reps "$REPS" \
      --warmup "$WARMUP" | tee -a "$OUT"
  fi
}

rounds() {  # run_function label
  local round t side order
  for round in $(seq 1 "$ROUNDS"); do
    for t in $THREADS; do
      if (( round % 2 )); then order="attend peer"; else order="peer attend"; fi
      for side in $order; do
        echo "== $2: round $round, $side, $t thread(s)" >&2
        "$1" "$side" "$t"
      done
    done
  done
}

for part in $PARTS; do
  case $part in
    fresh) rounds run_fresh "fresh models" ;;
    same-weights)
      if [[ -z "${NPZ:-}" ]]; then
        NPZ="$WORK/tfm.npz"
        echo "== exporting the peer's weights to $NPZ" >&2
        "$PY" "$PEERS/transformer_bench.py" --mode none --export-npz "$NPZ" >&2
      fi
      [[ -f "$NPZ" && -f "$NPZ.json" ]] || { echo "no $NPZ or $NPZ.json (transformer_bench.py --export-npz)" >&2; exit 1; }
      "$ATTEND" import-torch --state "$NPZ" --config benches/transformer-bench.toml --out "$WORK/run" >&2
      rounds run_same_weights "same weights"
      ;;
    *) echo "unknown part $part (PARTS: fresh same-weights)" >&2; exit 1 ;;
  esac
done

vs_table "$OUT" "$MAX_FOREIGN"
