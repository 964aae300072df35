"""The options of the certified statements shared by ``duetfair audit`` and ``duetfair score``:
``--confidence``, ``--detect``, ``--reference`` (see :mod:`duetfair.audit.certify`)."""

from __future__ import annotations

from typing import Optional

import typer

from duetfair.errors import DuetfairError

CONFIDENCE = typer.Option(0.95, "--confidence", help="Confidence of every interval, per-group guarantee and test.")
DETECT = typer.Option(
    None,
    "--detect",
    help="Gap of the mean to detect with 80% power: 0.05 (every metric in [0, 1]) or METRIC=GAP, e.g. "
    "hd95=5 (repeatable; default 0.05 for Dice, IoU, NSD). Groups that cannot are flagged 'insufficient evidence'.",
)
REFERENCE = typer.Option(
    None,
    "--reference",
    help="Group every other group is tested against, e.g. White or race=White (default: the rest of the cases).",
)


def certify_options(confidence: float, detect: Optional[list[str]], reference: Optional[str]) -> dict[str, object]:
    """Keyword arguments of :func:`duetfair.audit.audit_table`: ``--confidence`` sets the level of
    every interval, guarantee and test."""
    if not 0.5 <= confidence < 1.0:
        raise DuetfairError(f"--confidence {confidence}: expected a confidence level in [0.5, 1), e.g. 0.95")
    return {"level": confidence, "confidence": confidence, "detect": detect or None, "reference": reference}
