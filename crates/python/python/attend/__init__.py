"""attend: attention-based sequence-to-sequence learning on its own engine, from Python.

    import attend
    summary = attend.train("configs/reverse.toml", "runs/reverse")
    tr = attend.Translator("runs/reverse")
    r = tr.translate_batch(["1 2 3"], return_attention=True)[0]
    r  # in a notebook: the attention heat map

The engine is attend's (Rust); no deep-learning framework is imported. Engine errors are raised
as :class:`AttendError` with the messages of the ``attend`` command line.
"""

from ._attend import AttendError, threads
from .explanation import ExplainStep, Explanation
from .pictures import AttentionImage, plot_attention
from .scores import score
from .training import train
from .translator import TranslationResult, Translator

__all__ = [
    "AttendError",
    "AttentionImage",
    "ExplainStep",
    "Explanation",
    "TranslationResult",
    "Translator",
    "plot_attention",
    "score",
    "threads",
    "train",
]
