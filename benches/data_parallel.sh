#!/usr/bin/env bash
# Data-parallel scaling on one machine: 1 rank × 1 thread against 2 ranks × 1 thread
# (`mpirun -np 2`), in interleaved rounds, for the en-fr RNN-with-attention and Transformer
# configs. For each run it reports target tokens/s over the training steps (log.jsonl's
# tokens_per_s, the steps before the one validation) and, for 2 ranks, rank 0's share of time in
# the gradient all-reduce; then the medians and the ratio 2 ranks / 1 rank.
# Usage: benches/data_parallel.sh [ROUNDS] [STEPS]
# Needs: cargo build --release -p attend-cli --features mpi; Open MPI's mpirun.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-3}
steps=${2:-40}
bin=target/release/attend
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mpirun=(mpirun --allow-run-as-root --oversubscribe --mca btl_vader_single_copy_mechanism none -np 2)

# Runs one training until its validation line is logged (the test evaluation that follows is not
# measured) and prints "tokens/s comm%".
measure() { # config ranks dir
  local config=$1 ranks=$2 dir=$3
  local args=(train "configs/$config.toml" --out "$dir" --set "train.max_steps=$steps"
    --set "train.valid_every=$steps" --set train.valid_sentences=1)
  local launch=()
  [ "$ranks" -gt 1 ] && launch=("${mpirun[@]}")
  ATTEND_THREADS=1 setsid "${launch[@]}" "$bin" "${args[@]}" >"$dir.out" 2>&1 &
  local pid=$!
  until [ -s "$dir/log.jsonl" ]; do
    kill -0 "$pid" 2>/dev/null || { cat "$dir.out" >&2; exit 1; }
    sleep 0.5
  done
  # Rank 0 prints the communication share right after the loop, before the test evaluation.
  [ "$ranks" -gt 1 ] && until grep -q "data-parallel:" "$dir.out"; do sleep 0.2; done
  kill -- -"$pid" 2>/dev/null || true
  wait "$pid" 2>/dev/null || true
  local rate comm
  rate=$(sed -n 's/.*"tokens_per_s":\([0-9.]*\).*/\1/p' "$dir/log.jsonl" | tail -1)
  comm=$(sed -n 's/.*(\([0-9.]*\)%).*/\1/p' "$dir.out" | tail -1)
  echo "$rate ${comm:-0}"
}

median() { sort -g | awk '{a[NR]=$1} END {print (NR%2 ? a[(NR+1)/2] : (a[NR/2]+a[NR/2+1])/2)}'; }

lscpu | grep -E "Model name|^CPU\(s\)"
echo "steps per run: $steps; rounds: $rounds; ATTEND_THREADS=1 per rank"
for config in en-fr-attention en-fr-transformer; do
  : >"$work/$config.1" ; : >"$work/$config.2"
  for round in $(seq "$rounds"); do
    for ranks in 1 2; do
      r=$(measure "$config" "$ranks" "$work/$config-$ranks-$round")
      echo "$config round $round ranks $ranks: $(echo "$r" | awk '{printf "%.0f tok/s, communication %s%%", $1, $2}')"
      echo "$r" >>"$work/$config.$ranks"
    done
  done
  one=$(cut -d' ' -f1 "$work/$config.1" | median)
  two=$(cut -d' ' -f1 "$work/$config.2" | median)
  comm=$(cut -d' ' -f2 "$work/$config.2" | median)
  echo "$config: median 1 rank $one tok/s, 2 ranks $two tok/s, ratio $(awk "BEGIN {printf \"%.2f\", $two / $one}"), communication $comm% of rank 0's time"
done
