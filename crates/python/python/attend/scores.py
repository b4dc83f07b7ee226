"""Corpus BLEU and chrF, computed as sacreBLEU computes them by default (``attend score``)."""

from __future__ import annotations

from typing import Any, Dict, Sequence

from . import _attend


def score(hypotheses: Sequence[str], references: Sequence[str]) -> Dict[str, Any]:
    """BLEU and chrF of ``hypotheses`` against ``references`` (one per hypothesis, detokenized).

    Returns the fields of ``attend score``'s JSON (``bleu``, ``chrf``, ``precisions``, ``bp``,
    ``sys_len``, ``ref_len``, ``sentences``) and sacreBLEU's signatures of the two metrics
    (``bleu_signature``, ``chrf_signature``).
    """
    if isinstance(hypotheses, str) or isinstance(references, str):
        raise TypeError("score: give lists of sentences, not one string")
    return _attend.score(list(hypotheses), list(references))
