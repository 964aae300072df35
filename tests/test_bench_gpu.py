"""``benchmarks/bench_gpu.py``: says "no GPU" cleanly without one, and every path runs (slow)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _bench():
    spec = importlib.util.spec_from_file_location("bench_gpu", ROOT / "benchmarks" / "bench_gpu.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["bench_gpu"] = module
    spec.loader.exec_module(module)
    return module


@pytest.mark.skipif(torch.cuda.is_available(), reason="measures the GPU when there is one")
def test_without_a_gpu_it_says_so_and_writes_json(tmp_path: Path, capsys) -> None:
    result = _bench().main(["--out", str(tmp_path / "gpu.json")])
    assert result["skipped"] == "no GPU"
    assert json.loads((tmp_path / "gpu.json").read_text())["gpu"] is None
    assert "no GPU" in capsys.readouterr().out


@pytest.mark.slow
def test_smoke_runs_every_section(tmp_path: Path) -> None:
    result = _bench().main(
        ["--smoke", "--repeats", "1", "--workdir", str(tmp_path / "w"), "--out", str(tmp_path / "gpu.json")]
    )
    assert {"layer", "model", "trainer"} <= set(result)
    assert all(row["ratio_bf16"] > 0 for row in result["layer"])
    assert result["trainer"][0]["trainer_over_bare_throughput"] > 0
