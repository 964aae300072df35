"""Two-stage training (JTT, subclass DRO): the first stage is trained once, reused on resume, and
the subgroups it led to are written; the main run resumes bit-exactly."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch

from duetfair.engine.callbacks import Callback
from duetfair.engine.checkpoint import load_checkpoint
from duetfair.engine.config import load_config
from duetfair.engine.first_stage import first_stage_config
from duetfair.engine.trainer import Trainer, train
from duetfair.errors import DuetfairError


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def test_first_stage_config_is_plain_erm_for_a_share_of_the_epochs(tiny) -> None:
    cfg = tiny("jtt", "train.epochs=8", "objective.first_stage.fraction=0.5")
    stage = first_stage_config(cfg, Path("x"))
    assert (stage.objective.name, stage.objective.args, stage.train.epochs) == ("erm", {}, 4)
    assert stage.train.balance_by is None and stage.select_rule == "overall" and stage.model == cfg.model
    assert first_stage_config(tiny("jtt", "objective.first_stage.epochs=3"), Path("x")).train.epochs == 3


def test_first_stage_settings_change_only_two_stage_hashes() -> None:
    assert (
        load_config("fundus2d", ["objective.first_stage.epochs=3"]).config_hash()
        == load_config("fundus2d").config_hash()
    )
    jtt = load_config("fundus2d_jtt")
    assert load_config("fundus2d_jtt", ["objective.first_stage.epochs=3"]).config_hash() != jtt.config_hash()


@pytest.mark.parametrize(
    "method",
    ["jtt", pytest.param("subclass_dro", marks=pytest.mark.slow), pytest.param("subclass_moe", marks=pytest.mark.slow)],
)
def test_two_stage_run_resumes_exactly_and_reports_its_subgroups(tmp_path: Path, tiny, method: str) -> None:
    cfg = tiny(method, "train.epochs=3", "objective.first_stage.epochs=1")
    full = train(cfg, tmp_path / "full")
    assert full.status == "completed"
    subgroups = pd.read_csv(tmp_path / "full" / "first_stage" / "subgroups.csv")
    assert len(subgroups) == 24 and set(subgroups["hidden"]) <= {0, 1} and subgroups["subgroup"].notna().all()
    summary = pd.read_csv(tmp_path / "full" / "first_stage" / "subgroup_summary.csv")
    assert summary["n"].sum() == 24 and {"purity", "recall"} <= set(summary.columns)

    class Stop(Callback):
        def on_step_end(self, trainer: Trainer) -> None:
            if trainer.global_step == 3:  # inside epoch 2 of the main run
                trainer.request_stop()

    part = train(cfg, tmp_path / "resumed", callbacks=[Stop()])
    assert part.status == "interrupted"
    stage_ckpt = tmp_path / "resumed" / "first_stage" / "checkpoints" / "last.pt"
    stamp = stage_ckpt.stat().st_mtime_ns
    done = train(cfg, tmp_path / "resumed", resume=True)
    assert done.status == "completed" and stage_ckpt.stat().st_mtime_ns == stamp  # first stage not trained again
    a, b = _weights(tmp_path / "full"), _weights(tmp_path / "resumed")
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_two_stage_objective_refuses_a_second_sampling_rule(tmp_path: Path, tiny) -> None:
    with pytest.raises(DuetfairError, match="decides how often cases are drawn"):
        Trainer(tiny("jtt", "train.balance_by=groups", "objective.first_stage.epochs=1"), tmp_path / "run")
