"""What every figure of the report shares: the canvas, the PNG encoding and the styles that keep a
figure readable without colour (line styles and markers besides colours)."""

from __future__ import annotations

import base64
import io
from typing import Any

STYLES = ("-", "--", ":", "-.")
MARKERS = ("o", "s", "^", "D", "v", "P", "X", "*")
WORST = "#c0392b"
"""Colour of the worst group (its bar is hatched too)."""
BLUE = "#2c7fb8"
"""Colour of the other groups and of the methods."""


def figure(width: float, height: float) -> Any:
    """A matplotlib ``Figure`` of ``width`` x ``height`` inches at 100 dpi, constrained layout."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def png(fig: Any) -> str:
    """The figure as a base64 PNG (embedded as a data URI: no network at view time)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return base64.b64encode(buf.getvalue()).decode("ascii")


def style(i: int) -> dict[str, Any]:
    """Line style and marker of the i-th series (readable without colour)."""
    return {"ls": STYLES[i % len(STYLES)], "marker": MARKERS[i % len(MARKERS)]}
