"""Fixtures of the Python package's tests: one tiny reverse-task run, trained once through
``attend.train``, and the ``attend`` binary of the same source tree to compare against."""

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[3]

# The reverse task, small enough to train in seconds: what is compared is Python against the
# command line on the same run, not the quality of the run.
TINY = {
    "name": "reverse-tiny",
    "data": {
        "corpus": "reverse",
        "reverse_sizes": [1000, 20, 20],
        "tokenizer": "word",
        "vocab_size": 100,
        "joint_vocab": True,
        "max_len": 30,
    },
    "model": {
        "kind": "rnn",
        "rnn": {
            "cell": "gru",
            "embedding": 16,
            "hidden": 24,
            "decoder_hidden": 32,
            "bidirectional": True,
            "attention": "additive",
            "attention_size": 16,
            "encoder_layers": 1,
            "decoder_layers": 1,
            "dropout": 0.0,
        },
    },
    "train": {
        "seed": 1,
        "token_budget": 800,
        "max_steps": 40,
        "max_minutes": 0.0,
        "lr": 0.003,
        "schedule": "constant",
        "warmup": 0,
        "clip": 1.0,
        "label_smoothing": 0.0,
        "weight_decay": 0.0,
        "valid_every": 20,
        "patience": 0,
        "valid_sentences": 0,
    },
    "search": {"beam": 1, "alpha": 0.0, "max_len_a": 1.0, "max_len_b": 5},
}


@pytest.fixture(scope="session")
def cli():
    """Runs the ``attend`` binary (``ATTEND_BIN``, else target/release/attend)."""
    binary = os.environ.get("ATTEND_BIN", str(ROOT / "target" / "release" / "attend"))
    if not Path(binary).exists():
        pytest.fail(f"{binary} not found: build it with `cargo build --release -p attend-cli` or set ATTEND_BIN")

    def run(*args, stdin=None, check=True):
        p = subprocess.run(
            [binary, *map(str, args)], input=stdin, capture_output=True, text=True
        )
        if check and p.returncode != 0:
            raise AssertionError(f"attend {' '.join(map(str, args))} failed: {p.stderr}")
        return p

    return run


@pytest.fixture(scope="session")
def run_dir(tmp_path_factory):
    """A tiny run trained by ``attend.train`` from a dict config; its summary is kept beside it."""
    import attend

    out = tmp_path_factory.mktemp("runs") / "tiny"
    summary = attend.train(TINY, out, progress=False)
    (out / "python-summary.json").write_text(json.dumps(summary))
    return out


def reverse_sources(n, seed=0, lo=1, hi=25):
    """``n`` reverse-task sources: integer words 0–50, lengths ``lo``–``hi``."""
    import random

    rng = random.Random(seed)
    return [" ".join(str(rng.randint(0, 50)) for _ in range(rng.randint(lo, hi))) for _ in range(n)]
