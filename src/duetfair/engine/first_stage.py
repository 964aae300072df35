"""The first training run of a two-stage objective (Just Train Twice, subclass DRO).

:func:`first_stage` trains the run's model with the plain ERM loss for ``objective.first_stage``
epochs in ``RUN/first_stage/`` (an ordinary run folder: checkpoints, history, resume), then
describes every training case under that model (:class:`~duetfair.objectives.stage.FirstStageCases`:
case-level Dice, case descriptors, pooled features) and saves it there. A finished first stage is
reused: resuming the main run, or re-running it, never trains it twice.

:func:`write_subgroup_report` writes what the objective made of it, ``RUN/first_stage/subgroups.csv``
(one row per training case: group, subgroup, first-stage Dice, hidden flag when the data knows
it) and ``RUN/first_stage/subgroup_summary.csv`` (per group and subgroup: cases, mean Dice and,
with a hidden column, how many hidden cases it holds, its purity and its recall).
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from duetfair.engine.config import ExperimentConfig, validate
from duetfair.engine.subclasses import SUBCLASS
from duetfair.errors import require
from duetfair.objectives.stage import FirstStageCases

__all__ = [
    "first_stage",
    "first_stage_of",
    "report_subgroups",
    "first_stage_config",
    "write_subgroup_report",
    "summarize_subgroups",
    "FOLDER",
]

FOLDER = "first_stage"


def first_stage_config(cfg: ExperimentConfig, folder: Path) -> ExperimentConfig:
    """The first stage's config: ``cfg`` with the ERM loss, natural batches, overall-Dice selection,
    routing on the groups only (no subclasses yet) and ``objective.first_stage`` epochs (the
    learning-rate schedule spans those epochs)."""
    require(
        cfg.objective.first_stage is not None,
        f"objective '{cfg.objective.name}'{' with model.subclasses' if cfg.model.subclasses else ''} "
        "needs objective.first_stage",
    )
    assert cfg.objective.first_stage is not None
    raw = copy.deepcopy(cfg.to_dict())
    raw.update(method=None, name=f"{cfg.name}_first_stage", output_dir=str(folder))
    raw["objective"] = {"name": "erm", "args": {}, "loss": raw["objective"]["loss"]}
    route = [a for a in raw["model"].get("route_attributes") or [] if a != SUBCLASS]
    raw["model"].update(subclasses=None, route_attributes=route or None)  # routes on the groups only
    epochs = cfg.objective.first_stage.resolve_epochs(cfg.train.epochs)
    raw["train"].update(epochs=epochs, balance_by=None, select="overall")
    return validate(raw)


def first_stage_of(trainer: Any) -> FirstStageCases | None:
    """The first stage of ``trainer``'s objective (trained or reused), ``None`` when the objective
    has none. The main run then starts from the random state it would have without a first stage
    (same model initialisation, exact resume)."""
    from duetfair.engine.acceleration import seed_everything
    from duetfair.engine.subclasses import route_on_subclasses

    cfg = trainer.cfg
    if not cfg.needs_first_stage:
        return None
    first = first_stage(cfg, trainer.run_dir, trainer.datasets)
    if cfg.model.subclasses is not None:
        route_on_subclasses(trainer, first)
    seed_everything(cfg.seed + trainer.info.rank, trainer.determinism.enabled)
    trainer.generator = torch.Generator().manual_seed(cfg.seed * 7919 + trainer.info.rank)
    return first


def report_subgroups(trainer: Any, first: FirstStageCases) -> None:
    """Write the subgroups ``trainer``'s objective found (main process only; nothing when it found none)."""
    found = trainer.objective.case_subgroups()
    if found is None or not trainer.info.is_main:
        return
    train = trainer.datasets["train"]
    hidden = getattr(train, "hidden_flags", None) or [-1] * len(train)
    write_subgroup_report(trainer.run_dir, found, first, group_names=trainer.grouping.names, hidden=hidden)


def first_stage(cfg: ExperimentConfig, run_root: Path, datasets: dict[str, Any]) -> FirstStageCases:
    """Train (or reuse) the first stage of ``cfg``'s run in ``run_root/first_stage`` and describe
    its training cases (the datasets are the main run's, shared)."""
    from duetfair.engine.trainer import Trainer

    folder = run_root / FOLDER
    stage_cfg = first_stage_config(cfg, folder)
    saved = FirstStageCases.load(folder)
    if saved is not None and _finished(folder, stage_cfg):
        return saved  # no model built, no checkpoint read
    trainer = Trainer(stage_cfg, folder, resume=(folder / "checkpoints" / "last.pt").is_file(), datasets=datasets)
    trainer.fit()
    require(
        trainer.epoch >= stage_cfg.train.epochs,
        f"first stage in {folder} stopped after {trainer.epoch} of {stage_cfg.train.epochs} epochs; resume the run",
    )
    cases = describe_training_cases(trainer)
    if trainer.info.is_main:
        cases.save(folder)
    return cases


def _finished(folder: Path, stage_cfg: ExperimentConfig) -> bool:
    """The first stage in ``folder`` completed all its epochs with this very config."""
    from duetfair.rundir import RunDir

    run = RunDir(folder)
    if not run.record.is_file():
        return False
    record = run.read_record()
    done = record.status == "completed" and record.epochs_done >= stage_cfg.train.epochs
    return done and record.config_hash == stage_cfg.config_hash()


@torch.no_grad()
def describe_training_cases(trainer: Any) -> FirstStageCases:
    """Dice, descriptors and pooled features of every training case under ``trainer``'s model."""
    from duetfair.metrics.cases import case_level

    train = trainer.datasets["train"]
    table = trainer.case_metrics(trainer.train_source, metrics=("dice",), descriptors=True)
    cases = case_level(table, ("dice",))
    cases = cases.set_index("case_id").reindex(train.meta["case_id"].astype(str)).reset_index()
    groups = trainer.grouping.group_ids(train.codes).numpy()
    cases.insert(1, "group", groups)
    return FirstStageCases(cases, _features(trainer, trainer.eval_batch_size))


def _features(trainer: Any, batch_size: int) -> np.ndarray:
    """``[N, F]`` pooled encoder features of every training case, in split order (every rank)."""
    from duetfair.engine.inference import pooled_features

    return pooled_features(
        trainer.model,
        trainer.train_source,
        device=trainer.device,
        batch_size=batch_size,
        route_fn=trainer.grouping.route_codes,
        amp_dtype=trainer.amp_dtype,
    )


def summarize_subgroups(subgroups: pd.DataFrame) -> pd.DataFrame:
    """Per (group, subgroup): ``n``, ``mean_dice`` and, when ``hidden`` is known, ``hidden`` cases,
    ``purity`` (hidden share of the subgroup) and ``recall`` (share of the group's hidden cases in
    it). ``subgroups``: one row per case with ``group``, ``subgroup``, ``dice`` and optionally ``hidden``."""
    keys = ["group", "subgroup"]
    out = subgroups.groupby(keys, sort=True).agg(n=("case_id", "size"), mean_dice=("dice", "mean")).reset_index()
    if "hidden" in subgroups.columns and (subgroups["hidden"] >= 0).any():
        known = subgroups[subgroups["hidden"] >= 0]
        hid = known.groupby(keys)["hidden"].agg(["sum", "size"]).rename(columns={"sum": "hidden", "size": "known"})
        out = out.merge(hid.reset_index(), on=keys, how="left")
        per_group = known.groupby("group")["hidden"].sum()
        out["purity"] = out["hidden"] / out["known"]
        out["recall"] = out["hidden"] / out["group"].map(per_group).replace(0, np.nan)
        out = out.drop(columns="known")
    return out


def write_subgroup_report(
    run_root: Path, found: pd.DataFrame, first: FirstStageCases, *, group_names: list[str], hidden: list[int]
) -> pd.DataFrame:
    """Write ``subgroups.csv`` and ``subgroup_summary.csv`` into ``run_root/first_stage`` (see the
    module docstring); returns the summary. ``hidden``: per training case 1 / 0 / -1 (unknown)."""
    from duetfair.io import atomic_path

    per_case = first.cases[["case_id", "group", "dice"]].copy()
    per_case["group"] = [group_names[g] if g >= 0 else "unknown" for g in per_case["group"]]
    per_case["hidden"] = np.asarray(hidden, dtype=np.int64)
    per_case = per_case.merge(found, on="case_id", how="left")
    summary = summarize_subgroups(per_case)
    folder = run_root / FOLDER
    for name, frame in (("subgroups.csv", per_case), ("subgroup_summary.csv", summary)):
        with atomic_path(folder / name) as tmp:
            frame.to_csv(tmp, index=False)
    return summary
