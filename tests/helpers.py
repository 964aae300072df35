"""Shared test helpers: tiny model/training overrides and running the CLI in-process."""

from __future__ import annotations

import pytest

from duetfair.cli import main

TINY_MODEL = [
    "model.args.dim=32",
    "model.args.depth=1",
    "model.args.heads=2",
    "model.args.patch_size=8",
    "model.args.head_channels=16",
    "model.args.decoder_channels=[8,8,8]",
    "train.batch_size=8",
    "train.progress=false",
    "train.tensorboard=false",
    "eval.metrics=[dice,iou]",
    "eval.n_boot=10",
    "schedule.warmup_epochs=0",
]
"""A model and a training loop that run in seconds on a CPU (any data)."""

TINY_SYNTH = ["data.args.n_train=16", "data.args.n_val=8", "data.args.n_test=8", "data.args.image_size=32"]
"""A tiny synthetic dataset (``fundus2d`` and friends)."""

TINY = [*TINY_SYNTH, *TINY_MODEL, "train.epochs=1"]
"""One epoch of the tiny model on the tiny synthetic data."""


def sets(*items: str) -> list[str]:
    """``--set`` arguments of ``items``."""
    return [arg for item in items for arg in ("--set", item)]


def run(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    """Run the CLI in-process: ``(exit code, stdout, stderr)``."""
    try:
        main(args)
        code = 0
    except SystemExit as exc:
        code = int(exc.code or 0)
    out = capsys.readouterr()
    return code, out.out, out.err
