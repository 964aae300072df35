"""DDP: shards (training padded, evaluation disjoint) and a 2-process gloo run whose ranks end
with identical parameters."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from duetfair.engine.distributed import DistInfo, eval_shard, train_shard

sys.path.insert(0, str(Path(__file__).parent))
from _ddp_worker import worker  # noqa: E402


def test_shards() -> None:
    order = torch.arange(10)
    a, b = train_shard(order, DistInfo(0, 3)), train_shard(order, DistInfo(1, 3))
    assert a.numel() == b.numel() == 4  # padded to 12 = 3 x 4
    ev = [eval_shard(10, DistInfo(r, 3)) for r in range(3)]
    assert sorted(i for s in ev for i in s) == list(range(10))  # every case exactly once
    assert torch.equal(train_shard(order, DistInfo()), order)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _method_of(objective: str) -> str:
    """A method whose recipe trains ``objective`` (the plain model where there is one)."""
    from duetfair.engine.recipes import RECIPES

    methods = sorted((r.moe != "none", m.value) for m, r in RECIPES.items() if r.objective == objective)
    assert methods, f"objective '{objective}' has no method recipe; add one so that it is benchmarked and tested"
    return methods[0][1]


def _methods() -> list:
    """A method per registered objective (a new one cannot skip this test), and routing on discovered
    subclasses (a model setting): the FairDRO loss in the default suite, the rest slow."""
    from duetfair.objectives.registry import available_objectives

    methods = [_method_of(n) for n in available_objectives()] + ["subclass_moe"]
    return [pytest.param(m, marks=() if m == "subgroup_dro" else pytest.mark.slow) for m in methods]


@pytest.mark.parametrize("method", _methods())
def test_two_process_gloo_training_keeps_ranks_identical(tmp_path: Path, method: str) -> None:
    mp.spawn(worker, args=(2, _free_port(), str(tmp_path), method), nprocs=2, join=True)
    r0 = torch.load(tmp_path / "rank0.pt", weights_only=True)
    r1 = torch.load(tmp_path / "rank1.pt", weights_only=True)
    assert r0["world"] == r1["world"] == 2
    assert r0["steps"] == r1["steps"] == 3  # 24 cases / 2 ranks / batch 4
    for key in r0["model"]:
        assert torch.equal(r0["model"][key], r1["model"][key]), key
    for key in r0["objective"]:
        assert torch.equal(r0["objective"][key], r1["objective"][key]), key
    assert r0["val_dice"] == r1["val_dice"]  # both ranks see the full gathered validation table
    assert (tmp_path / "run" / "checkpoints" / "last.pt").is_file()
