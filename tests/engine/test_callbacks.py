"""Trainer callbacks: the events, their order and arguments, old-style hooks, clean-up on errors."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from duetfair import history as H
from duetfair.engine.callbacks import Callback, CallbackList, HookCallback
from duetfair.engine.trainer import Trainer, train


class Recorder(Callback):
    """Every event in order, with what it received."""

    def __init__(self) -> None:
        self.events: list[tuple[Any, ...]] = []

    def on_fit_start(self, trainer: Trainer) -> None:
        self.events.append(("fit_start", trainer.epoch))

    def on_step_end(self, trainer: Trainer) -> None:
        self.events.append(("step", trainer.global_step))

    def on_validation_end(self, trainer: Trainer, row: dict[str, Any], cases: pd.DataFrame) -> None:
        assert trainer.history == [] or trainer.history[-1][H.EPOCH] == trainer.epoch  # not counted yet
        self.events.append(("validation", row[H.VAL_DICE], len(cases), cases["case_id"].is_unique))

    def on_checkpoint(self, trainer: Trainer, name: str, path: Path) -> None:
        self.events.append(("checkpoint", name, path.is_file()))

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        assert row is trainer.history[-1] and Path(trainer.run.history).is_file()
        self.events.append(("epoch", trainer.epoch, trainer.best_epoch == trainer.epoch))

    def on_fit_end(self, trainer: Trainer) -> None:
        self.events.append(("fit_end",))


def test_events_in_order_with_their_arguments(tmp_path: Path, tiny) -> None:
    rec = Recorder()
    hooked: list[tuple[str, int]] = []
    result = train(
        tiny("erm", "train.val_every=2", "train.epochs=2"),
        tmp_path / "run",
        callbacks=[rec],
        hooks=[lambda trainer, event: hooked.append((event, trainer.global_step))],
    )
    steps = result.global_step // 2  # steps per epoch
    kinds = [e[0] for e in rec.events]
    assert kinds == [
        "fit_start",
        *["step"] * steps,
        "checkpoint",  # epoch 1 is not validated: last.pt only
        "epoch",
        *["step"] * steps,
        "validation",
        "checkpoint",
        "checkpoint",
        "epoch",
        "fit_end",
    ]
    validation = rec.events[kinds.index("validation")]
    assert validation[1] == result.history[H.VAL_DICE].iloc[1] and validation[2:] == (12, True)
    assert [e for e in rec.events if e[0] == "checkpoint"] == [
        ("checkpoint", "last.pt", True),
        ("checkpoint", "best.pt", True),
        ("checkpoint", "last.pt", True),
    ]
    assert [e for e in rec.events if e[0] == "epoch"] == [("epoch", 1, False), ("epoch", 2, True)]
    # old-style hooks: "step" after every step, "epoch" after every epoch, after the callbacks
    epoch1 = [("step", i) for i in range(1, steps + 1)] + [("epoch", steps)]
    epoch2 = [("step", i) for i in range(steps + 1, 2 * steps + 1)] + [("epoch", 2 * steps)]
    assert hooked == epoch1 + epoch2


def test_history_columns_are_the_schema(tmp_path: Path, tiny) -> None:
    hist = train(tiny("group_dro", "train.epochs=1"), tmp_path / "run").history
    known = {H.EPOCH, H.STEP, H.LR, H.TRAIN_LOSS, H.EPOCH_SECONDS, H.BEST_EPOCH, *H.VALIDATION}
    other = [c for c in hist.columns if c not in known]
    assert other and all(c.startswith((H.group_dice(""), H.OBJECTIVE_PREFIX)) for c in other), other
    assert H.objective_column("q_0") in hist.columns and H.group_dice("Asian") in hist.columns
    assert H.tensorboard_tag(H.VAL_WORST_DICE) == "val/worst_dice" and H.tensorboard_tag(H.TRAIN_LOSS) == "train/loss"


def test_fit_end_runs_after_an_error_and_the_error_is_kept(tmp_path: Path, tiny) -> None:
    class Boom(Callback):
        def on_step_end(self, trainer: Trainer) -> None:
            raise RuntimeError("boom")

    rec = Recorder()
    with pytest.raises(RuntimeError, match="boom"):
        train(tiny("erm", "train.epochs=1"), tmp_path / "run", callbacks=[rec, Boom()])
    assert [e[0] for e in rec.events] == ["fit_start", "step", "fit_end"]


def test_callback_list_runs_every_fit_end_and_raises_the_first_error() -> None:
    seen: list[str] = []

    class Fails(Callback):
        def __init__(self, name: str) -> None:
            self.name = name

        def on_fit_end(self, trainer: Any) -> None:
            seen.append(self.name)
            raise ValueError(self.name)

    with pytest.raises(ValueError, match="^a$"):
        CallbackList([Fails("a"), Fails("b")]).on_fit_end(None)  # type: ignore[arg-type]
    assert seen == ["a", "b"]
    calls: list[str] = []
    hook = HookCallback(lambda trainer, event: calls.append(event))
    hook.on_step_end(None)  # type: ignore[arg-type]
    hook.on_epoch_end(None, {})  # type: ignore[arg-type]
    hook.on_validation_end(None, {}, pd.DataFrame())  # type: ignore[arg-type]
    assert calls == ["step", "epoch"]
