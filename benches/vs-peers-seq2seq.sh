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
# of each side and their ratio (attend tokens/s ÷ torch tokens/s).
#
# Environment: ROUNDS (3), THREADS ("1 2"), MODELS ("attn noattn"), MAX_FOREIGN (0.05),
# QUIET_TIMEOUT (600), PEERS (../shared/peers), PEERS_PY (/opt/peers/bin/python),
# OUT (raw JSON lines, default target/vs-peers/seq2seq-<date>.jsonl).
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

[[ -x "$PY" ]] || { echo "no peer python at $PY: run 'bash $PEERS/setup.sh' (or set PEERS_PY)" >&2; exit 1; }
[[ -f "$PEERS/seq2seq_bench.py" ]] || { echo "no $PEERS/seq2seq_bench.py (set PEERS)" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")"
cd "$ROOT"
echo "== building attend (release)" >&2
cargo build --release -q -p attend --bin attend
ATTEND=./target/release/attend

wait_quiet() {
  local start=$SECONDS
  while :; do
    if ! pgrep -x rustc >/dev/null && ! pgrep -x cargo >/dev/null && python3 - <<'EOF'
import sys, time
def snap():
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v[:8]), v[3] + v[4]
t0, i0 = snap(); time.sleep(3); t1, i1 = snap()
sys.exit(0 if 1 - (i1 - i0) / max(1, t1 - t0) < 0.10 else 1)
EOF
    then return 0; fi
    if (( SECONDS - start > QUIET_TIMEOUT )); then
      echo "warning: machine not quiet after ${QUIET_TIMEOUT}s; running anyway (foreign_cpu will tell)" >&2
      return 0
    fi
    sleep 5
  done
}

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

python3 - "$OUT" "$MAX_FOREIGN" <<'EOF'
import json, statistics, sys
path, max_foreign = sys.argv[1], float(sys.argv[2])
rows, dropped = {}, 0
for line in open(path):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("foreign_cpu", 0) > max_foreign:
        dropped += 1
        continue
    key = (r["model"], r["bench"], r["threads"])
    rows.setdefault(key, {}).setdefault(r["impl"], []).append(r["step_ms_median"])
print(f"raw: {path}; {dropped} runs dropped (foreign_cpu > {max_foreign})\n")
print("| model | workload | threads | runs (attend/torch) | attend ms (median) | torch ms (median) | attend tokens/s | torch tokens/s | speed-up |")
print("|---|---|---|---|---|---|---|---|---|")
for (model, bench, threads), sides in sorted(rows.items()):
    a, t = sides.get("attend", []), sides.get("torch", [])
    if not a or not t:
        continue
    ma, mt = statistics.median(a), statistics.median(t)
    tok = 64 * 24
    print(f"| {model} | {bench} | {threads} | {len(a)}/{len(t)} | {ma:.1f} | {mt:.1f} | "
          f"{tok / ma * 1e3:,.0f} | {tok / mt * 1e3:,.0f} | {mt / ma:.2f}× |")
EOF
