# Helpers shared by the attend-vs-peers model scripts (vs-peers-seq2seq.sh, vs-peers-transformer.sh);
# source it after setting ROOT, PEERS, PY, QUIET_TIMEOUT.
#
#   require_peer FILE.py   exit with a hint unless the peer python and $PEERS/FILE.py exist
#   build_attend           cargo build --release of the attend binary (skipped with BUILD=0)
#   wait_quiet             wait until no rustc/cargo runs and the machine is < 10% busy over 3 s
#                          (gives up after QUIET_TIMEOUT s and returns anyway: foreign_cpu will tell)
#   vs_table OUT MAX_FOREIGN
#                          markdown table from the JSON lines in OUT: per (model, workload, threads)
#                          and peer, the median of the per-run median step times of each side and the
#                          ratio attend tokens/s ÷ peer tokens/s; lines with foreign_cpu > MAX_FOREIGN
#                          dropped; then the same-weights greedy checks found in OUT, if any.

require_peer() {
  [[ -x "$PY" ]] || { echo "no peer python at $PY: run 'bash $PEERS/setup.sh' (or set PEERS_PY)" >&2; exit 1; }
  [[ -f "$PEERS/$1" ]] || { echo "no $PEERS/$1 (set PEERS)" >&2; exit 1; }
}

build_attend() {
  if [[ "${BUILD:-1}" == 1 ]]; then
    echo "== building attend (release)" >&2
    (cd "$ROOT" && cargo build --release -q -p attend-cli --bin attend)
  fi
}

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

vs_table() {  # OUT MAX_FOREIGN
  python3 - "$1" "$2" <<'EOF'
import json, statistics, sys
path, max_foreign = sys.argv[1], float(sys.argv[2])

def row_key(r):
    """(model, workload, threads) of a measurement line, or None for lines that are not timings.

    Decoding with given weights (attend --weights, CTranslate2 from the exported npz) is its own
    workload: both sides then decode with the same weights."""
    if r.get("bench") == "ct2_translate" and r.get("search") == "greedy":
        return ("transformer", "greedy decoding, same weights", r["intra_threads"])
    if r.get("bench", "").startswith("ct2_") or "step_ms_median" not in r:
        return None
    workload = r["bench"]
    if r.get("decode_impl"):
        workload += f" ({r['decode_impl']})"
    if r.get("weights"):
        workload = "greedy decoding, same weights"
    return (r["model"], workload, r["threads"])

rows, checks, dropped = {}, {}, 0
for line in open(path):
    line = line.strip()
    if not line.startswith("{"):
        continue
    r = json.loads(line)
    if "greedy_rows_identical_vs_torch" in r:
        checks.setdefault(r["impl"], []).append(
            (r["greedy_rows_identical_vs_torch"], r["greedy_rows_vs_torch_total"]))
    key = row_key(r)
    if key is None:
        continue
    if r.get("foreign_cpu", 0) > max_foreign:
        dropped += 1
        continue
    tokens = r["batch"] * (r.get("decode_steps") or r["tgt_len"])
    rows.setdefault(key, {}).setdefault(r["impl"], []).append((r["step_ms_median"], tokens))

print(f"raw: {path}; {dropped} runs dropped (foreign_cpu > {max_foreign})\n")
print("| model | workload | threads | peer | runs (attend/peer) | attend ms (median) | peer ms (median) "
      "| attend tokens/s | peer tokens/s | attend ÷ peer |")
print("|---|---|---|---|---|---|---|---|---|---|")
for (model, workload, threads), sides in sorted(rows.items()):
    a = sides.get("attend", [])
    for peer, p in sorted(sides.items()):
        if peer == "attend" or not a or not p:
            continue
        ma, mp = statistics.median(x[0] for x in a), statistics.median(x[0] for x in p)
        ta, tp = a[0][1] / ma * 1e3, p[0][1] / mp * 1e3
        print(f"| {model} | {workload} | {threads} | {peer} | {len(a)}/{len(p)} | {ma:.1f} | {mp:.1f} | "
              f"{ta:,.0f} | {tp:,.0f} | {ta / tp:.2f}× |")
if checks:
    runs = "; ".join(f"{impl} " + ", ".join(f"{s}/{t}" for s, t in cs) for impl, cs in sorted(checks.items()))
    print(f"\nSame weights, greedy rows equal to torch's (per run): {runs}")
EOF
}
