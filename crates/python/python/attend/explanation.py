"""``attend explain``'s steps: at every decoder step, each source token's score and weight."""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import numpy as np

from .pictures import AttentionImage


class ExplainStep:
    """One decoder step: the token ``emitted``, the ``scores`` e_j before the softmax and the
    ``weights`` α_j = softmax(e)_j over the ``source_tokens`` (numpy arrays ``[source tokens]``)."""

    def __init__(self, d: Dict[str, Any]) -> None:
        self.step: int = d["step"]
        self.emitted: str = d["emitted"]
        self.source_tokens: List[str] = d["source_tokens"]
        self.scores = np.asarray(d["scores"], dtype=np.float32)
        self.weights = np.asarray(d["weights"], dtype=np.float32)

    def to_dict(self) -> Dict[str, Any]:
        return {
            "step": self.step,
            "emitted": self.emitted,
            "source_tokens": list(self.source_tokens),
            "scores": self.scores.tolist(),
            "weights": self.weights.tolist(),
        }

    def __repr__(self) -> str:
        top = int(np.argmax(self.weights))
        return (
            f"ExplainStep({self.step}: emitted {self.emitted!r}, most attended "
            f"{self.source_tokens[top]!r} ({self.weights[top]:.2f}))"
        )


# The model-specific fields of `attend explain --json`, kept as they come.
_EXTRAS = ("rnn", "transformer", "view", "cross_attention")


class Explanation:
    """A sentence explained step by step (``attend explain --json``): ``source``,
    ``translation``, ``source_tokens``, ``scores_from`` (``"model"``, or ``"log_weights"`` for a
    model without one score function) and ``steps``. A notebook shows its weights as a heat map."""

    def __init__(self, d: Dict[str, Any]) -> None:
        self.source: str = d["source"]
        self.translation: str = d["translation"]
        self.source_tokens: List[str] = d["source_tokens"]
        self.scores_from: str = d["scores_from"]
        self.steps = [ExplainStep(s) for s in d["steps"]]
        # What the model computed inside, as `attend explain --json` carries it (absent: None):
        # an RNN's decoder states, queries, keys, values and contexts (``rnn``); a Transformer's
        # every layer and head (``transformer``, ``cross_attention``) and the view the steps show.
        self.extras: Dict[str, Any] = {k: d[k] for k in _EXTRAS if d.get(k) is not None}

    @property
    def rnn(self) -> Optional[Dict[str, Any]]:
        """An RNN's decoder state, query and context at every step (``None`` for a Transformer)."""
        return self.extras.get("rnn")

    @property
    def transformer(self) -> Optional[Dict[str, Any]]:
        """A Transformer's attention maps of every layer and head, and its positional encodings."""
        return self.extras.get("transformer")

    @classmethod
    def from_json(cls, text: str) -> "Explanation":
        return cls(json.loads(text))

    def to_dict(self) -> Dict[str, Any]:
        """The same structure and numbers as ``attend explain --json``."""
        return {
            "source": self.source,
            "translation": self.translation,
            "source_tokens": list(self.source_tokens),
            "scores_from": self.scores_from,
            "steps": [s.to_dict() for s in self.steps],
            **self.extras,
        }

    @property
    def weights(self) -> np.ndarray:
        """All steps' weights, ``[steps, source tokens]``."""
        return np.stack([s.weights for s in self.steps])

    def heat_map(self) -> AttentionImage:
        return AttentionImage(
            self.weights,
            self.source_tokens,
            [s.emitted for s in self.steps],
            f"explain: {self.source}",
        )

    def _repr_png_(self) -> bytes:
        return self.heat_map().png()

    def __repr__(self) -> str:
        return f"Explanation({self.source!r} → {self.translation!r}, {len(self.steps)} steps)"
