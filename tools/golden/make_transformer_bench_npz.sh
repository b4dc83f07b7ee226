#!/usr/bin/env bash
# Makes crates/attend/tests/fixtures/torch/transformer_bench_tiny.npz and its sidecar
# transformer_bench_tiny.npz.json: ../shared/peers/transformer_bench.py's own --export-npz at tiny
# sizes (V = 40, d = 16, 2 heads, FF = 32, 2 + 2 layers, check batch 4 × 6 with 6 greedy steps).
# The .npz is the state_dict exactly as the peer writes it (np.savez, float32, PyTorch names,
# `pos_enc` 1024 × 16); the .json holds the config and torch's greedy output for the check batch.
# crates/cli/tests/import_torch.rs imports the .npz and decodes the check batch without Python.
#
#   bash tools/golden/make_transformer_bench_npz.sh [OUT_DIR]
#
# Environment: PEERS (../shared/peers), PEERS_PY (/opt/peers/bin/python; `bash $PEERS/setup.sh`).
# Seeded and deterministic: a second run writes identical bytes (torch 2.15.0, numpy 2.4.6).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
PEERS="${PEERS:-$ROOT/../shared/peers}"
PY="${PEERS_PY:-/opt/peers/bin/python}"
OUT="${1:-$ROOT/crates/attend/tests/fixtures/torch}"

[[ -x "$PY" ]] || { echo "no peer python at $PY: run 'bash $PEERS/setup.sh' (or set PEERS_PY)" >&2; exit 1; }
"$PY" "$PEERS/transformer_bench.py" --mode none --export-npz "$OUT/transformer_bench_tiny.npz" \
  --vocab 40 --d-model 16 --heads 2 --ff 32 --enc-layers 2 --dec-layers 2 \
  --batch 4 --src-len 6 --tgt-len 6
echo "wrote $OUT/transformer_bench_tiny.npz and $OUT/transformer_bench_tiny.npz.json" >&2
