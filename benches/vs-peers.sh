#!/usr/bin/env bash
# attend vs PyTorch, side by side in one run: scaled-dot-product attention.
#
#   bash benches/vs-peers.sh                  # defaults below; rewrites the table in BENCHMARKS.md
#   ROUNDS=7 THREADS="1 2" SHAPES="32,8,64,64 8,8,256,64 4,8,1024,64" bash benches/vs-peers.sh
#
# Each round runs, for every thread count, attend's `bench attention` for every shape × causal ×
# mode, and PyTorch's `../shared/peers/sdpa_bench.py` for the same list (one process), alternating
# which side goes first. Before each side it waits for a quiet machine (no rustc/cargo, < 10% of the
# CPU busy over 3 s; gives up after QUIET_TIMEOUT s and runs anyway). Every JSON line carries
# foreign_cpu, the share of the machine other processes used while it was timed; lines above
# MAX_FOREIGN are dropped from the table. Per configuration and side: median of the per-run
# medians, and the fastest repetition; speed-up = torch median / attend median. Each side also
# measures the sgemm ceiling at the same thread count (`attend bench gemm`, benches/sgemm_torch.py:
# GEMM_SIZE² products); the table gives every attend row's GFLOP/s as a share of the higher of the
# two ceilings, and attend's peak RSS per run (one shape per process: linear in T or not).
#
# Environment: ROUNDS (5), THREADS ("1 2"), SHAPES ("32,8,64,64 8,8,256,64"), CAUSAL ("no yes"),
# MODES ("fwdbwd"; also "fwd"), MIN_TIME (1.0 s per measurement, as the peer), GEMM_SIZE (2048),
# MAX_FOREIGN (0.05),
# QUIET_TIMEOUT (900), BUILD (1; 0 = use the binaries already built), PEERS (../shared/peers), PEERS_PY (/opt/peers/bin/python; made by
# `bash $PEERS/setup.sh`), OUT (raw JSON lines, default target/vs-peers/attention-<date>.jsonl).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PY="${PEERS_PY:-/opt/peers/bin/python}"
ROUNDS="${ROUNDS:-5}"
THREADS="${THREADS:-1 2}"
SHAPES="${SHAPES:-32,8,64,64 8,8,256,64}"
CAUSAL="${CAUSAL:-no yes}"
MODES="${MODES:-fwdbwd}"
MIN_TIME="${MIN_TIME:-1.0}"
GEMM_SIZE="${GEMM_SIZE:-2048}"
MAX_FOREIGN="${MAX_FOREIGN:-0.05}"
QUIET_TIMEOUT="${QUIET_TIMEOUT:-900}"
STAMP="$(date -u +%Y%m%dT%H%M%SZ)"
OUT="${OUT:-$ROOT/target/vs-peers/attention-$STAMP.jsonl}"
COMMAND="ROUNDS=$ROUNDS THREADS=\"$THREADS\" SHAPES=\"$SHAPES\" CAUSAL=\"$CAUSAL\" MODES=\"$MODES\" MIN_TIME=$MIN_TIME GEMM_SIZE=$GEMM_SIZE bash benches/vs-peers.sh"

# wait_quiet, require_peer, build_attend
source "$ROOT/benches/lib.sh"
require_peer sdpa_bench.py
mkdir -p "$(dirname "$OUT")"

cd "$ROOT"
build_attend
ATTEND=(./target/release/attend bench attention)

run_attend() {  # threads
  wait_quiet
  ./target/release/attend --threads "$1" bench gemm --size "$GEMM_SIZE" --min-time "$MIN_TIME" --json \
    | tee -a "$OUT"
  local shape causal mode flag
  for shape in $SHAPES; do
    for causal in $CAUSAL; do
      for mode in $MODES; do
        flag=(); [[ $causal == yes ]] && flag=(--causal)
        "${ATTEND[@]}" --shape "$shape" "${flag[@]}" --mode "$mode" --threads "$1" \
          --min-time "$MIN_TIME" --json | tee -a "$OUT"
      done
    done
  done
}

run_torch() {  # threads
  wait_quiet
  local causal=both mode=both
  [[ "$CAUSAL" == no ]] && causal=no
  [[ "$CAUSAL" == yes ]] && causal=yes
  [[ "$MODES" == fwd ]] && mode=fwd
  [[ "$MODES" == fwdbwd ]] && mode=fwdbwd
  "$PY" "$ROOT/benches/sgemm_torch.py" --size "$GEMM_SIZE" --threads "$1" --min-time "$MIN_TIME" \
    | tee -a "$OUT"
  "$PY" "$PEERS/sdpa_bench.py" --shapes "$(echo $SHAPES | tr ', ' 'x,')" --causal "$causal" \
    --mode "$mode" --threads "$1" --min-time "$MIN_TIME" | tee -a "$OUT"
}

for round in $(seq 1 "$ROUNDS"); do
  for threads in $THREADS; do
    echo "== round $round/$ROUNDS, $threads thread(s)" >&2
    if (( round % 2 )); then run_attend "$threads"; run_torch "$threads"
    else run_torch "$threads"; run_attend "$threads"; fi
  done
done

# The table: medians of the per-run medians, noisy runs dropped; written between markers.
python3 - "$OUT" "$ROOT/BENCHMARKS.md" "$MAX_FOREIGN" "$COMMAND" "$(rustc --version)" \
  "$(git rev-parse --short HEAD)$(git diff --quiet HEAD -- crates || echo +local)" <<'EOF'
import json, os, statistics, sys, datetime
out, md, max_foreign, command, rustc, rev = sys.argv[1:7]
max_foreign = float(max_foreign)
rows, dropped, versions, cpu, nproc = {}, 0, {}, "?", "?"
gemm = {}  # (impl, threads) -> [median GFLOP/s of each clean run]
for line in open(out):
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if r.get("bench") == "sgemm":
        if r.get("foreign_cpu", 0) <= max_foreign:
            gemm.setdefault((r["impl"], r["threads"]), []).append(r["gflops_median"])
        continue
    if r.get("bench") != "sdpa":
        continue
    cpu, nproc = r.get("cpu", cpu), r.get("nproc", nproc)
    if r["impl"] == "torch":
        versions["torch"] = r.get("torch")
    if r.get("foreign_cpu", 0) > max_foreign:
        dropped += 1
        continue
    key = ((r["batch"], r["heads"], r["seq"], r["head_dim"]), r["causal"], r["mode"], r["threads"])
    rows.setdefault(key, {}).setdefault(r["impl"], []).append(r)

def agg(rs):
    if not rs:
        return None
    med = statistics.median(r["median_ms"] for r in rs)
    return med, min(r["min_ms"] for r in rs), len(rs), rs[0]["gflop_counted"] / (med * 1e-3)

def ceiling(threads):
    # The machine's sgemm ceiling at this thread count: the higher of the two sides' medians.
    c = [statistics.median(v) for (i, t), v in gemm.items() if t == threads and v]
    return max(c) if c else None

lines = [
    "| B×H×T×d | causal | pass | threads | attend median ms (best, runs) | PyTorch SDPA median ms (best, runs) | speed-up | attend GFLOP/s | PyTorch GFLOP/s | attend % of sgemm ceiling | attend peak RSS MB |",
    "|---|---|---|---|---|---|---|---|---|---|---|",
]
for key in sorted(rows, key=lambda k: (k[0][2], k[0], k[2], k[1], k[3])):
    shape, causal, mode, threads = key
    a, t = agg(rows[key].get("attend", [])), agg(rows[key].get("torch", []))
    cell = lambda x: "–" if x is None else f"{x[0]:.2f} ({x[1]:.2f}, {x[2]})"
    gf = lambda x: "–" if x is None else f"{x[3]:.0f}"
    ratio = "–" if a is None or t is None else f"**{t[0] / a[0]:.2f}×**"
    ceil = ceiling(threads)
    share = "–" if a is None or ceil is None else f"{100 * a[3] / ceil:.0f} %"
    rss = rows[key].get("attend", [])
    rss = "–" if not rss else f"{max(r.get('peak_rss_mb', 0) for r in rss):.0f}"
    lines.append(f"| {'×'.join(map(str, shape))} | {'yes' if causal else 'no'} | {mode} | {threads} | "
                 f"{cell(a)} | {cell(t)} | {ratio} | {gf(a)} | {gf(t)} | {share} | {rss} |")
lines += ["", "sgemm ceiling (n × n × n products, median GFLOP/s of the clean runs' medians):", "",
          "| threads | attend (`gemm` crate) | PyTorch (MKL) |", "|---|---|---|"]
for threads in sorted({t for _, t in gemm}):
    cell = lambda i: (lambda v: "–" if not v else f"{statistics.median(v):.0f} ({len(v)} runs)")(gemm.get((i, threads)))
    lines.append(f"| {threads} | {cell('attend')} | {cell('torch')} |")
now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
# A link where the raw lines sit in the repository's benches/results (kept with the table), a
# plain path elsewhere (e.g. the default under target/, which is not committed).
rel = os.path.relpath(out, os.path.dirname(md))
raw_lines = (f"Raw JSON lines: [`{rel}`]({rel})." if rel.startswith("benches/results/")
             else f"Raw JSON lines: `{rel}` (not committed).")
section = "\n".join([
    "<!-- vs-peers:attention:begin -->",
    f"Measured {now} on {cpu} ({nproc} vCPUs), float32; attend {rev} built by {rustc}; "
    f"PyTorch {versions.get('torch', '?')} (`../shared/peers/sdpa_bench.py`). Runs with foreign_cpu > "
    f"{max_foreign} dropped: {dropped}. Speed-up = PyTorch median / attend median (> 1: attend faster).",
    "",
    *lines,
    "",
    "Command:",
    "",
    "```",
    command,
    "```",
    "",
    raw_lines,
    "<!-- vs-peers:attention:end -->",
])
text = open(md).read() if os.path.exists(md) else "# Benchmarks\n\n## Attention (fused kernel vs PyTorch SDPA)\n\n"
begin, end = "<!-- vs-peers:attention:begin -->", "<!-- vs-peers:attention:end -->"
if begin in text and end in text:
    text = text[:text.index(begin)] + section + text[text.index(end) + len(end):]
else:
    text = text.rstrip("\n") + "\n\n" + section + "\n"
open(md, "w").write(text)
print(section)
EOF
