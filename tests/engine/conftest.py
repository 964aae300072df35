"""Shared fixtures of the engine tests: tiny synthetic fundus runs (seconds on a CPU)."""

from __future__ import annotations

from pathlib import Path

import pytest

from duetfair.engine.config import ExperimentConfig, load_config
from helpers import TINY_MODEL

TINY = [
    *TINY_MODEL,
    "data.args.n_train=24",
    "data.args.n_val=12",
    "data.args.n_test=12",
    "data.args.image_size=32",
    "train.epochs=2",
    "train.eval_batch_size=12",
    "eval.n_boot=20",
]


def tiny_config(method: str = "erm", *extra: str) -> ExperimentConfig:
    """``fundus2d_<method>`` at a size that trains in a few seconds."""
    return load_config(f"fundus2d_{method}", [*TINY, *extra])


@pytest.fixture()
def tiny():
    """The :func:`tiny_config` factory."""
    return tiny_config


@pytest.fixture(scope="session")
def evaluated_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two trained and evaluated tiny runs (ERM and FairDRO)."""
    from duetfair.engine.evaluate import evaluate_run
    from duetfair.engine.trainer import train

    root = tmp_path_factory.mktemp("runs")
    runs = {}
    for method in ("erm", "fair_dro"):
        run = root / method
        train(tiny_config(method), run)
        evaluate_run(run)
        runs[method] = run
    return runs


@pytest.fixture(scope="session")
def subclass_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ``subclass_moe`` run (dMoE routed on race and the discovered subclasses), evaluated on test."""
    from duetfair.engine.evaluate import evaluate_run
    from duetfair.engine.trainer import train

    run = tmp_path_factory.mktemp("subclass") / "run"
    cfg = tiny_config(  # seed 2: the test split has cases of both clusters of group White
        "subclass_moe",
        "train.epochs=2",
        "objective.first_stage.epochs=1",
        "model.subclasses={clusters: 2, min_size: 3}",
        "seed=2",
    )
    assert train(cfg, run).status == "completed"
    evaluate_run(run, split="test", report=False)
    return run
