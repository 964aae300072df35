"""Checkpoints: RNG round trip, weights-only loading, clear errors for missing / foreign files."""

from __future__ import annotations

import datetime
import random
from pathlib import Path

import numpy as np
import pytest
import torch

from duetfair.engine.checkpoint import capture_rng, load_checkpoint, model_state, restore_rng, save_checkpoint
from duetfair.errors import DuetfairError


def test_rng_round_trip_through_a_weights_only_file(tmp_path: Path) -> None:
    gen = torch.Generator().manual_seed(5)
    random.seed(1), np.random.seed(2), torch.manual_seed(3)
    save_checkpoint(tmp_path / "c.pt", {"model": {}, "rng": capture_rng(gen)})
    expected = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gen))
    random.seed(9), np.random.seed(9), torch.manual_seed(9)
    restore_rng(load_checkpoint(tmp_path / "c.pt")["rng"], gen)
    got = (random.random(), np.random.rand(), torch.rand(2), torch.rand(2, generator=gen))
    assert got[0] == expected[0] and got[1] == expected[1]
    assert torch.equal(got[2], expected[2]) and torch.equal(got[3], expected[3])


def test_save_is_atomic_and_strips_ddp_prefix(tmp_path: Path) -> None:
    target = tmp_path / "ck" / "last.pt"
    save_checkpoint(target, {"model": {"module.w": torch.ones(2)}})
    assert [p.name for p in target.parent.iterdir()] == ["last.pt"]  # no temporary left behind
    assert list(model_state(load_checkpoint(target))) == ["w"]


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(DuetfairError, match="not found"):
        load_checkpoint(tmp_path / "missing.pt")
    bad = tmp_path / "bad.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(DuetfairError, match="cannot be loaded safely"):
        load_checkpoint(bad)
    torch.save({"weights": torch.zeros(1)}, tmp_path / "foreign.pt")
    with pytest.raises(DuetfairError, match="not a duetfair checkpoint"):
        load_checkpoint(tmp_path / "foreign.pt")

    # arbitrary pickled objects are refused by weights_only loading
    torch.save({"model": {}, "x": datetime.date(2020, 1, 1)}, tmp_path / "pickle.pt")
    with pytest.raises(DuetfairError, match="cannot be loaded safely"):
        load_checkpoint(tmp_path / "pickle.pt")
