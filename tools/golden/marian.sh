#!/usr/bin/env bash
# Makes crates/attend/tests/fixtures/marian/{tied,separate}/: two small OPUS-MT-style MarianMTModels
# trained on the bundled en-fr data, in Hugging Face and in Marian .npz form, with the logits and the
# greedy / beam-4 `generate` outputs that crates/attend/tests/import_marian.rs checks (see marian.py).
#
#   bash tools/golden/marian.sh [WORK_DIR]
#
# The Python environment is made under target/golden-venv: a venv on the peers' Python (torch
# 2.15.0 on CPU, reused through a .pth file) with `transformers` and `sentencepiece` from PyPI
# (measured with transformers 5.25.0, sentencepiece 0.2.3). Seeded; training takes a few minutes
# on one thread (THREADS=…, STEPS=… override).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
BASE_PY="${PEERS_PY:-/opt/peers/bin/python}"
VENV="${VENV:-$ROOT/target/golden-venv}"

[[ -x "$BASE_PY" ]] || { echo "no peer python at $BASE_PY (set PEERS_PY to a Python with torch)" >&2; exit 1; }
if [[ ! -x "$VENV/bin/python" ]]; then
  "$BASE_PY" -m venv "$VENV"
  SITE="$("$VENV/bin/python" -c 'import site; print(site.getsitepackages()[0])')"
  "$BASE_PY" -c 'import site; print(site.getsitepackages()[0])' > "$SITE/peers.pth"
  "$VENV/bin/pip" install -q transformers sentencepiece
fi
THREADS="${THREADS:-1}" "$VENV/bin/python" "$ROOT/tools/golden/marian.py" "${1:-/tmp/attend-marian-golden}"
