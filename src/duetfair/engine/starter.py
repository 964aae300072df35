"""``duetfair init-config``: a commented starter experiment config from a user's CSV manifest.

The manifest's columns decide the config: the image / label / case-id columns
(:func:`duetfair.data.manifest.detect_columns`), the attribute columns (every other column except
``split``, the hidden column, a patient-id column used to keep a patient's cases in one split, file
columns and identifiers), bins for a continuous attribute (numeric with many distinct values,
:func:`duetfair.data.groups.attribute_kind`: cut at "nice" tertiles), 2D or 3D from the image
file suffix (base config ``fundus2d.yaml`` or ``tumor3d.yaml``), and ``group_attribute`` = the first
categorical attribute. The text is validated as a config before it is written.
"""

from __future__ import annotations

import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import yaml

from duetfair.errors import DuetfairError, require

#: base config and image size per spatial dimension
BASES: dict[int, tuple[str, list[int]]] = {2: ("fundus2d.yaml", [64, 64]), 3: ("tumor3d.yaml", [32, 32, 32])}
PATIENT_COLUMNS = ("patient_id", "patient", "subject_id", "subject", "participant_id")
MAX_CATEGORIES = 50


@dataclass
class ManifestSummary:
    """What :func:`summarize_manifest` found in a manifest.

    Attributes:
        roles: manifest column of ``image``, ``label``, ``case_id``.
        spatial_dims: 2 or 3 (from the first image's suffix).
        files_per_case: image files per case (``;``-joined: stacked as channels).
        categorical: categorical attribute columns, in manifest order.
        continuous: continuous attribute columns -> suggested bin edges.
        hidden: the analysis-only hidden column, if any.
        group_by: patient-id column (no patient in two splits), if any.
        has_split: the manifest has a ``split`` column.
        notes: columns left out, and why.
    """

    path: Path
    n_rows: int
    roles: dict[str, str]
    spatial_dims: int
    files_per_case: int
    categorical: list[str] = field(default_factory=list)
    continuous: dict[str, list[float]] = field(default_factory=dict)
    hidden: Optional[str] = None
    group_by: Optional[str] = None
    has_split: bool = False
    notes: list[str] = field(default_factory=list)

    @property
    def attributes(self) -> list[str]:
        """Every attribute column, categorical first (the first one is the group attribute)."""
        return [*self.categorical, *self.continuous]


def nice_edges(values: pd.Series, groups: int = 3) -> list[float]:
    """Bin edges of a continuous column: its ``1/groups`` quantiles rounded to a round step
    (10s for ages); at least one edge (the rounded median)."""
    v = pd.to_numeric(values, errors="coerce").dropna().to_numpy(dtype=float)
    lo, hi = float(v.min()), float(v.max())
    step = 10.0 ** math.floor(math.log10(hi - lo)) if hi > lo else 1.0
    if (hi - lo) / step < 4:
        step /= 2
    qs = np.quantile(v, [k / groups for k in range(1, groups)])
    edges = sorted({round(float(q) / step) * step for q in qs})
    edges = [e for e in edges if lo < e <= hi] or [round(float(np.median(v)) / step) * step]
    return [int(e) if float(e).is_integer() else round(e, 6) for e in edges]


def summarize_manifest(path: str | os.PathLike[str], hidden: Optional[str] = None) -> ManifestSummary:
    """Roles, attributes (with suggested bins), dimensionality and hidden column of a manifest."""
    from duetfair.data.groups import HiddenColumn
    from duetfair.data.manifest import detect_columns, spatial_dims_of
    from duetfair.io import read_table
    from duetfair.options import HIDDEN_COLUMN

    path = Path(path)
    df = read_table(path)
    require(len(df) > 0, f"manifest '{path}': no rows; expected one row per case")
    roles = detect_columns(df, path)
    first = str(df[roles["image"]].dropna().iloc[0])
    hidden_col = HiddenColumn.parse(hidden) if hidden is not None else None
    if hidden_col is not None:
        hidden_col.check(df, f"manifest '{path}'")
    elif HIDDEN_COLUMN in df.columns:
        hidden_col = HiddenColumn.parse(HIDDEN_COLUMN)
    summary = ManifestSummary(
        path=path,
        n_rows=len(df),
        roles=roles,
        spatial_dims=spatial_dims_of(first),
        files_per_case=len([s for s in first.split(";") if s.strip()]),
        hidden=None if hidden_col is None else str(hidden_col),
        has_split="split" in df.columns,
    )
    skip = {*roles.values(), "split", *([hidden_col.name] if hidden_col is not None else [])}
    for col in (str(c) for c in df.columns if str(c) not in skip):
        _classify(summary, col, df[col])
    require(
        bool(summary.attributes),
        f"manifest '{path}': no attribute column (besides {sorted(skip)}); fairness "
        f"training needs at least one, e.g. sex, race or age",
    )
    return summary


def _classify(summary: ManifestSummary, col: str, values: pd.Series) -> None:
    """Put column ``col`` into the summary's categorical / continuous attributes, the patient
    column, or the notes."""
    from duetfair.data.groups import attribute_kind, is_missing
    from duetfair.data.manifest import SUFFIXES_2D, SUFFIXES_3D

    known = values[~values.map(is_missing)]
    text = known.astype(str).str.strip()
    if col.lower() in PATIENT_COLUMNS and summary.group_by is None:
        summary.group_by = col
        summary.notes.append(f"'{col}': patient id, used to keep a patient's cases in one split (group_by)")
    elif len(text) and text.str.lower().str.endswith(SUFFIXES_2D + SUFFIXES_3D).all():
        summary.notes.append(f"'{col}': file names, not an attribute")
    elif attribute_kind(values) == "constant":
        summary.notes.append(f"'{col}': fewer than 2 known values, not an attribute")
    elif attribute_kind(values) == "continuous":
        summary.continuous[col] = nice_edges(known)
    elif text.nunique() > MAX_CATEGORIES or (len(text) >= 10 and text.nunique() == len(text)):
        summary.notes.append(
            f"'{col}': {text.nunique()} distinct values (an identifier or free text?), not an attribute"
        )
    else:
        summary.categorical.append(col)


def _flow(value: Any) -> str:
    """``value`` as one line of YAML (flow style)."""
    return yaml.safe_dump(value, default_flow_style=True, width=10_000).strip().removesuffix("...").strip()


def starter_config(summary: ManifestSummary, *, name: str, data_path: str, config_path: Optional[str] = None) -> str:
    """The commented YAML text of a starter config for ``summary`` (see the module docstring);
    ``config_path`` (default ``<name>.yaml``) is where it will be written, for the usage lines."""
    base, size = BASES[summary.spatial_dims]
    group = summary.attributes[0]
    roles = {r: c for r, c in summary.roles.items() if c != r}
    args: list[str] = [f"path: {_flow(data_path)}", f"attributes: {_flow(summary.attributes)}"]
    if summary.continuous:
        args.append(f"bins: {_flow(summary.continuous)}")
    args += [f"image_size: {_flow(size)}", "seed: 0"]
    if summary.group_by:
        args.append(f"group_by: {_flow(summary.group_by)}")
    if roles:
        args.append(f"columns: {_flow(roles)}")
    args += [
        "# num_classes: 2            # default: largest label value + 1 (all labels are read once)",
        "# label_map: {255: 1}       # raw label value -> class, e.g. for 0/255 masks",
        "# normalize: auto           # auto, scale, zscore, zscore_global (one z-score over all channels)",
        "# on_error: skip            # leave out unreadable cases (listed) instead of stopping",
    ]
    lines = [
        *_header(summary, base, config_path or f"{name}.yaml"),
        f"extends: {base}",
        f"name: {_flow(name)}",
        "method: erm",
        f"output_dir: {_flow(f'runs/{name}_erm')}",
        "data:",
        "  kind: manifest",
        "  args:",
        *[f"    {a}" for a in args],
        f"  group_attribute: {_flow(group)}",
        f"  audit_attributes: {_flow(summary.attributes)}",
    ]
    hidden = (
        f"  hidden_column: {_flow(summary.hidden)}"
        if summary.hidden
        else "  # hidden_column: morphology   # analysis-only column of known hard cases (0/1, or morphology=irregular)"
    )
    lines += [hidden, "  cache: true                    # keep decoded cases in memory (false for large 3D data)"]
    return "\n".join(lines) + "\n"


def _header(summary: ManifestSummary, base: str, config_path: str) -> list[str]:
    """The comment block that opens a starter config: what was found and what each key means."""
    dims = f"{summary.spatial_dims}D, {summary.files_per_case} file(s) per case"
    if summary.files_per_case > 1:
        dims += " stacked as channels in the order given (predict needs all of them, joined with ';')"
    found = [
        f"# duetfair experiment config for {summary.path} (written by duetfair init-config; edit freely).",
        f"# {summary.n_rows} cases; image column '{summary.roles['image']}' ({dims}), label column "
        f"'{summary.roles['label']}', case id column '{summary.roles['case_id']}'.",
        "# Split: "
        + (
            "the manifest's split column."
            if summary.has_split
            else "random 80/10/10 (data.args.seed), stratified by the attributes."
        ),
    ]
    found += [f"# Left out: {note}." for note in summary.notes]
    return [
        *found,
        "#",
        f"#   duetfair train {config_path} --set train.epochs=5       # try it",
        f"#   duetfair benchmark {config_path} --method erm --method fair_dro --seeds 3",
        "#",
        f"# extends           packaged base config ({base}): model, optimiser, schedule, epochs, metrics",
        "# method            erm, group_dro, febs, adversarial, moe, dmoe, fair_dro (DuetFair), divergence",
        "# data.kind         manifest: a CSV / TSV / Excel / Parquet table, one row per case",
        "# data.args         options of the manifest loader (duetfair.data.manifest.manifest_datasets):",
        "#   path            the manifest, relative to the folder you run duetfair in; image paths in it are",
        "#                   relative to the manifest's folder",
        "#   attributes      patient attribute columns; their groups are trained on and audited",
        "#   bins            cut points of continuous attributes (suggested from tertiles: edit), left-closed",
        "#   image_size      every case is resized to this so cases batch together; the model is sized from it",
        "#   seed            split seed when there is no split column (benchmark --seeds varies it)",
        "#   group_by        patient-id column: a patient's cases stay in one split",
        "#   columns         manifest column of image / label / case_id when named otherwise",
        "# data.group_attribute   attribute whose groups the fairness objective and model selection use",
        "# data.audit_attributes  attributes reported by duetfair evaluate",
        "# data.hidden_column     analysis-only column of known hard cases, never a model input",
        "#",
    ]


def write_starter_config(
    manifest: str | os.PathLike[str],
    out: str | os.PathLike[str],
    *,
    hidden: Optional[str] = None,
    overwrite: bool = False,
) -> tuple[Path, ManifestSummary]:
    """Write the starter config of ``manifest`` to ``out`` (refusing to replace a file unless
    ``overwrite``) after validating it; returns the path and what was found."""
    from duetfair.engine.config import load_config
    from duetfair.io import write_text

    target = Path(out)
    require(target.suffix in (".yaml", ".yml"), f"--out {out}: expected a .yaml file")
    require(overwrite or not target.exists(), f"--out {out}: the file exists; pass --overwrite to replace it")
    summary = summarize_manifest(manifest, hidden)
    text = starter_config(summary, name=target.stem, data_path=str(manifest), config_path=str(out))
    with tempfile.TemporaryDirectory() as tmp:
        check = Path(tmp) / target.name
        check.write_text(text, encoding="utf-8")
        try:
            load_config(check)
        except DuetfairError as exc:  # a bug of this module, not of the user's manifest
            raise DuetfairError(f"init-config: the written config does not validate ({exc})") from None
    return write_text(target, text), summary
