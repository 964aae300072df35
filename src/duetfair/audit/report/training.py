"""The training section of a run's report: overall and worst-group validation Dice per epoch with
the selected epoch marked, and the objective's state per epoch (``obj/...`` columns of
``history.csv``, e.g. GroupDRO / FairDRO group weights). Input: :class:`TrainingView`; template
``training.html``."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from typing import Any, Mapping, Sequence

import pandas as pd

from duetfair import history as H
from duetfair.audit.formatting import fmt
from duetfair.audit.report.figures import figure, style
from duetfair.audit.report.section import ReportData, Section
from duetfair.audit.report.tables import Table


@dataclass
class TrainingView:
    """The training section of a run's report.

    Attributes:
        history: ``history.csv`` of the run (``epoch``, ``val_dice``, ``val_worst_dice``,
            ``best_epoch``, ``obj/...``).
        best_epoch: the selected epoch (marked in the curves).
        select: the selection rule (``overall``, ``worst_group``, ``es``).
        group_names: names of the objective's group ids (labels of ``obj/<name>_<id>``).
        objective: the objective's name.
        subgroups: ``first_stage/subgroup_summary.csv`` of a two-stage run (per group and
            subgroup: ``n``, ``mean_dice`` and, with a known hidden subtype, ``hidden``,
            ``purity``, ``recall``); None for other runs.
    """

    history: pd.DataFrame
    best_epoch: int | None = None
    select: str | None = None
    group_names: list[str] = field(default_factory=list)
    objective: str | None = None
    subgroups: pd.DataFrame | None = None

    @classmethod
    def from_run(cls, run_dir: str | os.PathLike[str]) -> "TrainingView | None":
        """The view of a run folder (``history.csv``, ``run.json``); None without a readable history."""
        from duetfair.errors import DuetfairError
        from duetfair.rundir import RunDir

        run = RunDir(run_dir)
        if not run.history.is_file():
            return None
        try:
            history = pd.read_csv(run.history)
        except (OSError, ValueError):
            return None
        if "epoch" not in history.columns or history.empty:
            return None
        try:
            record = run.read_record() if run.record.is_file() else None
        except DuetfairError:
            record = None
        best = record.best_epoch if record is not None else None
        if (best is None or best < 1) and "best_epoch" in history.columns:
            last = pd.to_numeric(history["best_epoch"], errors="coerce").dropna()
            best = int(last.iloc[-1]) if len(last) else None
        return cls(
            history,
            best_epoch=best if best is not None and best > 0 else None,
            select=record.select if record is not None else None,
            group_names=list(record.group_names) if record is not None else [],
            objective=record.objective if record is not None else None,
            subgroups=_read_optional(run.root / "first_stage" / "subgroup_summary.csv"),
        )


def _read_optional(path: Any) -> pd.DataFrame | None:
    """A small CSV the run may have, None when it is missing or unreadable (the report still renders)."""
    try:
        return pd.read_csv(path) if path.is_file() else None
    except (OSError, ValueError):
        return None


def subgroup_table(summary: pd.DataFrame) -> Table:
    """The first stage's subgroups per group: cases, first-stage Dice and, with a known hidden
    subtype, its cases, purity and recall."""
    known = "purity" in summary.columns
    header = ["group", "subgroup", "cases", "first-stage Dice"] + (
        ["hidden cases", "purity", "recall"] if known else []
    )
    rows = []
    for _, r in summary.iterrows():
        row = [str(r["group"]), str(r["subgroup"]), str(int(r["n"])), fmt(r["mean_dice"])]
        if known:
            hidden = "" if pd.isna(r["hidden"]) else str(int(r["hidden"]))
            row += [hidden, fmt(r["purity"]), fmt(r["recall"])]
        rows.append(row)
    return Table.of(
        header,
        rows,
        caption="Subgroups found by the first stage (training cases)",
        note="Purity: share of the subgroup that is of the hidden subtype; recall: share of the group's "
        "hidden cases it holds (only where the data knows the subtype; the method never sees it).",
    )


def _epoch_axis(ax: Any, epochs: pd.Series) -> None:
    from matplotlib.ticker import MaxNLocator

    last = float(epochs.max()) if epochs.notna().any() else 1.0
    ax.set_xlim(0.5, last + 0.5)
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel("epoch")


def plot_learning_curves(history: pd.DataFrame, best_epoch: int | None, select: str | None = None) -> Any:
    """Figure: overall, worst-group (and ES) validation Dice per epoch; the selected epoch marked."""
    fig = figure(5.6, 3.2)
    ax = fig.add_subplot()
    epochs = pd.to_numeric(history["epoch"], errors="coerce")
    series = [(H.VAL_DICE, "overall"), (H.VAL_WORST_DICE, "worst group"), (H.VAL_ES_DICE, "ES-Dice")]
    for i, (col, label) in enumerate(c for c in series if c[0] in history.columns):
        v = pd.to_numeric(history[col], errors="coerce")
        ok = v.notna() & epochs.notna()
        if not ok.any():
            continue
        ax.plot(epochs[ok], v[ok], lw=1.5, ms=4, label=label, **style(i))
        if best_epoch is not None and best_epoch > 0 and (epochs[ok] == best_epoch).any():
            ax.plot([best_epoch], [float(v[ok][epochs[ok] == best_epoch].iloc[0])], "*", ms=11, color="black")
    if best_epoch is not None and best_epoch > 0:
        ax.axvline(best_epoch, color="black", ls=(0, (4, 2)), lw=1)
        late = epochs.notna().any() and best_epoch > 0.6 * float(epochs.max())
        ax.annotate(
            f"selected: epoch {best_epoch}" + (f" ({select})" if select else ""),
            xy=(best_epoch, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(-4 if late else 4, -4),
            textcoords="offset points",
            va="top",
            ha="right" if late else "left",
            fontsize=8,
        )
    _epoch_axis(ax, epochs)
    ax.set_ylabel("validation Dice")
    ax.set_title("learning curves: overall vs worst-group validation Dice", fontsize=10)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(alpha=0.3)
    return fig


OBJECTIVE_STATE = {
    "q": "group weights q (GroupDRO / FairDRO)",
    "scale": "group scales (FEBS)",
    "group_value": "robust value R_g per group (FairDRO)",
    "group_dice_loss": "group Dice loss (FEBS)",
}
"""Display names of per-group objective state logged as ``obj/<name>_<group id>``."""


def objective_families(history: pd.DataFrame) -> dict[str, list[tuple[str, int | None]]]:
    """``obj/...`` columns of a history grouped by name: ``{"q": [("obj/q_0", 0), ...], ...}``
    (scalars such as ``obj/max_weight`` under their own name, group id None)."""
    out: dict[str, list[tuple[str, int | None]]] = {}
    for col in history.columns:
        if not str(col).startswith("obj/") or not pd.to_numeric(history[col], errors="coerce").notna().any():
            continue
        m = re.fullmatch(r"obj/(.+)_(\d+)", str(col))
        name, gid = (m.group(1), int(m.group(2))) if m else (str(col)[4:], None)
        out.setdefault(name, []).append((str(col), gid))
    return out


def plot_objective_state(
    history: pd.DataFrame, name: str, columns: Sequence[tuple[str, int | None]], group_names: Sequence[str] = ()
) -> Any:
    """Figure: one ``obj/`` quantity per epoch, one line per group (labelled at its end)."""
    fig = figure(5.6, 3.2)
    ax = fig.add_subplot()
    epochs = pd.to_numeric(history["epoch"], errors="coerce")
    for i, (col, gid) in enumerate(columns):
        v = pd.to_numeric(history[col], errors="coerce")
        ok = v.notna() & epochs.notna()
        label = name if gid is None else (group_names[gid] if gid < len(group_names) else f"group {gid}")
        ax.plot(epochs[ok], v[ok], lw=1.4, ms=4, label=label, **style(i))
    _epoch_axis(ax, epochs)
    ax.set_ylabel(name)
    ax.set_title(f"objective state: {OBJECTIVE_STATE.get(name, name)}", fontsize=10)
    ax.legend(fontsize=8, loc="best")
    ax.grid(alpha=0.3)
    return fig


def _selected(training: TrainingView) -> dict[str, Any] | None:
    """Validation numbers of the selected epoch (formatted), None without one."""
    h = training.history
    selected = None
    if training.best_epoch is not None:
        rows = h[pd.to_numeric(h["epoch"], errors="coerce") == training.best_epoch]
        if len(rows):
            r = rows.iloc[0]
            selected = {
                k: fmt(r[c])
                for k, c in (("dice", H.VAL_DICE), ("worst", H.VAL_WORST_DICE), ("es", H.VAL_ES_DICE))
                if c in h.columns
            }
            if H.VAL_WORST_GROUP in h.columns:
                selected["worst_group"] = str(r[H.VAL_WORST_GROUP])
    return selected


def figures(data: ReportData) -> dict[str, Any]:
    """``training/curves`` and ``training/obj/<name>`` (at most 4 quantities)."""
    training = data.training
    if training is None:
        return {}
    figs = {"training/curves": plot_learning_curves(training.history, training.best_epoch, training.select)}
    for name, cols in list(objective_families(training.history).items())[:4]:
        figs[f"training/obj/{name}"] = plot_objective_state(training.history, name, cols, training.group_names)
    return figs


def context(data: ReportData, figs: Mapping[str, Any]) -> dict[str, Any] | None:
    """``training``: epochs, the selection and the objective's figure keys; None without a view."""
    training = data.training
    if training is None:
        return None
    h = training.history
    families = [k for k in figs if k.startswith("training/obj/")]
    return {
        "training": {
            "best_epoch": training.best_epoch,
            "select": training.select,
            "objective": training.objective,
            "epochs": int(pd.to_numeric(h["epoch"], errors="coerce").max()),
            "selected": _selected(training),
            "families": families,
            "names": {k: OBJECTIVE_STATE.get(k.split("/")[-1], k.split("/")[-1]) for k in families},
            "subgroups": None if training.subgroups is None else subgroup_table(training.subgroups),
        }
    }


SECTION = Section(
    name="training",
    template="training.html",
    context=context,
    nav=lambda ctx: [("training", "Training")],
    figures=figures,
)
