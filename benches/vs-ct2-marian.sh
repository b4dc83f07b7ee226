#!/usr/bin/env bash
# attend vs CTranslate2 on the same Marian (OPUS-MT) weights, beam search, in one run: each system
# imports the same Marian directory with its own importer (`attend import marian`, CTranslate2's
# `ct2-opus-mt-converter`) and translates the same batches of bundled English text.
#
#   bash benches/vs-ct2-marian.sh                    # defaults below; prints a markdown table
#   ROUNDS=1 THREADS=1 REPS=1 WARMUP=0 LEN=4 LAYERS=1 VOCAB=1000 QUIET_TIMEOUT=0 \
#     bash benches/vs-ct2-marian.sh                  # smoke test (numbers mean nothing)
#
# Models (written under WORK, not committed):
#   small  the test fixture crates/attend/tests/fixtures/marian/tied/marian (2+2 layers, d 64,
#          trained weights, 399 tokens), its options completed for CTranslate2's converter
#          (benches/marian_model.py complete); natural lengths, at most SMALL_MAX_LEN tokens.
#   base   OPUS-MT's size with seeded random weights (benches/marian_model.py random: LAYERS+LAYERS
#          layers, d 512, FFN 2048, 8 heads, VOCAB tokens); </s> is never chosen, so every sentence
#          of both systems is exactly LEN tokens long.
# Input: the first SENTENCES test sentences of data/en-fr with 3–20 words (as the fixtures'), one
# batch of BATCH sentences per call. Both sides get the same token sequences: attend tokenizes
# (untimed) and writes its source pieces, CTranslate2 reads them.
#
# 1. Check (small model, 1 thread): greedy and beam BEAM outputs of both systems compared line by
#    line (printed, and kept in OUT as `check` lines).
# 2. Rounds: for each model and thread count, `attend bench translate` and benches/ct2_marian.py,
#    alternating which goes first; each loads its model (untimed), runs WARMUP passes, then REPS
#    timed passes over the input. Per row: median of the per-run medians, output tokens of each
#    side (they must match for `base`), tokens/s and attend ÷ CTranslate2.
# Every side waits for a quiet machine first (benches/lib.sh; gives up after QUIET_TIMEOUT s).
#
# Environment: ROUNDS (3), THREADS ("1 2"), MODELS ("small base"), SENTENCES (32), BATCH (32),
# BEAM (4), LEN (32), SMALL_MAX_LEN (128), LAYERS (6), VOCAB (32000), REPS (3), WARMUP (1),
# QUIET_TIMEOUT (600), BUILD (1; 0 = use the binary already built), ATTEND (the attend binary,
# default target/release/attend), BEFORE (another attend binary, e.g. an older commit's: timed as a
# third side, `attend-before`, in the same rounds), PEERS_PY (/opt/peers/bin/python,
# with numpy and ctranslate2), OUT (raw JSON lines, default target/vs-peers/marian-<date>.jsonl),
# WORK (models and outputs, default OUT without .jsonl).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PY="${PEERS_PY:-/opt/peers/bin/python}"
ROUNDS="${ROUNDS:-3}"
THREADS="${THREADS:-1 2}"
MODELS="${MODELS:-small base}"
SENTENCES="${SENTENCES:-32}"
BATCH="${BATCH:-32}"
BEAM="${BEAM:-4}"
LEN="${LEN:-32}"
SMALL_MAX_LEN="${SMALL_MAX_LEN:-128}"
LAYERS="${LAYERS:-6}"
VOCAB="${VOCAB:-32000}"
REPS="${REPS:-3}"
WARMUP="${WARMUP:-1}"
QUIET_TIMEOUT="${QUIET_TIMEOUT:-600}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/target/vs-peers/marian-$STAMP.jsonl}"
WORK="${WORK:-${OUT%.jsonl}}"

source "$ROOT/benches/lib.sh"
[[ -x "$PY" ]] || { echo "no peer python at $PY (set PEERS_PY to a Python with numpy and ctranslate2)" >&2; exit 1; }
CONVERT="$(dirname "$PY")/ct2-opus-mt-converter"
[[ -x "$CONVERT" ]] || { echo "no $CONVERT (pip install ctranslate2 into $(dirname "$(dirname "$PY")"))" >&2; exit 1; }
mkdir -p "$(dirname "$OUT")" "$WORK"
cd "$ROOT"
build_attend
ATTEND="${ATTEND:-./target/release/attend}"

echo "== input: $SENTENCES sentences of data/en-fr/test.tsv.gz" >&2
python3 - "$SENTENCES" > "$WORK/input.txt" <<'EOF'
import gzip, sys
n = int(sys.argv[1])
with gzip.open("data/en-fr/test.tsv.gz", "rt", encoding="utf-8") as f:
    lines = [l.split("\t")[0] for l in f if "\t" in l and 3 <= len(l.split("\t")[0].split()) <= 20]
print("\n".join(lines[:n]))
EOF

for model in $MODELS; do
  dir="$WORK/$model"
  echo "== $model: Marian directory, CTranslate2 conversion, attend import" >&2
  case $model in
    small) "$PY" benches/marian_model.py complete crates/attend/tests/fixtures/marian/tied/marian "$dir/marian" >&2 ;;
    base) "$PY" benches/marian_model.py random "$dir/marian" --layers "$LAYERS" --vocab "$VOCAB" >&2 ;;
    *) echo "unknown model $model (MODELS: small base)" >&2; exit 1 ;;
  esac
  "$CONVERT" --model_dir "$dir/marian" --output_dir "$dir/ct2" --force >&2
  "$ATTEND" import marian "$dir/marian" --out "$dir/run" >&2
done

max_len() { if [[ $1 == base ]]; then echo "$LEN"; else echo "$SMALL_MAX_LEN"; fi; }

# side model threads beam reps warmup output → one JSON line on stdout
run_side() {
  local dir="$WORK/$2"
  if [[ $1 == before ]]; then
    "$BEFORE" --threads "$3" bench translate --model "$dir/run" --input "$WORK/input.txt" \
      --batch "$BATCH" --beam "$4" --max-len "$(max_len "$2")" --reps "$5" --warmup "$6" \
      --output "$7" --json | sed 's/"impl":"attend"/"impl":"attend-before"/'
  elif [[ $1 == attend ]]; then
    "$ATTEND" --threads "$3" bench translate --model "$dir/run" --input "$WORK/input.txt" \
      --batch "$BATCH" --beam "$4" --max-len "$(max_len "$2")" --reps "$5" --warmup "$6" \
      --output "$7" --json
  else
    [[ -f "$dir/sources.jsonl" ]] || "$ATTEND" --threads 1 bench translate --model "$dir/run" \
      --input "$WORK/input.txt" --batch "$BATCH" --beam 1 --max-len 1 --reps 1 --warmup 0 \
      --output "$dir/sources.jsonl" --json > /dev/null
    "$PY" benches/ct2_marian.py --model-dir "$dir/ct2" --input "$dir/sources.jsonl" \
      --threads "$3" --batch "$BATCH" --beam "$4" --max-len "$(max_len "$2")" --reps "$5" \
      --warmup "$6" --output "$7"
  fi
}

if [[ " $MODELS " == *" small "* ]]; then
  for beam in 1 "$BEAM"; do
    echo "== check: small model, beam $beam, both systems" >&2
    for side in attend ct2; do
      run_side "$side" small 1 "$beam" 1 0 "$WORK/small/check-$side-$beam.jsonl" > /dev/null
    done
    python3 - "$WORK/small/check-attend-$beam.jsonl" "$WORK/small/check-ct2-$beam.jsonl" "$beam" <<'EOF' | tee -a "$OUT"
import json, sys
a = [json.loads(l) for l in open(sys.argv[1], encoding="utf-8")]
c = [json.loads(l) for l in open(sys.argv[2], encoding="utf-8")]
assert [x["source"] for x in a] == [x["source"] for x in c], "different inputs"
same = sum(x["output"] == y["output"] for x, y in zip(a, c))
print(json.dumps({"check": "small", "beam": int(sys.argv[3]), "identical": same, "sentences": len(a),
                  "attend_tokens": sum(len(x["output"]) for x in a),
                  "ctranslate2_tokens": sum(len(x["output"]) for x in c)}))
EOF
  done
fi

for round in $(seq 1 "$ROUNDS"); do
  for model in $MODELS; do
    for t in $THREADS; do
      if (( round % 2 )); then order="attend ct2"; else order="ct2 attend"; fi
      [[ -n "${BEFORE:-}" ]] && order="$order before"
      for side in $order; do
        echo "== round $round: $model, $side, $t thread(s)" >&2
        wait_quiet
        run_side "$side" "$model" "$t" "$BEAM" "$REPS" "$WARMUP" "$WORK/$model/out-$side.jsonl" \
          | python3 -c 'import json,sys; r=json.loads(sys.stdin.read()); r["model_name"]=sys.argv[1]; print(json.dumps(r))' "$model" \
          | tee -a "$OUT"
      done
    done
  done
done

python3 - "$OUT" <<'EOF'
import json, statistics, sys
rows, checks = {}, []
for line in open(sys.argv[1], encoding="utf-8"):
    r = json.loads(line)
    if "check" in r:
        checks.append(r)
    elif r.get("bench") == "translate":
        rows.setdefault((r["model_name"], r["threads"]), {}).setdefault(r["impl"], []).append(r)
print(f"raw: {sys.argv[1]}\n")
print("| model | threads | runs (attend/CT2) | output tokens (attend/CT2) | attend ms | CT2 ms "
      "| attend tokens/s | CT2 tokens/s | attend ÷ CT2 | foreign_cpu (max) |")
print("|---|---|---|---|---|---|---|---|---|---|")
before = []
for (model, threads), sides in sorted(rows.items()):
    a, c, b = sides.get("attend", []), sides.get("ctranslate2", []), sides.get("attend-before", [])
    if not a or not c:
        continue
    ma = statistics.median(r["step_ms_median"] for r in a)
    mc = statistics.median(r["step_ms_median"] for r in c)
    ta, tc = a[-1]["output_tokens"], c[-1]["output_tokens"]
    ra, rc = ta / ma * 1e3, tc / mc * 1e3
    fc = max(r["foreign_cpu"] for r in a + c)
    print(f"| {model} | {threads} | {len(a)}/{len(c)} | {ta}/{tc} | {ma:.1f} | {mc:.1f} | {ra:,.0f} "
          f"| {rc:,.0f} | **{ra / rc:.2f}×** | {fc:.2f} |")
    if b:
        mb = statistics.median(r["step_ms_median"] for r in b)
        tb = b[-1]["output_tokens"]
        before.append(f"| {model} | {threads} | {len(b)}/{len(a)} | {tb}/{ta} | {mb:.1f} | {ma:.1f} "
                      f"| {tb / mb * 1e3:,.0f} | {ra:,.0f} | **{mb / ma:.2f}×** |")
if before:
    print("\n| model | threads | runs (before/attend) | output tokens (before/attend) | before ms | attend ms "
          "| before tokens/s | attend tokens/s | before ms ÷ attend ms |")
    print("|---|---|---|---|---|---|---|---|---|")
    print("\n".join(before))
for c in checks:
    print(f"\nsmall model, beam {c['beam']}: {c['identical']}/{c['sentences']} translations identical "
          f"(output tokens attend {c['attend_tokens']}, CTranslate2 {c['ctranslate2_tokens']})", end="")
print()
EOF
