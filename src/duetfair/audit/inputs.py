"""Audit inputs from other tools: per-case scores + a metadata table -> the per-case table, audited.

Three sources give the per-case table of ``duetfair evaluate`` (``case_id``, ``class``, metric
columns, ``n_ref`` / ``n_pred`` where known):

* folders of predicted and reference masks: :func:`duetfair.metrics.folders.score_folders`;
* nnU-Net v2's ``summary.json`` (:func:`read_nnunet_summary`): ``metric_per_case`` entries with
  ``prediction_file``, ``reference_file`` and ``metrics`` per label (``"1"``) or region
  (``"(1, 2)"``) holding ``Dice``, ``IoU``, ``n_ref``, ``n_pred``, ...;
* MONAI per-case CSVs (:func:`read_monai_csv`): the ``<metric>_raw.csv`` files of MONAI's
  ``MetricsSaver`` / ``write_metrics_reports`` (``filename``, ``class0``, ``class1``, ..., ``mean``;
  ``classI`` is label ``I + 1``, the background excluded) or any CSV with an id column
  (``case_id`` or ``filename``), metric columns (``dice``, ``iou``, ``hd95``, ``nsd``) and an
  optional ``class`` column.

:func:`~duetfair.metrics.cases.join_metadata` (the owner of the per-case table; importable from here
too) adds the metadata columns by case id: metadata rows that match no case are
ignored with a warning (the metadata often covers the whole cohort and the predictions only the
test split); cases without a metadata row keep unknown attributes (they count in the overall mean
and in no group) and are counted. :func:`write_audit` audits the table and writes ``cases.csv``,
``audit.json``, ``audit.md`` and ``report.html``.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from duetfair.audit.checks import count_value, load_json_strict, numeric_column, score_value
from duetfair.data.groups import attribute_kind, known_values
from duetfair.errors import DuetfairError, require
from duetfair.io import read_table
from duetfair.metrics.cases import JoinReport, join_metadata  # noqa: F401 - the joiner's former home
from duetfair.metrics.registry import TABLE_METRICS as TABLE_METRICS  # re-exported: metric columns of per-case CSVs
from duetfair.options import HIDDEN_COLUMN

NNUNET_METRICS = {"Dice": "dice", "IoU": "iou", "n_ref": "n_ref", "n_pred": "n_pred"}
"""nnU-Net summary.json keys -> per-case table columns."""


# ---- case ids ----------------------------------------------------------------------------------


def canonical_id(value: Any) -> str:
    """Case id as text: stripped, ``12.0`` -> ``12``, a label-map extension removed (``a.nii.gz`` -> ``a``)."""
    from duetfair.metrics.folders import strip_suffix

    if isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer():
        value = int(value)
    text = str(value).strip()
    return strip_suffix(text) or text


def file_case_id(path: str, case_of: Callable[[str], str | None]) -> str | None:
    r"""Case id of a path written by another tool (its file name, ``/`` or ``\`` separated)."""
    name = re.split(r"[\\/]", str(path).strip())[-1]
    return case_of(name)


# ---- metadata ----------------------------------------------------------------------------------


def read_metadata(
    path: str | os.PathLike[str], id_column: str | None = None, *, missing: Sequence[str] = ()
) -> pd.DataFrame:
    """Metadata table (CSV, TSV, XLSX, Parquet) with its id column renamed ``case_id`` (first).

    The id column is ``id_column``, else ``case_id`` when present, else the first column. Ids are
    read and compared as text (``007`` stays ``007``; :func:`canonical_id`); a duplicate or empty
    id is an error. ``missing``: the table's own missing-value words (``NA``), see
    :func:`duetfair.io.read_table`.
    """
    df = read_table(
        path,
        text_columns=lambda cols: [id_column or ("case_id" if "case_id" in cols else cols[0])] if cols else [],
        missing=missing,
    )
    require(len(df.columns) > 0 and len(df) > 0, f"metadata {path}: the table is empty; expected one row per case")
    df.columns = [str(c).strip() for c in df.columns]
    col = id_column or ("case_id" if "case_id" in df.columns else df.columns[0])
    require(col in df.columns, f"--id-column '{col}': not a column of {path}; columns: {', '.join(df.columns)}")
    require(
        col == "case_id" or "case_id" not in df.columns,
        f"metadata {path}: has both 'case_id' and the id column '{col}'; rename one",
    )
    ids = df[col]
    if ids.isna().any():
        raise DuetfairError(
            f"metadata {path}: column '{col}' has an empty id in row {int(np.flatnonzero(ids.isna())[0]) + 2}"
        )
    df = df.drop(columns=[col])
    df.insert(0, "case_id", [canonical_id(v) for v in ids])
    dupes = df["case_id"][df["case_id"].duplicated()].unique().tolist()
    require(
        not dupes,
        f"metadata {path}: {len(dupes)} case ids appear twice in column '{col}', e.g. '{dupes[0] if dupes else ''}'",
    )
    return df


def choose_attributes(
    cases: pd.DataFrame,
    meta: pd.DataFrame,
    by: Sequence[str] | None = None,
    bins: Mapping[str, Any] | None = None,
) -> tuple[list[str], list[str]]:
    """Attributes to audit and notes on skipped columns.

    ``by`` given: each part of each spec must be a metadata column, and a continuous one (judged
    on the whole metadata table, :func:`attribute_kind`) needs bins. ``by`` None: every metadata
    column except ``case_id`` / ``hidden_subtype``; columns with fewer than 2 known values among
    the scored ``cases``, text columns with a distinct value in almost every case (identifiers) and
    continuous columns without ``bins`` are skipped with a note (naming ``--bins``).
    """
    bins = dict(bins or {})
    columns = [c for c in meta.columns if c not in ("case_id", HIDDEN_COLUMN)]
    for attr in bins:
        require(attr in columns, f"--bins {attr}: not a metadata column; metadata columns: {', '.join(columns)}")
    explicit = by is not None
    specs = list(by) if by is not None else columns
    chosen, notes = [], []
    one_per_case = cases.drop_duplicates("case_id")
    for spec in specs:
        parts = [p.strip() for p in spec.split("+")]
        for p in parts:
            require(
                p in columns,
                f"--by {spec}: '{p}' is not a metadata column; metadata columns: {', '.join(columns) or 'none'}",
            )
        continuous = [p for p in parts if p not in bins and attribute_kind(meta[p]) == "continuous"]
        if continuous and not explicit:  # a column nobody asked for must not stop the audit
            p = continuous[0]
            notes.append(
                f"attribute '{p}' skipped: continuous ({known_values(meta[p]).nunique()} distinct numbers); "
                f"audit it with --bins {p}=EDGE,EDGE,... (e.g. --bins {p}=40,60,80)"
            )
            continue
        for p in continuous:
            raise DuetfairError(
                f"attribute '{p}' is continuous ({known_values(meta[p]).nunique()} distinct numbers); bin it, "
                f"e.g. --bins {p}=40,60,80, or choose the attributes with --by"
            )
        if not explicit and attribute_kind(one_per_case[spec]) == "constant":
            notes.append(f"attribute '{spec}' skipped: fewer than 2 known groups among the scored cases")
            continue
        if not explicit and spec not in bins and _looks_like_id(one_per_case[spec]):
            notes.append(
                f"attribute '{spec}' skipped: a distinct value in almost every case (an identifier?); "
                "use --by to force it"
            )
            continue
        chosen.append(spec)
    require(
        len(chosen) > 0,
        "no attribute to audit: the metadata has no column with at least 2 groups among the scored cases",
    )
    return chosen, notes


def _looks_like_id(series: pd.Series) -> bool:
    values = known_values(series)
    return (
        len(values) >= 20
        and values.astype("string").nunique() > 0.5 * len(values)
        and pd.to_numeric(values, errors="coerce").isna().any()
    )


# ---- nnU-Net -----------------------------------------------------------------------------------


def _nnunet_ids(key: str, source: Path) -> tuple[int, ...]:
    """nnU-Net metrics key -> label ids: ``"3"`` (a label, or a single-label region) -> ``(3,)``,
    ``"(1, 2)"`` -> ``(1, 2)`` (nnU-Net's ``label_or_region_to_key`` is ``str()`` of either)."""
    try:
        return (int(key),)
    except ValueError:
        pass
    try:
        ids = tuple(int(v) for v in key.strip().strip("()").split(",") if v.strip())
    except ValueError:
        ids = ()
    require(len(ids) > 0, f"{source}: metrics key '{key}' is neither a label such as 3 nor a region such as (1, 2)")
    return ids


def _nnunet_selection(
    keys: Sequence[tuple[int, ...]],
    labels: Sequence[int] | None,
    regions: Mapping[tuple[int, ...], str],
    source: Path,
) -> dict[tuple[int, ...], Any]:
    """``{key ids: class}`` of the structures to keep: everything (regions named) without
    ``labels`` / ``regions``; else exactly those (only the regions when no labels are given, as
    for mask folders). A requested label or region that nnU-Net did not evaluate is an error."""
    present = list(dict.fromkeys(keys))
    shown = ", ".join(str(k[0]) if len(k) == 1 else str(k) for k in sorted(present, key=lambda k: (len(k) > 1, k)))

    def name(ids: tuple[int, ...]) -> Any:
        key = tuple(sorted(ids))
        if key in regions:
            return regions[key]
        return ids[0] if len(ids) == 1 else "+".join(map(str, ids))

    if labels is None and not regions:
        return {k: name(k) for k in present}
    wanted: dict[tuple[int, ...], Any] = {(int(v),): int(v) for v in labels or []}
    wanted.update({tuple(sorted(ids)): n for ids, n in regions.items()})
    by_sorted = {tuple(sorted(k)): k for k in present}
    missing = [ids for ids in wanted if ids not in by_sorted]
    if missing:
        ids = missing[0]
        what = f"--region {wanted[ids]}={'+'.join(map(str, ids))}" if ids in regions else f"--labels {ids[0]}"
        raise DuetfairError(
            f"{what}: nnU-Net's {source.name} has no such label or region; it has {shown} "
            f"(a region is named by its labels, e.g. --region wt=1+2+3 for '(1, 2, 3)', --region et=3 for '3')"
        )
    return {by_sorted[ids]: n for ids, n in wanted.items()}


def _nnunet_entries(entries: list[Any], case_of: Any, pattern: str | None, p: Path) -> list[tuple[str, dict[Any, Any]]]:
    """``(case id, {label ids: checked metrics})`` of every ``metric_per_case`` entry of summary ``p``."""
    cases = []
    for i, entry in enumerate(entries):
        require(
            isinstance(entry, dict) and isinstance(entry.get("metrics"), dict),
            f"{p}: metric_per_case[{i}] has no 'metrics'; expected nnU-Net v2's summary.json",
        )
        file = entry.get("prediction_file") or entry.get("reference_file")
        require(file is not None, f"{p}: metric_per_case[{i}] has neither 'prediction_file' nor 'reference_file'")
        cid = file_case_id(str(file), case_of)
        require(cid is not None, f"{p}: file name '{file}' does not match --pattern '{pattern}'")
        metrics = {
            _nnunet_ids(str(k), p): _nnunet_checked(v, f"{p}: metric_per_case[{i}].metrics['{k}']")
            for k, v in entry["metrics"].items()
        }
        cases.append((str(cid), metrics))
    return cases


def read_nnunet_summary(
    path: str | os.PathLike[str],
    *,
    pattern: str | None = None,
    label_names: Mapping[int, str] | None = None,
    regions: Mapping[tuple[int, ...], str] | None = None,
    labels: Sequence[int] | None = None,
) -> pd.DataFrame:
    """Per-case table of an nnU-Net v2 ``summary.json``: ``case_id``, ``class``, ``dice``, ``iou``, ``n_ref``,
    ``n_pred``.

    nnU-Net's Dice and IoU are NaN only when both masks are empty and 0 when one is (the default
    ``nnunet`` empty-mask policy of mask folders), so both inputs give the same table.

    Args:
        path: the ``summary.json`` of ``nnUNetv2_evaluate_folder`` / a validation folder.
        pattern: case-id rule applied to the prediction file names (see
            :mod:`duetfair.metrics.folders`; default: the name without its extension).
        label_names: label id -> name for the ``class`` column.
        regions: sorted label ids -> name of nnU-Net regions, single-label ones included
            (``{(1, 2, 3): "wt", (3,): "et"}``; default names ``1+2+3``, and the label id).
        labels: label ids to keep (default: every key; with ``regions`` and no ``labels`` only
            the regions). A label or region missing from the summary is an error.
    """
    from duetfair.metrics.folders import compile_pattern

    p = Path(path)
    require(p.is_file(), f"{p}: file not found; expected nnU-Net's summary.json")
    data = load_json_strict(p, "nnU-Net's summary.json")
    entries = data.get("metric_per_case") if isinstance(data, dict) else None
    require(
        isinstance(entries, list) and len(entries) > 0,
        f"{p}: no 'metric_per_case' list; expected nnU-Net v2's summary.json",
    )
    cases = _nnunet_entries(entries or [], compile_pattern(pattern), pattern, p)
    keep = _nnunet_selection([k for _, m in cases for k in m], labels, regions or {}, p)
    rows = [
        {
            "case_id": cid,
            "class": keep[ids],
            **{dst: values[src] for src, dst in NNUNET_METRICS.items() if src in values},
        }
        for cid, metrics in cases
        for ids, values in metrics.items()
        if ids in keep
    ]
    table = pd.DataFrame(rows)
    require("dice" in table.columns, f"{p}: no 'Dice' in the per-case metrics; expected nnU-Net v2's summary.json")
    return _finish(name_classes(_ordered(table, list(keep.values())), label_names), p)


def _nnunet_checked(values: Any, where: str) -> dict[str, float]:
    """The metrics of one label or region of an nnU-Net entry: an object whose Dice / IoU are numbers
    or null and whose voxel counts are whole numbers >= 0 (:mod:`duetfair.audit.checks`)."""
    require(isinstance(values, dict), f'{where}: expected an object of metrics such as {{"Dice": 0.9}}')
    counts = ("n_ref", "n_pred")
    return {
        src: (count_value if dst in counts else score_value)(values[src], f"{where}.{src}")
        for src, dst in NNUNET_METRICS.items()
        if src in values
    }


def name_classes(table: pd.DataFrame, names: Mapping[int, str] | None) -> pd.DataFrame:
    """Replace integer ``class`` values by their names (``{1: "rim"}``, or positional names from
    :func:`~duetfair.metrics.folders.parse_label_names` aligned with the sorted label ids present)."""
    from duetfair.metrics.folders import resolve_label_names

    if not names:
        return table
    ids = sorted({int(c) for c in table["class"] if isinstance(c, (int, np.integer))})
    mapping = resolve_label_names(names, ids)
    return table.assign(
        **{"class": [mapping.get(int(c), c) if isinstance(c, (int, np.integer)) else c for c in table["class"]]}
    )


def _finish(table: pd.DataFrame, source: Path) -> pd.DataFrame:
    dupes = table[table.duplicated(["case_id", "class"])]
    require(
        dupes.empty,
        f"{source}: case '{dupes['case_id'].iloc[0] if not dupes.empty else ''}' appears twice; "
        f"case ids must be unique (see --pattern)",
    )
    for col in ("n_ref", "n_pred"):
        if col in table.columns:
            table[col] = pd.to_numeric(table[col], errors="coerce").astype("Int64")
    cols = (
        ["case_id", "class"]
        + [c for c in TABLE_METRICS if c in table.columns]
        + [c for c in ("n_ref", "n_pred") if c in table.columns]
    )
    return table[cols].reset_index(drop=True)


def _ordered(table: pd.DataFrame, order: Sequence[Any] | None = None) -> pd.DataFrame:
    """Rows by case id, then label ids (ascending), then regions / named classes (in ``order``, else
    first appearance) -- the order of scored mask folders."""
    classes = list(dict.fromkeys([*(order or []), *table["class"]]))
    ints = sorted(c for c in classes if isinstance(c, (int, np.integer)))
    rank = {c: i for i, c in enumerate(ints + [c for c in classes if not isinstance(c, (int, np.integer))])}
    ranked = table.assign(_rank=table["class"].map(rank)).sort_values(["case_id", "_rank"], kind="stable")
    return ranked.drop(columns="_rank").reset_index(drop=True)


# ---- MONAI CSV ---------------------------------------------------------------------------------


def metric_of_file(name: str) -> str | None:
    """Metric of a MONAI ``<metric>_raw.csv`` file name (``mean_dice_raw.csv`` -> ``dice``), or None."""
    stem = name.lower()
    for key, metric in (
        ("surface_dice", "nsd"),
        ("nsd", "nsd"),
        ("hausdorff", "hd95"),
        ("hd95", "hd95"),
        ("iou", "iou"),
        ("jaccard", "iou"),
        ("dice", "dice"),
    ):
        if key in stem:
            return metric
    return None


def _monai_spec(spec: str) -> tuple[str | None, Path]:
    """``"dice=path.csv"`` -> ``("dice", path)``; ``"path.csv"`` -> ``(None, path)``."""
    name, sep, rest = spec.partition("=")
    if sep and name in TABLE_METRICS:
        return name, Path(rest)
    return None, Path(spec)


def read_monai_csv(
    specs: Sequence[str],
    *,
    pattern: str | None = None,
    labels: Sequence[int] | None = None,
    label_names: Mapping[int, str] | None = None,
    notes: list[str] | None = None,
) -> pd.DataFrame:
    """Per-case table of MONAI per-case CSVs (module doc), merged on ``case_id`` and ``class``.

    MONAI writes ``class0`` for the background when a metric was computed with
    ``include_background=True`` (the default of ``DiceMetric``; ``HausdorffDistanceMetric`` and
    ``SurfaceDiceMetric`` default to False). ``labels`` starting with 0 (``0,1,2``) mark that
    column as the background: it is dropped, and files of the same run written without it (one
    class column fewer) take the labels after 0. Files whose numbers of class columns differ are an
    error without such ``labels``; a ``class0`` that scores like the background (Dice / IoU / NSD
    >= 0.95 in every case) is reported in ``notes``.

    Args:
        specs: CSV paths, each optionally ``METRIC=path`` (otherwise the metric of a MONAI raw
            file comes from its name: ``mean_dice_raw.csv`` -> dice, ``hausdorff_distance`` -> hd95,
            ``surface_dice`` -> nsd, ``iou`` -> iou).
        pattern: case-id rule for the ``filename`` column (see :mod:`duetfair.metrics.folders`).
        labels: label ids of the ``class0, class1, ...`` columns in order (default 1, 2, ...); 0
            marks the background column (dropped).
        label_names: label id -> name for the ``class`` column.
        notes: receives one-line notes for people (a ``class0`` that looks like the background).
    """
    from duetfair.metrics.folders import compile_pattern

    require(len(specs) > 0, "--monai-csv: expected at least one CSV file")
    case_of = compile_pattern(pattern)
    table: pd.DataFrame | None = None
    layouts: dict[Path, int] = {}
    for spec in specs:
        metric, path = _monai_spec(spec)
        part = _read_one_monai(path, metric, case_of, labels, layouts, notes)
        if table is None:
            table = part
        else:
            clash = [c for c in part.columns if c in table.columns and c not in ("case_id", "class")]
            require(not clash, f"{path}: metric '{clash[0] if clash else ''}' is given by two CSV files")
            table = table.merge(part, on=["case_id", "class"], how="outer")
    assert table is not None
    if labels is None and len(set(layouts.values())) > 1:
        counts = sorted(layouts.items(), key=lambda kv: kv[1])
        (b, nb), (a, na) = counts[0], counts[-1]
        raise DuetfairError(
            f"--monai-csv: {a} has {na} class columns, {b} has {nb}: MONAI wrote the first with the background "
            f"(include_background=True); pass --labels {','.join(map(str, range(na)))} (0 = background, dropped)"
        )
    table = table[[not (isinstance(c, (int, np.integer)) and c == 0) for c in table["class"]]]
    return _finish(name_classes(_ordered(table), label_names), Path(specs[0]))


def _read_csv(path: Path) -> pd.DataFrame:
    df = read_table(path, text_columns=("case_id", "filename"))
    require(len(df) > 0, f"{path}: the CSV has no rows")
    return df


def _read_one_monai(
    path: Path,
    metric: str | None,
    case_of: Callable[[str], str | None],
    labels: Sequence[int] | None,
    layouts: dict[Path, int],
    notes: list[str] | None,
) -> pd.DataFrame:
    df = _read_csv(path)
    id_col = "case_id" if "case_id" in df.columns else ("filename" if "filename" in df.columns else None)
    require(id_col is not None, f"{path}: no 'filename' or 'case_id' column; columns: {', '.join(df.columns)}")
    ids = [canonical_id(v) if id_col == "case_id" else file_case_id(str(v), case_of) for v in df[id_col]]
    bad = [str(v) for v, i in zip(df[id_col], ids) if i is None]
    require(not bad, f"{path}: file name '{bad[0] if bad else ''}' does not match --pattern")
    df = df.drop(columns=[id_col]).assign(case_id=ids)
    metrics = [c for c in df.columns if c.lower() in TABLE_METRICS]
    if metrics:  # a per-case table: metric columns, optional class
        df = df.rename(columns={c: c.lower() for c in metrics})
        if "class" not in df.columns:
            df["class"] = 1
        df["class"] = [int(float(c)) if _is_int(c) else c for c in df["class"]]
        for col in [c.lower() for c in metrics] + [c for c in ("n_ref", "n_pred") if c in df.columns]:
            df[col] = numeric_column(df[col], f"{path}: column '{col}'", counts=col in ("n_ref", "n_pred"))
        return df[
            ["case_id", "class"] + [c.lower() for c in metrics] + [c for c in ("n_ref", "n_pred") if c in df.columns]
        ]
    return _melt_monai(df, path, metric or metric_of_file(path.name), labels, layouts, notes)


def _is_int(value: Any) -> bool:
    try:
        return float(value).is_integer()
    except (TypeError, ValueError):
        return False


def _melt_monai(
    df: pd.DataFrame,
    path: Path,
    metric: str | None,
    labels: Sequence[int] | None,
    layouts: dict[Path, int],
    notes: list[str] | None,
) -> pd.DataFrame:
    """MONAI raw layout (``class0, class1, ..., mean``) -> long rows (class 0 = background, dropped later)."""
    require(
        metric is not None, f"{path}: cannot tell the metric from the file name; name it, e.g. --monai-csv dice={path}"
    )
    class_cols = [c for c in df.columns if c not in ("case_id", "mean")]
    require(len(class_cols) > 0, f"{path}: no class column; expected MONAI's filename,class0,...,mean layout")
    classes: list[Any] = [int(c[5:]) + 1 if re.fullmatch(r"class\d+", c) else c for c in class_cols]
    layouts[path] = len(class_cols)
    if labels is not None:
        fits = [int(v) for v in labels] if len(labels) == len(class_cols) else None
        if fits is None and 0 in labels and len(labels) - 1 == len(class_cols):
            fits = [int(v) for v in labels if v != 0]  # a file of the same run written without the background
        require(
            fits is not None,
            f"{path}: {len(class_cols)} class columns ({', '.join(class_cols)}) for --labels "
            f"{','.join(map(str, labels))}; expected one label per column (0 = the background column)",
        )
        classes = list(fits or [])
    elif metric in ("dice", "iou", "nsd") and len(class_cols) >= 2 and notes is not None:
        first = pd.to_numeric(df[class_cols[0]], errors="coerce").to_numpy(dtype=float)
        if np.isfinite(first).all() and (first >= 0.95).all():
            notes.append(
                f"{path}: column {class_cols[0]} scores like the background (>= 0.95 in every case); if MONAI "
                f"computed it with include_background=True, pass --labels {','.join(map(str, range(len(class_cols))))}"
            )
    long = df.melt(id_vars=["case_id"], value_vars=class_cols, var_name="_col", value_name=metric)
    long["class"] = long["_col"].map(dict(zip(class_cols, classes)))
    long[metric] = numeric_column(long[metric], f"{path}: column of {metric}")
    return long[["case_id", "class", metric]]


# ---- audit and outputs -------------------------------------------------------------------------
