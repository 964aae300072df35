"""Training loop: train / validate every epoch / select / checkpoint / resume; DDP-aware.

The run folder (:class:`duetfair.rundir.RunDir`) gets ``config.yaml``, ``group_spec.json``,
``run.json``, ``history.csv`` (one row per epoch: lr, train loss, validation Dice overall / worst
group / ES-Dice, selection score, objective log values such as GroupDRO weights), checkpoints and
TensorBoard scalars.

Model selection: :mod:`duetfair.engine.selection` (``train.select`` on validation per-case Dice,
groups labelled as the audit labels them); history columns: :mod:`duetfair.history`; inference:
:mod:`duetfair.engine.inference`. The trainer knows no objective by name: objectives receive what
they need through :class:`~duetfair.objectives.base.ObjectiveContext` and
:meth:`~duetfair.objectives.base.Objective.on_validation_end`. Events of a run go to callbacks
(:mod:`duetfair.engine.callbacks`): the objective's validation feedback, one plain line per epoch on
rank 0 (``train.log_every_epoch``; bars only on a terminal) and TensorBoard scalars
(:mod:`duetfair.engine.console`), and the caller's own. Accelerators: :mod:`duetfair.engine.acceleration`.

Reproducibility: every epoch's order is a permutation drawn from ``seed`` and the epoch number, the
augmentation generator and all RNG states are checkpointed, and a checkpoint taken mid-epoch (Ctrl-C)
records the step, so ``--resume`` continues on exactly the batches an uninterrupted run would see.
"""

from __future__ import annotations

import contextlib
import math
import os
import signal
import socket
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Optional, Sequence

import pandas as pd
import torch
from torch import nn

from duetfair import history as H
from duetfair.engine import adapters
from duetfair.engine.acceleration import (
    LossMonitor,
    compile_model,
    device_source,
    resolve_determinism,
    seed_everything,
)
from duetfair.engine.batching import BatchSource, augment_batch, epoch_order, make_source
from duetfair.engine.callbacks import Callback, CallbackList, Hook, HookCallback, ObjectiveFeedback
from duetfair.engine.checkpoint import capture_rng, load_checkpoint, restore_rng, save_checkpoint
from duetfair.engine.config import ExperimentConfig, save_config
from duetfair.engine.console import EpochLines, TensorBoardScalars, install_stop_handler, lr_factor, progress_display
from duetfair.engine.distributed import (
    all_reduce_mean,
    average_buffers,
    barrier,
    gather_objects,
    init_from_env,
    set_threads,
    train_shard,
)
from duetfair.engine.first_stage import first_stage_of, report_subgroups
from duetfair.engine.inference import autocast_context, metrics_table
from duetfair.engine.run_audit import audited_attributes
from duetfair.engine.selection import validation_row
from duetfair.engine.step import StepModule
from duetfair.errors import DuetfairError, require
from duetfair.io import atomic_path
from duetfair.metrics.cases import attach_metadata, case_level
from duetfair.objectives.base import ObjectiveContext
from duetfair.objectives.group_dro import group_balanced_weights
from duetfair.rundir import RunDir, RunRecord

__all__ = ["Trainer", "TrainResult", "NonFiniteLossError", "train", "Callback", "Hook", "epoch_order", "lr_factor"]


class NonFiniteLossError(DuetfairError):
    """Training produced a NaN/inf loss; the last good checkpoint is left untouched."""


@dataclass
class TrainResult:
    """Outcome of :meth:`Trainer.fit`."""

    run_dir: Path
    status: Literal["completed", "interrupted"]
    epochs_done: int
    global_step: int
    best_epoch: int
    best_score: float
    history: pd.DataFrame = field(repr=False)


class Trainer:
    """Config-driven trainer (see the module docstring).

    Args:
        cfg: validated experiment config.
        run_dir: output folder (default ``cfg.output_dir``).
        resume: continue from ``run_dir/checkpoints/last.pt`` (refused if the config hash differs).
        hooks: old-style callables ``hook(trainer, event)`` with ``event`` in ``"step"`` (after
            every optimiser step) and ``"epoch"`` (after validation and checkpointing); they may
            call :meth:`request_stop`. Run after ``callbacks``.
        callbacks: :class:`~duetfair.engine.callbacks.Callback` objects, run after the trainer's own.
        datasets: pre-built ``{"train", "val", ...}`` datasets (skips ``build_datasets``).
    """

    def __init__(
        self,
        cfg: ExperimentConfig,
        run_dir: Optional[str | Path] = None,
        *,
        resume: bool = False,
        hooks: Optional[list[Hook]] = None,
        callbacks: Optional[Sequence[Callback]] = None,
        datasets: Optional[dict[str, Any]] = None,
    ) -> None:
        self.cfg = cfg
        self.run = RunDir(run_dir if run_dir is not None else cfg.output_dir)
        self.run_dir = self.run.root
        self.resume = resume
        self.callbacks: list[Callback] = [*(callbacks or []), *(HookCallback(h) for h in hooks or [])]
        self.events = CallbackList()  # the trainer's own callbacks and ``callbacks``, set by fit()
        self.console: Any = None  # the progress display's console, set by fit()
        self._stop = False
        self.info, self.device = init_from_env(cfg.train.device)
        set_threads(cfg.train.threads, self.info)
        self.determinism = resolve_determinism(cfg.train.deterministic, self.device)
        seed_everything(cfg.seed + self.info.rank, self.determinism.enabled)
        self.generator = torch.Generator().manual_seed(cfg.seed * 7919 + self.info.rank)
        self._check_run_dir()
        self._build_data(datasets)
        self._build_model()
        self._build_optim()
        self.epoch = 0
        self.epoch_step = 0
        self.global_step = 0
        self.best_score = -math.inf
        self.best_epoch = -1
        self._loss_sum, self._loss_n = 0.0, 0
        self._epoch_time = float("nan")
        self.validation_seconds = float("nan")  # of the last epoch: validation, selection, history
        self.history: list[dict[str, Any]] = []
        if resume:
            self._load_last()

    # ---- setup -----------------------------------------------------------------------------
    def _check_run_dir(self) -> None:
        last = self.run.checkpoint("last")
        if self.resume:
            require(last.is_file(), f"--resume: no checkpoint at {last}; train without --resume first")
        else:
            require(
                not last.exists(),
                f"output folder {self.run_dir} already holds a run "
                f"({last}); use --resume to continue it or another --out",
            )

    def _build_data(self, datasets: Optional[dict[str, Any]]) -> None:
        cfg = self.cfg
        self.datasets = (
            datasets
            if datasets is not None
            else adapters.build_datasets(cfg.data.kind, cfg.data.args, cfg.data.hidden_column)
        )
        for split in ("train", "val"):
            require(
                split in self.datasets,
                f"data: loader '{cfg.data.kind}' gave splits {sorted(self.datasets)}; training needs 'train' and 'val'",
            )
        train = self.datasets["train"]
        self.spec = train.group_spec
        self.grouping = adapters.grouping(self.spec, cfg)
        self.num_classes = int(train.num_classes)
        self.in_channels = int(train.in_channels)
        self.spatial_dims = int(train.spatial_dims)
        self.channel_source = getattr(train, "channel_source", "native")
        self.train_source: BatchSource = device_source(
            make_source(train, cfg.data.cache, cfg.data.num_workers), self.device
        )
        self.val_source: BatchSource = device_source(
            make_source(self.datasets["val"], cfg.data.cache, cfg.data.num_workers), self.device
        )
        first = self.datasets["train"][0]
        self.image_shape = list(first["image"].shape)

    def use_datasets(self, datasets: dict[str, Any]) -> None:
        """The same cases with a derived attribute (subclasses): spec, grouping, sources' codes follow."""
        self.datasets, self.spec = datasets, datasets["train"].group_spec
        self.grouping = adapters.grouping(self.spec, self.cfg)
        for source, split in ((self.train_source, "train"), (self.val_source, "val")):
            old = getattr(source, "codes", None)
            source.codes = datasets[split].codes.to(old.device if old is not None else "cpu")  # type: ignore[attr-defined]

    @property
    def audit_attributes(self) -> list[str]:
        return audited_attributes(self.cfg, self.spec)

    @property
    def amp_dtype(self) -> Optional[torch.dtype]:
        amp = self.cfg.train.amp
        if self.device.type != "cuda" or amp == "off":
            return None
        if amp == "fp16" or (amp == "auto" and not torch.cuda.is_bf16_supported()):
            return torch.float16
        return torch.bfloat16

    def _build_model(self) -> None:
        cfg = self.cfg
        first = first_stage_of(self)
        self.model = adapters.build_model(
            cfg.model.name,
            cfg.model.args,
            in_channels=self.in_channels,
            num_classes=self.num_classes,
            num_groups=self.grouping.route_cards,
            image_shape=self.image_shape[1:],
        ).to(self.device)
        self.channels_last = bool(cfg.train.channels_last and self.device.type == "cuda" and self.spatial_dims == 2)
        if self.channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
        compile_model(self.model, cfg.train.compile)
        ids = self.grouping.group_ids(self.datasets["train"].codes)
        context = ObjectiveContext(
            num_groups=self.grouping.num_groups,
            group_counts=tuple(torch.bincount(ids[ids >= 0], minlength=self.grouping.num_groups).tolist()),
            feature_dim=getattr(self.model, "feature_dim", None),
            loss=dict(cfg.objective.loss),
            first_stage=first,
        )
        self.objective = adapters.build_objective(cfg.objective.name, cfg.objective.args, context).to(self.device)
        self.sample_weights = self._sample_weights(ids)
        if first is not None:
            report_subgroups(self, first)
        self.loss_fn = adapters.build_loss(cfg.objective.loss).to(self.device)
        self.step_module = StepModule(self.model, self.loss_fn, self.objective, cfg.model.aux_loss_weight)
        self.ddp: nn.Module = self.step_module
        if self.info.enabled:
            from torch.nn.parallel import DistributedDataParallel as DDP

            from duetfair.models.registry import moe_kind

            # MoE layers leave unselected experts without gradient in a step
            unused = moe_kind(cfg.model.name) != "none" or any(True for _ in self.objective.parameters())
            devices = [self.device.index] if self.device.type == "cuda" else None
            self.ddp = DDP(self.step_module, device_ids=devices, find_unused_parameters=unused)

    def _sample_weights(self, group_ids: torch.Tensor) -> Optional[torch.Tensor]:
        """Per-case sampling weights ``[N]``: the objective's own (JTT, subclass DRO), else those
        of ``train.balance_by`` (``None``: a plain permutation)."""
        by = self.cfg.train.balance_by
        own = self.objective.sampling_weights(self.datasets["train"].case_ids)
        if own is not None:
            require(
                by is None,
                f"config train.balance_by: objective '{self.cfg.objective.name}' decides how often "
                f"cases are drawn itself; remove balance_by ('{by}')",
            )
            return own
        if by is None:
            return None
        if by == "groups":
            return group_balanced_weights(group_ids)
        attrs = self.spec.attributes
        require(by in attrs, f"config train.balance_by: '{by}' is not 'groups' or one of {attrs}")
        return group_balanced_weights(self.datasets["train"].codes[:, attrs.index(by)])

    def _build_optim(self) -> None:
        cfg = self.cfg
        params = [p for p in self.step_module.parameters() if p.requires_grad]
        lr = cfg.optim.lr
        if cfg.optim.lr_scale_batch:
            lr = lr * cfg.train.batch_size * self.info.world_size / cfg.optim.lr_scale_batch
        if cfg.optim.name == "sgd":
            self.optimizer: torch.optim.Optimizer = torch.optim.SGD(
                params, lr=lr, momentum=cfg.optim.momentum, weight_decay=cfg.optim.weight_decay
            )
        else:
            self.optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=cfg.optim.weight_decay)
        n_local = len(train_shard(torch.arange(len(self.train_source)), self.info))
        bs = cfg.train.batch_size
        self.drop_last = n_local > bs
        self.steps_per_epoch = n_local // bs if self.drop_last else 1
        total = self.steps_per_epoch * cfg.train.epochs
        warmup = int(round(cfg.schedule.warmup_epochs * self.steps_per_epoch))
        sch = cfg.schedule
        self.scheduler = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, total, warmup, sch.name, sch.power, sch.min_lr_ratio)
        )
        self.scaler = torch.amp.GradScaler("cuda", enabled=self.amp_dtype == torch.float16)

    # ---- checkpoints -----------------------------------------------------------------------
    def _state(self) -> dict[str, Any]:
        rng = gather_objects(capture_rng(self.generator), self.info)
        return {
            "model": self.model.state_dict(),
            "objective": self.objective.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "scaler": self.scaler.state_dict(),
            "rng": rng,
            "epoch": self.epoch,
            "epoch_step": self.epoch_step,
            "epoch_loss": [float(self._loss_sum), int(self._loss_n)],
            "global_step": self.global_step,
            "best_score": self.best_score,
            "best_epoch": self.best_epoch,
            "history": [
                {k: (v if isinstance(v, (int, float)) else str(v)) for k, v in row.items()} for row in self.history
            ],
            "config_hash": self.cfg.config_hash(),
            "select": self.cfg.select_rule.value,
        }

    def _save(self, name: str, state: Optional[dict[str, Any]] = None) -> None:
        state = state if state is not None else self._state()
        if self.info.is_main:
            save_checkpoint(self.run.checkpoints / name, state)
        barrier()
        self.events.on_checkpoint(self, name, self.run.checkpoints / name)

    def _load_last(self) -> None:
        state = load_checkpoint(self.run.checkpoint("last"), map_location=self.device)
        require(
            state.get("config_hash") == self.cfg.config_hash(),
            f"--resume: {self.run.checkpoint('last')} was trained with a different config "
            f"(hash {state.get('config_hash')} vs {self.cfg.config_hash()}); resume with the run's config.yaml",
        )
        self.model.load_state_dict(state["model"])
        self.objective.load_state_dict(state["objective"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        self.scaler.load_state_dict(state["scaler"])
        rng = state["rng"]
        restore_rng(rng[self.info.rank] if len(rng) == self.info.world_size else rng[0], self.generator)
        self.epoch = int(state["epoch"])
        self.epoch_step = int(state["epoch_step"])
        self._loss_sum, self._loss_n = float(state["epoch_loss"][0]), int(state["epoch_loss"][1])
        self.global_step = int(state["global_step"])
        self.best_score = float(state["best_score"])
        self.best_epoch = int(state["best_epoch"])
        self.history = [dict(r) for r in state["history"]]

    # ---- public ----------------------------------------------------------------------------
    def request_stop(self) -> None:
        """Stop at the next step boundary, keeping a resumable checkpoint (what Ctrl-C does)."""
        self._stop = True

    def fit(self) -> TrainResult:
        """Train until ``train.epochs`` or a stop request; returns the outcome. The main process
        holds the run folder's lock throughout (a second writer is refused)."""
        with self.run.lock("duetfair train") if self.info.is_main else contextlib.nullcontext():
            return self._fit()

    def _fit(self) -> TrainResult:
        self._write_run_files(status="running")
        old = install_stop_handler(self)
        try:
            with progress_display(bars=self.cfg.train.progress and self.info.is_main) as progress:
                self.console = progress.console
                self.events = CallbackList([*self._own_callbacks(), *self.callbacks])
                status = self._run_epochs(progress)
        finally:
            if old is not None:
                signal.signal(signal.SIGINT, old)
        self._write_run_files(status=status)
        return TrainResult(
            self.run_dir,
            status,
            self.epoch,
            self.global_step,
            self.best_epoch,
            self.best_score,
            pd.DataFrame(self.history),
        )

    def _own_callbacks(self) -> list[Callback]:
        """The objective's validation feedback; on the main process the epoch lines and TensorBoard."""
        own: list[Callback] = [ObjectiveFeedback()]
        if self.info.is_main and self.cfg.train.log_every_epoch:
            own.append(EpochLines(self.console))
        if self.info.is_main and self.cfg.train.tensorboard:
            own.append(TensorBoardScalars(self.run.tensorboard))
        return own

    def _run_epochs(self, progress: Any) -> Literal["completed", "interrupted"]:
        """Train epoch by epoch until ``train.epochs`` or a stop request."""
        if self.info.is_main and self.determinism.note:
            self.console.print(self.determinism.note, highlight=False, markup=False, soft_wrap=True)
        task = progress.add_task(
            "epoch", total=self.cfg.train.epochs * self.steps_per_epoch, completed=self.global_step
        )
        self.events.on_fit_start(self)
        try:
            while self.epoch < self.cfg.train.epochs:
                if not self._train_epoch(progress, task):
                    return "interrupted"
                self._end_epoch()
                if self._stop:
                    return "interrupted"
            return "completed"
        finally:
            self.events.on_fit_end(self)

    # ---- loop ------------------------------------------------------------------------------
    def _train_epoch(self, progress: Any, task: Any) -> bool:
        """Train the rest of the current epoch; False if stopped (checkpoint written)."""
        cfg = self.cfg
        self.ddp.train()
        order = train_shard(epoch_order(len(self.train_source), cfg.seed, self.epoch, self.sample_weights), self.info)
        bs = cfg.train.batch_size
        limit = self.steps_per_epoch * bs if self.drop_last else order.numel()
        order = order[self.epoch_step * bs : limit]
        if self.epoch_step == 0:
            self._loss_sum, self._loss_n = 0.0, 0
        t0 = time.perf_counter()
        # losses are read one step late, so the host queues step t + 1 before it waits for step t
        monitor = LossMonitor(self.device)
        for batch in self.train_source.batches(order, bs, drop_last=self.drop_last):
            self._account(monitor.push(self._step(batch)), progress, task)
            self.epoch_step += 1
            self.global_step += 1
            self.events.on_step_end(self)
            if self._stop_requested() and self.epoch_step < self.steps_per_epoch:
                self._account(monitor.drain(), progress, task)
                self._save("last.pt")
                return False
        self._account(monitor.drain(), progress, task)
        self._epoch_time = time.perf_counter() - t0
        return True

    def _account(self, loss: Optional[float], progress: Any, task: Any) -> None:
        """Add the loss of the step before the current one to the epoch's mean (refusing a
        non-finite loss) and advance the progress display; ``None``: nothing to account yet."""
        if loss is None:
            return
        self._loss_n += 1  # the accounted step's number in the epoch (resume keeps the count)
        if not math.isfinite(loss):
            raise NonFiniteLossError(
                f"training loss is {loss} at epoch {self.epoch + 1} step {self._loss_n}; stopped. "
                f"Last good checkpoint: {self._last_good()}. Try a lower optim.lr, optim.grad_clip or train.amp=off"
            )
        self._loss_sum += loss
        description = f"epoch {self.epoch + 1}/{self.cfg.train.epochs} loss {loss:.4f}"
        progress.update(task, advance=1, description=description)

    def _stop_requested(self) -> bool:
        flag = torch.tensor([1.0 if self._stop else 0.0])
        if self.info.enabled:
            flag = all_reduce_mean(flag.to(self.device) if self.device.type == "cuda" else flag).cpu()
        self._stop = bool(flag.item() > 0)
        return self._stop

    def _step(self, batch: Any) -> torch.Tensor:
        """One optimiser step; returns the batch's loss (averaged over ranks) as a detached scalar
        tensor on the device, read later by :class:`LossMonitor` (no host sync here)."""
        cfg = self.cfg
        image, label = batch.image.to(self.device, non_blocking=True), batch.label.to(self.device, non_blocking=True)
        if cfg.augment.enabled:
            image, label = augment_batch(image, label, self.generator, cfg.augment.flip_prob, cfg.augment.rot90_prob)
        if self.channels_last:
            image = image.contiguous(memory_format=torch.channels_last)
        codes = batch.codes.to(self.device, non_blocking=True)
        with autocast_context(self.device, self.amp_dtype):
            total = self.ddp(
                image, label, self.grouping.route_codes(codes), self.grouping.group_ids(codes), batch.case_ids
            )
        value = all_reduce_mean(total.detach(), self.info)
        self.optimizer.zero_grad(set_to_none=True)
        self.scaler.scale(total).backward()
        if cfg.optim.grad_clip:
            self.scaler.unscale_(self.optimizer)
            torch.nn.utils.clip_grad_norm_(self.step_module.parameters(), cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.scheduler.step()
        return value

    def _last_good(self) -> str:
        last = self.run.checkpoint("last")
        return f"{last} (epoch {self.epoch})" if last.is_file() else "none (failed in the first epoch)"

    def _end_epoch(self) -> None:
        """Validate (every ``train.val_every`` epochs and the last), select, checkpoint, write the history."""
        t0 = time.perf_counter()
        average_buffers(self.model, self.info)
        row: dict[str, Any] = {
            H.EPOCH: self.epoch + 1,
            H.STEP: self.global_step,
            H.LR: float(self.optimizer.param_groups[0]["lr"]),
            H.TRAIN_LOSS: self._loss_sum / max(self._loss_n, 1),
            H.EPOCH_SECONDS: self._epoch_time,
        }
        if (self.epoch + 1) % self.cfg.train.val_every == 0 or self.epoch + 1 == self.cfg.train.epochs:
            row.update(self._validate())
        row.update({H.objective_column(k): float(v) for k, v in self.objective.log_values().items()})
        self.epoch += 1
        self.epoch_step = 0
        score = row.get(H.SCORE, math.nan)
        improved = math.isfinite(score) and score > self.best_score
        if improved:
            self.best_score, self.best_epoch = float(score), self.epoch
        row[H.BEST_EPOCH] = self.best_epoch
        self.history.append(row)
        self.validation_seconds = time.perf_counter() - t0
        state = self._state()
        if improved:
            keep = {"model": state["model"], "epoch": self.epoch, "score": self.best_score}
            self._save("best.pt", {**keep, "select": self.cfg.select_rule.value, "config_hash": state["config_hash"]})
        self._save("last.pt", state)
        if self.info.is_main:
            self._write_history()
        self.events.on_epoch_end(self, row)

    @property
    def eval_batch_size(self) -> int:
        return self.cfg.train.eval_batch_size or self.cfg.train.batch_size

    def case_metrics(
        self, source: BatchSource, *, metrics: tuple[str, ...] = ("dice", "iou"), descriptors: bool = False
    ) -> pd.DataFrame:
        """Per-case, per-class ``metrics`` (and descriptors) of the current model on ``source``."""
        return metrics_table(
            self.model,
            source,
            num_classes=self.num_classes,
            device=self.device,
            batch_size=self.eval_batch_size,
            route_fn=self.grouping.route_codes,
            metrics=metrics,
            info=self.info,
            amp_dtype=self.amp_dtype,
            channels_last=self.channels_last,
            descriptors=descriptors,
        )

    def _validate(self) -> dict[str, Any]:
        """Validation per-case Dice/IoU -> overall, worst-group and ES-Dice, selection score."""
        table = self.case_metrics(self.val_source)
        cases = case_level(attach_metadata(table, self.datasets["val"].meta, self.spec))
        row = validation_row(
            cases, by=self.grouping.by, spec=self.spec, es_variant=self.cfg.eval.es_variant, rule=self.cfg.select_rule
        )
        self.events.on_validation_end(self, row, cases)  # the objective's feedback first
        return row

    # ---- output ----------------------------------------------------------------------------
    def _write_history(self) -> None:
        with atomic_path(self.run.history) as tmp:
            pd.DataFrame(self.history).to_csv(tmp, index=False)

    def _write_run_files(self, status: Literal["running", "completed", "interrupted"]) -> None:
        if not self.info.is_main:
            return
        self.run_dir.mkdir(parents=True, exist_ok=True)
        save_config(self.cfg, self.run.config)
        self.spec.save(self.run.group_spec)
        cfg = self.cfg
        self.run.write_record(
            RunRecord(
                status=status,
                name=cfg.name,
                method=cfg.method,
                model=cfg.model.name,
                objective=cfg.objective.name,
                select=cfg.select_rule,
                epochs_done=self.epoch,
                global_step=self.global_step,
                best_epoch=self.best_epoch,
                best_score=self.best_score if math.isfinite(self.best_score) else None,
                num_classes=self.num_classes,
                in_channels=self.in_channels,
                spatial_dims=self.spatial_dims,
                image_shape=self.image_shape,
                channel_source=self.channel_source,
                group_attribute=cfg.data.group_attribute,
                route_attributes=list(self.grouping.route) if self.grouping.route else None,
                pid=os.getpid(),
                host=socket.gethostname(),
                group_names=self.grouping.names,
                num_groups=self.grouping.num_groups,
                world_size=self.info.world_size,
                device=str(self.device),
                config_hash=cfg.config_hash(),
            )
        )


def train(
    cfg: ExperimentConfig,
    run_dir: Optional[str | Path] = None,
    *,
    resume: bool = False,
    hooks: Optional[list[Hook]] = None,
    callbacks: Optional[Sequence[Callback]] = None,
) -> TrainResult:
    """Build a :class:`Trainer` and run it (``duetfair train``); see :class:`Trainer` for the arguments."""
    return Trainer(cfg, run_dir, resume=resume, hooks=hooks, callbacks=callbacks).fit()
