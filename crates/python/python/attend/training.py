"""``attend.train``: ``attend train`` from Python, with a progress bar in a terminal or a notebook."""

from __future__ import annotations

import json
import os
import sys
from typing import Any, Callable, Dict, List, Mapping, Optional, Union

from . import _attend


def _toml_literal(value: Any) -> str:
    """An override's value as a TOML literal (JSON's numbers, strings, booleans and arrays are)."""
    return json.dumps(value)


def _flatten(prefix: str, value: Any, out: List[str]) -> None:
    if isinstance(value, Mapping):
        for k, v in value.items():
            _flatten(f"{prefix}.{k}" if prefix else str(k), v, out)
    else:
        out.append(f"{prefix}={_toml_literal(value)}")


class _Bar:
    """The run's progress: a tqdm bar over the steps (a widget in a notebook where ipywidgets is
    installed, text otherwise) with the run's lines printed above it."""

    def __init__(self) -> None:
        try:
            import ipywidgets  # noqa: F401
            from tqdm.auto import tqdm
        except ImportError:
            from tqdm import tqdm
        self._tqdm = tqdm
        self._bar = None

    def __call__(self, kind: str, a: Any, b: Any) -> None:
        if kind == "say":
            if self._bar is not None:
                self._bar.write(a, file=sys.stderr)
            else:
                print(a, file=sys.stderr)
        elif kind == "start":
            self._bar = self._tqdm(total=b, initial=a, unit="step", file=sys.stderr, mininterval=0.5)
        elif kind == "advance" and self._bar is not None:
            self._bar.update(a - self._bar.n)
            self._bar.set_postfix_str(b, refresh=False)
        elif kind == "finish" and self._bar is not None:
            self._bar.close()
            self._bar = None

    def close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None


def train(
    config: Optional[Union[str, os.PathLike, Mapping[str, Any]]],
    out_dir: Union[str, os.PathLike],
    resume: bool = False,
    progress: Union[bool, Callable[[str, Any, Any], None]] = True,
    **overrides: Any,
) -> Dict[str, Any]:
    """Trains the model a config describes into ``out_dir`` and returns its summary (the run's
    ``summary.json``: test BLEU and chrF, steps, samples, …), as ``attend train`` does.

    ``config``: a TOML file, a dict with the same keys (``{"data": {...}, "model": {...}}``), or
    ``None`` for the bundled English→French config (resuming: the run's own). ``overrides`` are
    ``--set`` keys, by section (``train={"max_steps": 200}``) or dotted
    (``**{"train.max_steps": 200}``). ``resume=True`` continues the run in ``out_dir``.
    Ctrl-C stops training after the current step with a checkpoint that ``resume=True``
    continues. ``progress=False`` prints nothing; a callable gets every event instead of the bar:
    ``("say", line, None)``, ``("start", done, total)``, ``("advance", step, status)``,
    ``("finish", None, None)``.
    """
    sets: List[str] = []
    for key, value in overrides.items():
        _flatten(key, value, sets)
    path = json_config = None
    if isinstance(config, Mapping):
        json_config = json.dumps(config)
    elif config is not None:
        path = os.fspath(config)
    bar = _Bar() if progress is True else None
    callback = bar if bar is not None else (progress or None)
    try:
        summary = _attend.train(
            os.fspath(out_dir),
            config=path,
            config_json=json_config,
            sets=sets,
            resume=resume,
            progress=callback,
        )
    finally:
        if bar is not None:
            bar.close()
    return json.loads(summary)
