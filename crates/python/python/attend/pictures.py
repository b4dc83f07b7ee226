"""Attention heat maps drawn by attend's own renderer (the pictures of ``attend translate --plot``),
inline in Jupyter through ``_repr_png_`` / ``_repr_svg_``."""

from __future__ import annotations

import os
from typing import Optional, Sequence, Tuple, Union

import numpy as np

from . import _attend


class AttentionImage:
    """A heat map: ``weights[i, j]`` is how much target token ``i`` attended to source token ``j``.

    Jupyter shows it inline (PNG, or SVG where the front end prefers it); :meth:`png` and
    :meth:`svg` give the picture's bytes and text, :meth:`save` writes a ``.png`` or ``.svg`` file.
    """

    def __init__(
        self,
        weights: np.ndarray,
        source_tokens: Sequence[str],
        target_tokens: Sequence[str],
        title: str = "attention",
        scale: Optional[Tuple[float, float]] = None,
    ) -> None:
        w = np.asarray(weights, dtype=np.float32)
        if w.ndim != 2:
            raise ValueError(f"weights: expected a 2-D array [target, source], got shape {w.shape}")
        if w.shape != (len(target_tokens), len(source_tokens)):
            raise ValueError(
                f"weights of shape {w.shape} do not match {len(target_tokens)} target × "
                f"{len(source_tokens)} source tokens"
            )
        if not np.isfinite(w).all():
            i, j = np.argwhere(~np.isfinite(w))[0]
            raise ValueError(f"weights[{i}, {j}] = {w[i, j]} is not a finite number")
        self.weights = w
        self.source_tokens = [str(t) for t in source_tokens]
        self.target_tokens = [str(t) for t in target_tokens]
        self.title = title
        self.scale = scale

    def _args(self):
        return (
            self.title,
            self.target_tokens,
            self.source_tokens,
            self.weights.ravel().tolist(),
        )

    def png(self) -> bytes:
        """The picture as PNG bytes."""
        return _attend.heat_map(*self._args(), "png", self.scale)

    def svg(self) -> str:
        """The picture as an SVG document."""
        return _attend.heat_map(*self._args(), "svg", self.scale)

    def save(self, path: Union[str, os.PathLike]) -> None:
        """Writes the picture to ``path``, PNG or SVG by its extension."""
        _attend.save_heat_map(os.fspath(path), *self._args(), self.scale)

    def _repr_png_(self) -> bytes:
        return self.png()

    def _repr_svg_(self) -> str:
        return self.svg()

    def __repr__(self) -> str:
        return (
            f"AttentionImage({self.title!r}, {len(self.target_tokens)} target × "
            f"{len(self.source_tokens)} source tokens)"
        )


def plot_attention(
    weights,
    source_tokens: Sequence[str],
    target_tokens: Sequence[str],
    path: Optional[Union[str, os.PathLike]] = None,
    title: str = "attention",
    scale: Optional[Tuple[float, float]] = None,
) -> AttentionImage:
    """Draws ``weights`` ([target, source]) as a heat map, colours over ``scale`` (default 0..1).

    With ``path`` the picture is also written there (``.png`` or ``.svg``). Returns the image,
    which a notebook shows inline.
    """
    image = AttentionImage(weights, source_tokens, target_tokens, title, scale)
    if path is not None:
        image.save(path)
    return image
