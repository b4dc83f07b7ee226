"""The Translator: a trained run loaded once, translating batches like ``attend translate``."""

from __future__ import annotations

import os
import tempfile
from typing import List, Optional, Sequence, Union

import numpy as np

from . import _attend
from .explanation import Explanation
from .pictures import AttentionImage

Source = Union[str, Sequence[str]]


class TranslationResult:
    """One translated source, shaped like CTranslate2's results (one hypothesis per source).

    ``hypotheses[0]`` is the translation: its text for a text source, its token list for a
    pre-tokenized one. ``scores[0]`` is its score (log-probability with the length penalty) when
    asked for, ``attention[0]`` its attention as a numpy array ``[target rows, source tokens]``
    (one row per emitted token, ``</s>`` included when emitted) when asked for, with the heat map's
    labels ``target_labels`` (rows) and ``source_labels`` (columns); a notebook shows the result
    as that heat map. ``tokens`` are the hypothesis's target tokens.
    """

    def __init__(self, hypothesis, tokens, score, log_prob, attention, target_labels, source_labels):
        self.hypotheses = [hypothesis]
        self.tokens = list(tokens)
        self.scores = [score] if score is not None else []
        self.log_probs = [log_prob] if log_prob is not None else []
        self.attention = [attention] if attention is not None else []
        self.target_labels = list(target_labels)
        self.source_labels = list(source_labels)

    def heat_map(self, title: str = "attention") -> AttentionImage:
        """The attention of the hypothesis as a heat map (needs ``return_attention=True``)."""
        if not self.attention:
            raise ValueError("no attention: translate with return_attention=True")
        if self.attention[0].size == 0:
            raise ValueError("the translation is empty: there is no attention to draw")
        return AttentionImage(self.attention[0], self.source_labels, self.target_labels, title)

    def _repr_png_(self) -> Optional[bytes]:
        if not self.attention or self.attention[0].size == 0:
            return None
        return self.heat_map().png()

    def __repr__(self) -> str:
        return f"TranslationResult(hypotheses={self.hypotheses!r}, scores={self.scores!r})"


class Translator:
    """A run written by ``attend train`` (or ``attend import``), loaded from ``model_dir``.

    ``threads``: threads for the kernels (0: all cores; the pool is sized once per process, by the
    first count asked for). ``compute_type``: only ``"float32"``, the engine's type.
    ``checkpoint``: ``"best"`` or ``"last"``.

    The network stays on the Python thread that loaded it; calls release the GIL while the engine
    works, and Ctrl-C stops a long call between batches.
    """

    def __init__(
        self,
        model_dir: Union[str, os.PathLike],
        threads: int = 0,
        compute_type: str = "float32",
        checkpoint: str = "best",
    ) -> None:
        if compute_type != "float32":
            raise ValueError(f"compute_type {compute_type!r}: attend computes in \"float32\" only")
        if not isinstance(threads, int) or threads < 0:
            raise ValueError(f"threads = {threads!r}: give 0 (all cores) or a positive count")
        _attend.set_threads(threads)
        self.model_dir = os.fspath(model_dir)
        self._engine = _attend.Engine(self.model_dir, checkpoint)

    @property
    def source_limit(self) -> int:
        """The longest source, in tokens, the model reads."""
        return self._engine.source_limit

    def tokenize(self, text: str) -> List[str]:
        """The source tokens of ``text`` as the run's tokenizer reads it (after the command line's
        normalisation): a pre-tokenized source for :meth:`translate_batch`."""
        if not isinstance(text, str):
            raise TypeError(f"tokenize: expected a string, got {type(text).__name__}")
        return self._engine.tokenize(text)

    def translate_batch(
        self,
        source: Sequence[Source],
        beam_size: Optional[int] = None,
        max_decoding_length: Optional[int] = None,
        return_scores: bool = False,
        return_attention: bool = False,
        length_penalty: Optional[float] = None,
    ) -> List[TranslationResult]:
        """Translates every source: a string (the run's tokenizer reads it, normalised as
        ``attend translate`` normalises lines) or a list of the source vocabulary's tokens.

        ``beam_size`` and ``length_penalty`` default to the run's ``search.beam`` and
        ``search.alpha`` (as ``attend translate`` does); ``max_decoding_length`` replaces the
        run's output limit by a fixed number of tokens. Results come in input order.
        """
        if isinstance(source, (str, bytes)):
            raise TypeError("translate_batch: give a list of sources, not one string")
        beam = self._engine.beam if beam_size is None else int(beam_size)
        alpha = self._engine.alpha if length_penalty is None else float(length_penalty)
        raws = self._engine.translate(list(source), beam, alpha, max_decoding_length, return_attention)
        out = []
        for src, (tokens, text, score, log_prob, weights, rows, cols) in zip(source, raws):
            attention = None
            if return_attention:
                attention = np.frombuffer(weights, dtype=np.float32).reshape(len(rows), len(cols))
            out.append(
                TranslationResult(
                    text if isinstance(src, str) else tokens,
                    tokens,
                    score if return_scores else None,
                    log_prob if return_scores else None,
                    attention,
                    rows,
                    cols,
                )
            )
        return out

    def translate_file(
        self,
        input_path: Union[str, os.PathLike],
        output_path: Union[str, os.PathLike],
        beam_size: Optional[int] = None,
        max_decoding_length: Optional[int] = None,
        length_penalty: Optional[float] = None,
    ) -> int:
        """Translates a text file line by line into ``output_path`` (one line per input line, an
        empty line for an empty one), written atomically. Returns the number of lines."""
        with open(input_path, encoding="utf-8") as f:
            lines = f.read().splitlines()
        texts: List[str] = []
        if lines:
            results = self.translate_batch(lines, beam_size, max_decoding_length, length_penalty=length_penalty)
            texts = [r.hypotheses[0] for r in results]
        directory = os.path.dirname(os.path.abspath(output_path))
        fd, tmp = tempfile.mkstemp(dir=directory, prefix=".translate-", suffix=".tmp")
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                f.writelines(t + "\n" for t in texts)
            os.replace(tmp, output_path)
        except BaseException:
            os.unlink(tmp)
            raise
        return len(texts)

    def explain(self, sentence: str) -> Explanation:
        """What the attention did at every step of a greedy translation of ``sentence``: the same
        steps as ``attend explain --json``, with scores and weights as numpy arrays."""
        if not isinstance(sentence, str):
            raise TypeError(f"explain: expected a string, got {type(sentence).__name__}")
        return Explanation.from_json(self._engine.explain(sentence))
