#!/usr/bin/env bash
# Makes crates/attend/tests/fixtures/sentencepiece/ (unigram.spm, bpe.spm, golden.jsonl.gz) with the
# reference SentencePiece implementation; see the docstring of make_sentencepiece.py for what they hold.
# crates/attend/tests/sentencepiece_golden.rs checks the Rust implementation against them.
#
#   bash tools/golden/make_sentencepiece.sh [--out DIR]
#
# Installs the `sentencepiece` and `protobuf` packages into its own virtual environment (SPM_VENV, by default
# target/spm-golden-venv); needs python3 and the PyPI registry on the first run only.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/../.." && pwd)"
VENV="${SPM_VENV:-$ROOT/target/spm-golden-venv}"

if [[ ! -x "$VENV/bin/python" ]]; then
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install --quiet "sentencepiece>=0.2,<0.3" protobuf
fi
"$VENV/bin/python" "$ROOT/tools/golden/make_sentencepiece.py" "$@"
