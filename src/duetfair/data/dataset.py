"""``CaseDataset``: a torch ``Dataset`` of case dicts with metadata and a group spec.

A case (docs/architecture.md) is a dict::

    {"image": FloatTensor [C, H, W(, D)], "label": LongTensor [1, H, W(, D)],
     "case_id": str, "attrs": {attribute: raw value}, "codes": LongTensor [A] (-1 unknown),
     "hidden": int}   # 1 hard / 0 not, only when the analysis-only hidden column is known

``codes`` holds one code per attribute of the dataset's group spec; the group ids an objective
or a router uses are derived from them (:meth:`GroupSpec.group_ids`), never stored twice.

Every loader builds one ``CaseDataset`` per split. The metadata table ``meta`` has one row per case
(``case_id``, raw attribute columns, ``split``, the hidden column when known (``hidden_subtype``
or the one named by ``hidden``), plus loader columns such as file paths).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, Callable, Literal, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import Dataset

from duetfair.data.attributes import AttributeSpec
from duetfair.data.groups import GroupSpec, HiddenColumn, is_missing
from duetfair.data.splits import SPLITS
from duetfair.errors import DuetfairError, require
from duetfair.options import ChannelSource as ChannelSourceOption
from duetfair.options import OnError, choices, parse

ReadFn = Callable[[int], tuple[torch.Tensor, torch.Tensor]]
ChannelSource = Literal["native", "files", "repeat"]
"""The values of :class:`~duetfair.options.ChannelSource`, for type checkers."""
CHANNEL_SOURCES: tuple[str, ...] = tuple(choices(ChannelSourceOption))

log = logging.getLogger("duetfair.data")


class CaseDataset(Dataset):
    """Cases of one split.

    Args:
        meta: one row per case with at least ``case_id`` and the spec's attribute columns.
        group_spec: how attributes become group codes.
        read: ``read(i) -> (image [C, *S] float32, label [1, *S] int64)`` for row ``i`` of ``meta``
            (raises :class:`DuetfairError` naming the case and file on bad input).
        num_classes: classes incl. background.
        in_channels: image channels ``C``.
        spatial_dims: 2 or 3.
        transform: optional callable applied to ``{"image", "label"}`` after reading (e.g. training
            augmentation); default ``None``.
        cache: keep read cases in memory (default ``False``; in-memory datasets are always cached).
        skipped: report of cases left out by the loader (``case_id``, ``file``, ``reason``).
        split_source: where the split came from (``official``, ``random``, ``table``, ...), for
            reports; ``None`` when the loader does not say.
        hidden: the analysis-only hidden column (name, or ``"name=value"``; see
            :class:`~duetfair.data.groups.HiddenColumn`); default ``hidden_subtype``. Cases get
            ``"hidden"`` (1 hard, 0 not) when ``meta`` has the column and the value is known.
        channel_source: where the image channels come from, recorded in ``run.json`` for
            ``predict``: ``"native"`` (one file holds them, e.g. RGB), ``"files"`` (one file per
            channel, e.g. MRI phases) or ``"repeat"`` (a single-channel image repeated).
    """

    def __init__(
        self,
        meta: pd.DataFrame,
        group_spec: GroupSpec,
        read: ReadFn,
        *,
        num_classes: int,
        in_channels: int,
        spatial_dims: int,
        transform: Callable[[dict], dict] | None = None,
        cache: bool = False,
        skipped: pd.DataFrame | None = None,
        split_source: str | None = None,
        hidden: str | HiddenColumn | None = None,
        channel_source: ChannelSource = "native",
    ) -> None:
        require("case_id" in meta.columns, "metadata needs a 'case_id' column")
        require(spatial_dims in (2, 3), f"spatial_dims must be 2 or 3, got {spatial_dims}")
        self.meta = meta.reset_index(drop=True)
        self.meta["case_id"] = self.meta["case_id"].astype(str)
        self.group_spec = group_spec
        self.num_classes = int(num_classes)
        self.in_channels = int(in_channels)
        self.spatial_dims = int(spatial_dims)
        self.transform = transform
        self.split_source = split_source
        self.skipped = skipped if skipped is not None else pd.DataFrame(columns=["case_id", "file", "reason"])
        self._read = read
        self._cache: dict[int, tuple[torch.Tensor, torch.Tensor]] | None = {} if cache else None
        self.codes = torch.as_tensor(group_spec.encode_frame(self.meta), dtype=torch.long)
        self._attrs = [self._row_attrs(i) for i in range(len(self.meta))]
        require(
            channel_source in CHANNEL_SOURCES,
            f"channel_source must be one of {CHANNEL_SOURCES}, got '{channel_source}'",
        )
        self.channel_source: ChannelSource = channel_source
        self.hidden = HiddenColumn.parse(hidden)
        self._hidden = (
            self.hidden.flags(self.meta[self.hidden.name]).tolist()
            if self.hidden.name in self.meta.columns
            else [-1] * len(self.meta)
        )

    def _row_attrs(self, i: int) -> dict[str, Any]:
        row = self.meta.iloc[i]
        return {a: (None if is_missing(row[a]) else _py(row[a])) for a in self.group_spec.attributes}

    def __len__(self) -> int:
        return len(self.meta)

    def __getitem__(self, i: int) -> dict[str, Any]:
        if not 0 <= i < len(self.meta):
            if -len(self.meta) <= i < 0:
                i += len(self.meta)
            else:
                raise IndexError(f"case index {i} out of range for {len(self.meta)} cases")
        image, label = self.read(i)
        case: dict[str, Any] = {"image": image, "label": label}
        if self.transform is not None:
            case = self.transform(case)
            case["image"] = torch.as_tensor(np.asarray(case["image"]), dtype=torch.float32)
            case["label"] = torch.as_tensor(np.asarray(case["label"])).long()
        case["case_id"] = self.meta.at[i, "case_id"]
        case["attrs"] = dict(self._attrs[i])
        case["codes"] = self.codes[i].clone()
        if self._hidden[i] >= 0:
            case["hidden"] = int(self._hidden[i])
        return case

    def read(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Image and label of row ``i`` (cached when caching is on)."""
        if self._cache is not None and i in self._cache:
            return self._cache[i]
        image, label = self._read(i)
        if self._cache is not None:
            self._cache[i] = (image, label)
        return image, label

    # ---- views and reports ------------------------------------------------------------------
    @property
    def case_ids(self) -> list[str]:
        """Case ids in index order."""
        return self.meta["case_id"].tolist()

    @property
    def hidden_flags(self) -> list[int]:
        """Per case 1 (hidden hard case), 0 (not) or -1 (unknown), in index order: analysis only."""
        return list(self._hidden)

    def group_ids(self, attribute: str | None = None) -> torch.Tensor:
        """One group id per case ``[N]``: the code of ``attribute``, or the intersection id of all
        attributes when ``attribute`` is ``None`` (-1 unknown)."""
        return self.group_spec.group_ids(self.codes, attribute)

    def unknown_counts(self) -> dict[str, int]:
        """Cases with an unknown (-1) code, per attribute."""
        return {a: int((self.codes[:, j] < 0).sum()) for j, a in enumerate(self.group_spec.attributes)}

    def subset(self, indices: Sequence[int]) -> "CaseDataset":
        """A dataset with only rows ``indices`` (sharing the reader and spec)."""
        idx = [int(i) for i in indices]
        return self._like(self.meta.iloc[idx].copy(), self.group_spec, lambda k: self.read(idx[k]))

    def with_attribute(self, attribute: AttributeSpec, values: Sequence[Any]) -> "CaseDataset":
        """The same cases (sharing the reader) with one more attribute: ``values`` (one raw value
        per case, ``None`` unknown) in the metadata column ``attribute.name``, encoded by the
        extended spec. Used for derived attributes such as discovered subclasses."""
        require(len(values) == len(self), f"attribute '{attribute.name}': {len(values)} values for {len(self)} cases")
        require(
            attribute.name not in self.group_spec.attributes,
            f"attribute '{attribute.name}' is already one of the data's attributes {self.group_spec.attributes}",
        )
        spec = GroupSpec([*(self.group_spec[a] for a in self.group_spec.attributes), attribute])
        meta = self.meta.copy()
        meta[attribute.name] = list(values)
        out = self._like(meta, spec, self.read)
        out.skipped = self.skipped
        return out

    def _like(self, meta: pd.DataFrame, spec: GroupSpec, read: ReadFn) -> "CaseDataset":
        """A dataset of ``meta`` with this one's settings (classes, channels, transform, hidden column)."""
        return CaseDataset(
            meta,
            spec,
            read,
            num_classes=self.num_classes,
            in_channels=self.in_channels,
            spatial_dims=self.spatial_dims,
            transform=self.transform,
            split_source=self.split_source,
            hidden=self.hidden,
            channel_source=self.channel_source,
        )

    def check(self, *, on_error: str = "raise") -> pd.DataFrame:
        """Read every case once; return the report of bad cases (``case_id``, ``file``, ``reason``).

        ``on_error="raise"`` (default) stops at the first bad case; ``"skip"`` collects them all.
        """
        on_error = parse(OnError, on_error, "on_error")
        rows = []
        for i in range(len(self)):
            try:
                self.read(i)
            except DuetfairError as exc:
                if on_error == "raise":
                    raise
                rows.append(
                    {"case_id": self.meta.at[i, "case_id"], "file": _file_of(self.meta.iloc[i]), "reason": str(exc)}
                )
        return pd.DataFrame(rows, columns=["case_id", "file", "reason"])

    def __repr__(self) -> str:
        return (
            f"CaseDataset(n={len(self)}, spatial_dims={self.spatial_dims}, in_channels={self.in_channels}, "
            f"num_classes={self.num_classes}, groups={self.group_spec!r})"
        )


def _row_reader(read: Callable[[Any], Any], rows: Sequence[Any]) -> ReadFn:
    """``i -> read(rows[i])``: a dataset's read function over a list of rows."""
    return lambda i: read(rows[i])


def drop_bad_cases(ds: CaseDataset, *, on_error: str) -> CaseDataset:
    """Apply the loaders' ``on_error`` policy: ``"raise"`` returns ``ds`` untouched (errors surface
    when a case is read), ``"skip"`` reads every case now and returns a dataset without the bad
    ones, their report in ``.skipped``."""
    on_error = parse(OnError, on_error, "on_error")
    if on_error == "raise":
        return ds
    report = ds.check(on_error="skip")
    if report.empty:
        return ds
    bad = set(report["case_id"])
    keep = [i for i, c in enumerate(ds.case_ids) if c not in bad]
    out = ds.subset(keep)
    out.skipped = pd.concat([ds.skipped, report], ignore_index=True) if not ds.skipped.empty else report
    return out


# ---- loaders: missing files, the skipped share, one dataset per split ---------------------


def file_report(meta: pd.DataFrame, columns: Sequence[str], hint: str = "") -> pd.DataFrame:
    """Rows of ``meta`` whose files (path or list of paths in ``columns``) do not exist:
    ``case_id``, ``file``, ``reason``, ``split`` (first missing file per case)."""
    rows = []
    for rec in meta.to_dict("records"):
        for col in columns:
            paths = rec[col] if isinstance(rec[col], (list, tuple)) else [rec[col]]
            gone = next((p for p in paths if p is None or not Path(p).is_file()), "")
            if gone != "":
                note = f" ({hint})" if hint and col == "image" else ""
                rows.append(
                    {
                        "case_id": rec["case_id"],
                        "file": str(gone),
                        "split": rec.get("split"),
                        "reason": f"case '{rec['case_id']}': {col} file '{gone}' does not exist{note}",
                    }
                )
                break
    return pd.DataFrame(rows, columns=["case_id", "file", "reason", "split"])


def keep_readable(
    meta: pd.DataFrame, columns: Sequence[str], *, what: str, on_error: str, max_skip_fraction: float, hint: str = ""
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Drop cases with missing files before any reading: ``(kept rows, report)``.

    ``on_error="raise"`` refuses any missing file (one line: count, an example, the remedy);
    ``"skip"`` refuses only above ``max_skip_fraction`` (the final count, with unreadable files,
    is checked again by :func:`build_split_datasets`).
    """
    on_error = parse(OnError, on_error, "on_error")
    require(0.0 <= max_skip_fraction <= 1.0, f"max_skip_fraction must be in [0, 1], got {max_skip_fraction}")
    require(len(meta) > 0, f"{what}: no cases to read")
    report = file_report(meta, columns, hint)
    if report.empty:
        return meta, report
    require(
        on_error == "skip",
        f"{what}: {len(report)} of {len(meta)} cases have missing files (e.g. "
        f"{report['reason'].iloc[0]}); check the folder layout (docs/datasets.md) or pass "
        f"on_error='skip'",
    )
    limit_skipped(
        len(report), len(meta), report["reason"].iloc[0], what=what, max_skip_fraction=max_skip_fraction, warn=False
    )
    return meta[~meta["case_id"].isin(set(report["case_id"]))].reset_index(drop=True), report


def limit_skipped(
    n_skipped: int, n_total: int, example: str, *, what: str, max_skip_fraction: float, warn: bool = True
) -> None:
    """Refuse when more than ``max_skip_fraction`` of ``n_total`` cases were skipped, else warn."""
    if n_skipped == 0:
        return
    share = n_skipped / max(n_total, 1)
    msg = f"{what}: {n_skipped} of {n_total} cases ({share:.1%}) could not be read and are left out (e.g. {example})"
    require(
        share <= max_skip_fraction,
        f"{msg}; that is more than max_skip_fraction={max_skip_fraction:g}: check "
        f"the folder layout (docs/datasets.md), or pass max_skip_fraction=1.0 to "
        f"accept",
    )
    if warn:
        log.warning("%s; see .skipped of each split", msg)


ReadRow = Callable[[dict[str, Any]], tuple[torch.Tensor, torch.Tensor]]


def build_split_datasets(
    meta: pd.DataFrame,
    spec: GroupSpec,
    read: ReadRow,
    *,
    source: str,
    in_channels: int,
    spatial_dims: int,
    skipped: pd.DataFrame,
    what: str,
    on_error: str,
    max_skip_fraction: float,
    cache: bool,
    num_classes: int = 2,
    channel_source: ChannelSource = "native",
) -> dict[str, CaseDataset]:
    """One :class:`CaseDataset` per split of ``meta`` (``split`` column) with ``split_source`` set;
    unreadable cases are dropped (``on_error="skip"``) and the total skip share checked."""
    n_total = len(meta) + len(skipped)
    out: dict[str, CaseDataset] = {}
    reports = [skipped[["case_id", "file", "reason"]]]
    for split in SPLITS:
        part = meta[meta["split"] == split].reset_index(drop=True)
        before = skipped.loc[skipped["split"] == split, ["case_id", "file", "reason"]].reset_index(drop=True)
        if len(part):
            rows = part.to_dict("records")
            ds = CaseDataset(
                part,
                spec,
                _row_reader(read, rows),
                num_classes=num_classes,
                in_channels=in_channels,
                spatial_dims=spatial_dims,
                cache=cache,
                skipped=before if not before.empty else None,
                channel_source=channel_source,
            )
            ds = drop_bad_cases(ds, on_error=on_error)
            reports.append(ds.skipped)
            if len(ds):
                ds.split_source = source
                out[split] = ds
    reports = [r for r in reports if not r.empty]
    if reports:
        report = pd.concat(reports, ignore_index=True).drop_duplicates("case_id")
        limit_skipped(
            len(report), n_total, str(report["reason"].iloc[0]), what=what, max_skip_fraction=max_skip_fraction
        )
    require(bool(out), f"{what}: no readable cases")
    return out


def _file_of(row: pd.Series) -> str:
    for col in ("image", "file", "path", "label"):
        if col in row.index and not is_missing(row[col]):
            return str(row[col])
    return ""


def _py(v: Any) -> Any:
    """A numpy scalar as a Python scalar (so attrs are JSON-safe)."""
    return v.item() if isinstance(v, np.generic) else v


def collate_cases(cases: Sequence[dict[str, Any]]) -> dict[str, Any]:
    """Batch case dicts (the one collate; use as ``DataLoader(collate_fn=collate_cases)``).

    Returns ``image [B, C, *S]`` float32, ``label [B, 1, *S]`` int64, ``codes [B, A]`` int64
    (stacked tensors), ``case_ids`` (list of str), ``attrs`` (list of dicts; raw values may be
    ``None`` or mixed types, which the default collate cannot batch) and ``hidden [B]`` (-1 where
    unknown) when any case has it. All images of a batch must share one shape.
    """
    require(len(cases) > 0, "collate_cases: empty batch")
    shapes = {tuple(c["image"].shape) for c in cases}
    require(
        len(shapes) == 1,
        f"cases {[c['case_id'] for c in cases[:4]]} have different image shapes "
        f"{sorted(shapes)[:3]} in one batch; set an image_size / spatial_size so all "
        f"cases share one shape",
    )
    batch: dict[str, Any] = {
        "image": torch.stack([torch.as_tensor(c["image"], dtype=torch.float32) for c in cases]),
        "label": torch.stack([torch.as_tensor(c["label"]).long() for c in cases]),
        "codes": torch.stack([torch.as_tensor(c["codes"], dtype=torch.long).reshape(-1) for c in cases]),
        "case_ids": [str(c["case_id"]) for c in cases],
        "attrs": [c.get("attrs", {}) for c in cases],
    }
    if any("hidden" in c for c in cases):
        batch["hidden"] = torch.tensor([int(c.get("hidden", -1)) for c in cases], dtype=torch.long)
    return batch
