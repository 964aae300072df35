"""Trainer: run files, exact resume, NaN stop with the last good checkpoint, objectives that need
features / case ids / per-epoch updates."""

from __future__ import annotations

import math
from pathlib import Path

import pandas as pd
import pytest
import torch

from duetfair.engine.callbacks import Callback
from duetfair.engine.checkpoint import load_checkpoint
from duetfair.engine.trainer import NonFiniteLossError, Trainer, epoch_order, lr_factor, train
from duetfair.errors import DuetfairError


def test_run_directory_and_history(tmp_path: Path, tiny) -> None:
    cfg = tiny("group_dro", "train.tensorboard=true")
    result = train(cfg, tmp_path / "run")
    run = tmp_path / "run"
    assert result.status == "completed" and result.epochs_done == 2
    for name in (
        "config.yaml",
        "group_spec.json",
        "run.json",
        "history.csv",
        "checkpoints/last.pt",
        "checkpoints/best.pt",
    ):
        assert (run / name).is_file(), name
    assert any((run / "tensorboard").iterdir())
    hist = pd.read_csv(run / "history.csv")
    for col in ("train_loss", "val_dice", "val_worst_dice", "val_es_dice", "score", "obj/q_0"):
        assert col in hist.columns, col
    assert len(hist) == 2 and hist["train_loss"].notna().all()
    # worst_group is the default rule of GroupDRO: the score is the worst-group Dice
    assert (hist["score"] == hist["val_worst_dice"]).all()
    best = load_checkpoint(run / "checkpoints" / "best.pt")
    assert best["select"] == "worst_group" and best["epoch"] == result.best_epoch


def _final_weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run / "checkpoints" / "last.pt")["model"]


def test_interrupted_and_resumed_run_matches_uninterrupted(tmp_path: Path, tiny) -> None:
    # dMoE (noisy routers use the torch RNG) + FairDRO (objective state) + augmentation (own generator)
    cfg = tiny("fair_dro", "train.epochs=3")
    full = train(cfg, tmp_path / "full")
    assert full.status == "completed"

    class StopMidEpoch(Callback):
        def on_step_end(self, trainer: Trainer) -> None:
            if trainer.global_step == 4:  # epoch 2, step 1 of 3
                trainer.request_stop()

    part = train(cfg, tmp_path / "resumed", callbacks=[StopMidEpoch()])
    assert part.status == "interrupted" and part.global_step == 4
    state = load_checkpoint(tmp_path / "resumed" / "checkpoints" / "last.pt")
    assert (state["epoch"], state["epoch_step"]) == (1, 1)
    done = train(cfg, tmp_path / "resumed", resume=True)
    assert done.status == "completed" and done.global_step == full.global_step
    a, b = _final_weights(tmp_path / "full"), _final_weights(tmp_path / "resumed")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    h1, h2 = pd.read_csv(tmp_path / "full" / "history.csv"), pd.read_csv(tmp_path / "resumed" / "history.csv")
    for col in ("val_dice", "train_loss", "lr"):
        pd.testing.assert_series_equal(h1[col], h2[col])


def test_nan_loss_stops_and_keeps_last_good_checkpoint(tmp_path: Path, tiny) -> None:
    class Poison(Callback):
        def on_epoch_end(self, trainer: Trainer, row: dict) -> None:
            if trainer.epoch == 1:
                with torch.no_grad():
                    next(trainer.model.parameters()).fill_(float("nan"))

    with pytest.raises(NonFiniteLossError) as err:
        train(tiny("erm"), tmp_path / "run", callbacks=[Poison()])
    msg = str(err.value)
    assert "nan" in msg and "epoch 2 step 1" in msg and "last.pt (epoch 1)" in msg and "\n" not in msg
    state = load_checkpoint(tmp_path / "run" / "checkpoints" / "last.pt")
    assert state["epoch"] == 1
    assert all(torch.isfinite(v).all() for v in state["model"].values() if v.is_floating_point())


def test_resume_guards(tmp_path: Path, tiny) -> None:
    train(tiny("erm", "train.epochs=1"), tmp_path / "run")
    with pytest.raises(DuetfairError, match="already holds a run"):
        train(tiny("erm", "train.epochs=1"), tmp_path / "run")
    with pytest.raises(DuetfairError, match="different config"):
        train(tiny("erm", "train.epochs=1", "optim.lr=0.1"), tmp_path / "run", resume=True)
    with pytest.raises(DuetfairError, match="no checkpoint"):
        train(tiny("erm"), tmp_path / "other", resume=True)


@pytest.mark.parametrize("method", ["adversarial", "divergence", "febs"])
def test_objectives_needing_extras_train(tmp_path: Path, tiny, method: str) -> None:
    result = train(tiny(method, "train.epochs=1", "objective.discovery.min_support=0.2"), tmp_path / method)
    assert result.status == "completed"
    hist = result.history
    assert math.isfinite(hist["train_loss"].iloc[0])
    if method == "divergence":
        assert "obj/subgroups_used" in hist.columns


def test_bad_group_attribute(tmp_path: Path, tiny) -> None:
    with pytest.raises(
        DuetfairError, match=r"data.group_attribute: 'ethnicity' is not one of \['race', 'age', 'sex'\]"
    ):
        Trainer(tiny("erm", "data.group_attribute=ethnicity"), tmp_path / "run")


def test_epoch_order_and_schedule() -> None:
    assert torch.equal(epoch_order(10, 3, 1), epoch_order(10, 3, 1))
    assert not torch.equal(epoch_order(10, 3, 1), epoch_order(10, 3, 2))
    assert lr_factor(0, 100, 10, "poly", 0.9, 0.0) == pytest.approx(0.1)
    assert lr_factor(10, 100, 10, "poly", 0.9, 0.0) == pytest.approx(1.0)
    assert lr_factor(100, 100, 10, "poly", 0.9, 0.0) == pytest.approx(0.0)
    assert lr_factor(55, 100, 10, "cosine", 1.0, 0.1) == pytest.approx(0.1 + 0.9 * 0.5)
    assert lr_factor(99, 100, 0, "constant", 1.0, 0.0) == 1.0


def test_dataloader_path_matches_cached_path(tmp_path: Path, tiny) -> None:
    cached = train(tiny("erm", "train.epochs=1"), tmp_path / "cached")
    loader = train(tiny("erm", "train.epochs=1", "data.cache=false"), tmp_path / "loader")
    assert cached.global_step == loader.global_step
    a, b = _final_weights(tmp_path / "cached"), _final_weights(tmp_path / "loader")
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_one_plain_line_per_epoch_when_not_a_terminal(tmp_path: Path, tiny, capsys: pytest.CaptureFixture[str]) -> None:
    # capsys is not a terminal (a log file, CI, a cluster job): no bars, one line per epoch
    train(tiny("erm", "train.progress=true"), tmp_path / "run")
    lines = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in lines] == ["1/2", "2/2"]
    for line in lines:
        assert (
            "loss " in line
            and "val Dice " in line
            and "worst-group Dice " in line
            and line.rstrip().endswith(("left", "done"))  # time elapsed and an estimate of the time left
            and " elapsed" in line
        )
        assert "\x1b[" not in line  # plain text, no terminal codes
    train(tiny("erm", "train.log_every_epoch=false"), tmp_path / "quiet")
    assert "epoch 1/2" not in capsys.readouterr().out


def test_balanced_epoch_order_draws_groups_equally_often() -> None:
    from duetfair.objectives.group_dro import group_balanced_weights

    groups = torch.tensor([0] * 90 + [1] * 10)
    weights = group_balanced_weights(groups)
    order = epoch_order(100, 0, 0, weights)
    assert torch.equal(order, epoch_order(100, 0, 0, weights)) and order.numel() == 100
    counts = torch.bincount(groups[torch.cat([epoch_order(100, 0, e, weights) for e in range(20)])])
    assert counts[1] / counts.sum() == pytest.approx(0.5, abs=0.05)  # 10 % of the cases, half the draws


def test_balance_by_groups_or_an_attribute(tmp_path: Path, tiny) -> None:
    trainer = Trainer(tiny("group_dro", "train.balance_by=groups"), tmp_path / "a")
    ids = trainer.grouping.group_ids(trainer.datasets["train"].codes)
    w = trainer.sample_weights
    assert w is not None and float(w[ids == ids[0]].sum()) == pytest.approx(float(w[ids == ids.max()].sum()))
    assert Trainer(tiny("erm"), tmp_path / "b").sample_weights is None
    assert Trainer(tiny("erm", "train.balance_by=sex"), tmp_path / "c").sample_weights is not None
    with pytest.raises(DuetfairError, match=r"train.balance_by: 'site' is not 'groups' or one of"):
        Trainer(tiny("erm", "train.balance_by=site"), tmp_path / "d")
