"""Trainer callbacks: code that runs when something happens in a training run.

A callback subclasses :class:`Callback` and overrides the events it needs (the others do nothing);
``Trainer(cfg, callbacks=[...])`` or ``train(cfg, callbacks=[...])`` runs it. Events are named by
when they fire, in this order within a run::

    on_fit_start
      on_step_end                     after every optimiser step
      on_validation_end(row, cases)   after an epoch's validation (not every epoch: train.val_every)
      on_checkpoint(name, path)       after checkpoints/best.pt, then checkpoints/last.pt
      on_epoch_end(row)               after the epoch's history row, checkpoints and history.csv
    on_fit_end                        always, also after an error or a stop

Events fire on every process of a distributed run (check ``trainer.info.is_main`` before writing a
file). ``on_step_end`` and ``on_epoch_end`` may call ``trainer.request_stop()``; the run then stops
at the next step with a resumable checkpoint. What the trainer itself shows and feeds back is built
from the same events: the epoch lines and TensorBoard scalars (:mod:`duetfair.engine.console`) and
the validation results of objectives (:class:`ObjectiveFeedback`). Callbacks do not change what is
trained: a run with or without them gives the same weights.

Old-style hooks ``hook(trainer, event)`` (``event`` ``"step"`` or ``"epoch"``) still work through
``hooks=[...]`` (:class:`HookCallback`).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional, Sequence

import pandas as pd

if TYPE_CHECKING:
    from duetfair.engine.trainer import Trainer
    from duetfair.objectives.base import ValidationResult

Hook = Callable[["Trainer", str], None]


class Callback:
    """Base class of trainer callbacks: every event is a no-op; override those you need."""

    def on_fit_start(self, trainer: Trainer) -> None:
        """Before the first step of :meth:`Trainer.fit` (of a resumed run too)."""

    def on_step_end(self, trainer: Trainer) -> None:
        """After an optimiser step (``trainer.global_step`` and ``trainer.epoch_step`` counted)."""

    def on_validation_end(self, trainer: Trainer, row: dict[str, Any], cases: pd.DataFrame) -> None:
        """After an epoch's validation: ``row`` its history columns (``val_*``, ``score``,
        :mod:`duetfair.history`), ``cases`` the case-level validation table (one row per case,
        ``dice``, ``iou``, raw attribute columns). Fires before the epoch is counted and selected."""

    def on_checkpoint(self, trainer: Trainer, name: str, path: Path) -> None:
        """After ``checkpoints/<name>`` (``best.pt`` or ``last.pt``) was written to ``path``."""

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """After an epoch: ``row`` is its history row (``trainer.history[-1]``), its checkpoints and
        ``history.csv`` are written. ``trainer.epoch`` counts the finished epochs, and
        ``trainer.best_epoch == trainer.epoch`` when this epoch was selected."""

    def on_fit_end(self, trainer: Trainer) -> None:
        """When :meth:`Trainer.fit` ends: completed, stopped or failed."""


class CallbackList(Callback):
    """Several callbacks run in their order, as one."""

    def __init__(self, callbacks: Sequence[Callback] = ()) -> None:
        self.callbacks = list(callbacks)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Every callback's :meth:`Callback.on_fit_start`."""
        for cb in self.callbacks:
            cb.on_fit_start(trainer)

    def on_step_end(self, trainer: Trainer) -> None:
        """Every callback's :meth:`Callback.on_step_end`."""
        for cb in self.callbacks:
            cb.on_step_end(trainer)

    def on_validation_end(self, trainer: Trainer, row: dict[str, Any], cases: pd.DataFrame) -> None:
        """Every callback's :meth:`Callback.on_validation_end`."""
        for cb in self.callbacks:
            cb.on_validation_end(trainer, row, cases)

    def on_checkpoint(self, trainer: Trainer, name: str, path: Path) -> None:
        """Every callback's :meth:`Callback.on_checkpoint`."""
        for cb in self.callbacks:
            cb.on_checkpoint(trainer, name, path)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Every callback's :meth:`Callback.on_epoch_end`."""
        for cb in self.callbacks:
            cb.on_epoch_end(trainer, row)

    def on_fit_end(self, trainer: Trainer) -> None:
        """Every callback's :meth:`Callback.on_fit_end`, each even when one before it fails."""
        errors = []
        for cb in self.callbacks:
            try:
                cb.on_fit_end(trainer)
            except Exception as exc:  # noqa: BLE001 - the others still clean up; raised below
                errors.append(exc)
        if errors:
            raise errors[0]


class HookCallback(Callback):
    """An old-style hook ``hook(trainer, event)``: ``"step"`` after every optimiser step, ``"epoch"``
    after every epoch (validation, checkpoints and history written)."""

    def __init__(self, hook: Hook) -> None:
        self.hook = hook

    def on_step_end(self, trainer: Trainer) -> None:
        """``hook(trainer, "step")``."""
        self.hook(trainer, "step")

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """``hook(trainer, "epoch")``."""
        self.hook(trainer, "epoch")


class ObjectiveFeedback(Callback):
    """Give the objective its :class:`~duetfair.objectives.base.ValidationResult` after every
    validation: the case-level table, the training cases' labels and, only for objectives with
    ``needs_subgroups``, the divergent subgroups mined on validation (``objective.discovery``)."""

    def __init__(self) -> None:
        self._train_labels: Optional[pd.DataFrame] = None

    def on_validation_end(self, trainer: Trainer, row: dict[str, Any], cases: pd.DataFrame) -> None:
        """Call ``trainer.objective.on_validation_end`` with :meth:`result`."""
        trainer.objective.on_validation_end(self.result(trainer, cases))

    def result(self, trainer: Trainer, cases: pd.DataFrame) -> ValidationResult:
        """What the objective sees after a validation on ``cases``."""
        from duetfair.objectives.base import ValidationResult

        if self._train_labels is None:  # fixed for the run: computed once
            from duetfair.metrics.cases import label_frame

            self._train_labels = label_frame(trainer.datasets["train"].meta, trainer.spec, trainer.audit_attributes)
        subgroups = None
        if trainer.objective.needs_subgroups:
            from duetfair.audit.discovery import find_divergent_subgroups

            discovery = trainer.cfg.objective.discovery
            subgroups = find_divergent_subgroups(
                cases, "dice", trainer.audit_attributes, spec=trainer.spec, **discovery
            )
        return ValidationResult(cases=cases, train_labels=self._train_labels, subgroups=subgroups)
