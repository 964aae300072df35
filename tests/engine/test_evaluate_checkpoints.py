"""Which checkpoint evaluate uses: best.pt falls back to last.pt only when no epoch was selected,
and says so on the console; a damaged or missing best.pt of a selected epoch is an error."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from duetfair.engine.evaluate import load_model
from duetfair.errors import DuetfairError


def _copy(evaluated_runs: dict[str, Path], tmp_path: Path) -> Path:
    run = tmp_path / "run"
    shutil.copytree(evaluated_runs["erm"], run)
    return run


def test_no_selected_epoch_uses_last_pt_with_a_warning(evaluated_runs, tmp_path: Path, capsys) -> None:
    run = _copy(evaluated_runs, tmp_path)
    record = json.loads((run / "run.json").read_text())
    (run / "run.json").write_text(json.dumps({**record, "best_epoch": -1}))
    (run / "checkpoints" / "best.pt").unlink()
    load_model(run)
    err = capsys.readouterr().err
    assert "warning:" in err and "no validation improved" in err and "last.pt" in err


def test_a_selected_epoch_without_best_pt_is_an_error(evaluated_runs, tmp_path: Path) -> None:
    run = _copy(evaluated_runs, tmp_path)
    (run / "checkpoints" / "best.pt").unlink()
    with pytest.raises(DuetfairError, match="missing although epoch"):
        load_model(run)
    (run / "checkpoints" / "best.pt").symlink_to(tmp_path / "gone.pt")  # a dangling link is not a fallback
    with pytest.raises(DuetfairError, match="not found"):
        load_model(run)
    assert load_model(run, "last")[0] is not None


def test_a_full_disk_while_saving_is_no_space_left(tmp_path: Path, monkeypatch) -> None:
    import contextlib

    import torch

    import duetfair.engine.checkpoint as ck
    from duetfair.cli import os_error_message

    @contextlib.contextmanager
    def full(path):  # the temporary file of the checkpoint lies on a full disk
        yield Path("/dev/full")

    monkeypatch.setattr(ck, "atomic_path", full)
    with pytest.raises(OSError) as err:
        ck.save_checkpoint(tmp_path / "last.pt", {"model": {"w": torch.zeros(100_000)}})
    assert os_error_message(err.value) == f"cannot use '{tmp_path / 'last.pt'}': no space left on the device"
