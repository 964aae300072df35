"""Attribute encoding: raw patient attributes -> integer group codes.

A :class:`GroupSpec` says which attributes define subgroups and how each raw value becomes a code:

* **categorical** attributes: a fixed list of group names; raw values are matched after an
  optional ``value_map`` (raw value -> group name, e.g. FairSeg ``race`` 0/1/2 ->
  Asian/Black/White, or MAMA-MIA free-text ``menopause`` -> pre/post by prefix);
* **binned** attributes: continuous values (age) cut at ``edges`` into labelled intervals.

Missing values (:data:`MISSING_TOKENS`: empty, NaN, ``unknown``, ``-1``, ``missing``) and unseen values
become ``-1`` (unknown) and are counted (:meth:`GroupSpec.unknown_counts`), never a crash and never
a silent merge into another group, unless the attribute names a ``missing`` group (MAMA-MIA counts
missing menopause as its own ``unknown`` group).

This module is the only place where a raw attribute value becomes a group: training codes
(:meth:`GroupSpec.encode_frame`), training group ids (:meth:`GroupSpec.group_ids`) and the audit's
labels (:meth:`GroupSpec.labels`) all come from the same spec, so training, model selection and
audit agree on every group. Bins state their closure (``right``) and get their labels from
:func:`bin_labels`; intersections are named by joining labels with :data:`LABEL_JOIN`. Several
attributes combine into one intersection id (mixed radix, :meth:`GroupSpec.intersection`). The spec
is plain data (:meth:`GroupSpec.to_dict` / :meth:`GroupSpec.from_dict`, :meth:`GroupSpec.save` /
:meth:`GroupSpec.load`), saved with every run so inference encodes attributes the same way.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.data.attributes import (
    FAIRSEG_AGE_EDGES,
    FAIRSEG_AGE_LABELS,
    HAM_AGE_EDGES,
    HAM_AGE_LABELS,
    INTERSECTION_SEP,
    LABEL_JOIN,
    MAMAMIA_AGE_EDGES,
    MAMAMIA_AGE_LABELS,
    MAX_NUMERIC_LEVELS,
    MISSING_TOKENS,
    UNKNOWN,
    AttributeSpec,
    _fmt,
    bin_labels,
    binned,
    canonical,
    categorical,
    is_missing,
    is_missing_number,
    parse_bins,
)
from duetfair.errors import DuetfairError, require
from duetfair.io import read_json, write_json

__all__ = [  # the names of duetfair.data.attributes are part of this module's interface
    "FAIRSEG_AGE_EDGES",
    "FAIRSEG_AGE_LABELS",
    "HAM_AGE_EDGES",
    "HAM_AGE_LABELS",
    "INTERSECTION_SEP",
    "LABEL_JOIN",
    "MAMAMIA_AGE_EDGES",
    "MAMAMIA_AGE_LABELS",
    "MAX_NUMERIC_LEVELS",
    "MISSING_TOKENS",
    "UNKNOWN",
    "AttributeSpec",
    "GroupSpec",
    "HiddenColumn",
    "attribute_kind",
    "bin_labels",
    "binned",
    "canonical",
    "categorical",
    "group_labels",
    "is_missing",
    "is_missing_number",
    "known_values",
    "parse_bins",
    "split_intersection",
]


class GroupSpec:
    """Which attributes define subgroups and how raw values become codes.

    Args:
        attributes: one :class:`AttributeSpec` per attribute, in code order (also accepted: their
            ``to_dict()`` mappings).

    Example:
        >>> spec = GroupSpec([
        ...     categorical("race", ["Asian", "Black", "White"], value_map={0: "Asian", 1: "Black", 2: "White"}),
        ...     binned("age", [60], ["<60", ">=60"]),
        ... ])
        >>> spec.encode({"race": 2, "age": 71.5})
        [2, 1]
        >>> spec.intersection(torch.tensor([[2, 1]]))
        tensor([5])
    """

    def __init__(self, attributes: Iterable[AttributeSpec | Mapping[str, Any]]) -> None:
        specs = [a if isinstance(a, AttributeSpec) else AttributeSpec.from_dict(a) for a in attributes]
        names = [a.name for a in specs]
        require(len(set(names)) == len(names), f"GroupSpec: duplicate attribute names {names}")
        self.specs: list[AttributeSpec] = specs
        self._by_name = {a.name: a for a in specs}

    # ---- description ------------------------------------------------------------------------
    @property
    def attributes(self) -> list[str]:
        """Attribute names in code order."""
        return [a.name for a in self.specs]

    @property
    def cardinalities(self) -> list[int]:
        """Number of groups of each attribute."""
        return [a.cardinality for a in self.specs]

    @property
    def num_intersections(self) -> int:
        """Number of attribute combinations (product of cardinalities; 1 for no attributes)."""
        return int(np.prod(self.cardinalities)) if self.specs else 1

    def __getitem__(self, attr: str) -> AttributeSpec:
        require(attr in self._by_name, f"unknown attribute '{attr}'; expected one of {self.attributes}")
        return self._by_name[attr]

    def __len__(self) -> int:
        return len(self.specs)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GroupSpec) and self.to_dict() == other.to_dict()

    def __repr__(self) -> str:
        parts = ", ".join(f"{a.name}[{a.cardinality}]" for a in self.specs)
        return f"GroupSpec({parts})"

    def group_names(self, attr: str | None = None) -> list[str]:
        """Group names of ``attr`` in code order; of the intersection ids when ``attr`` is None."""
        if attr is None:
            return self.intersection_names()
        return list(self[attr].values)

    def intersection_names(self) -> list[str]:
        """Names of intersection ids, labels joined by :data:`LABEL_JOIN` (``"White & >=60"``, id order)."""
        return [LABEL_JOIN.join(combo) for combo in itertools.product(*(a.values for a in self.specs))]

    def num_groups(self, attr: str | None = None) -> int:
        """Number of group ids of ``attr`` (of the intersection when None)."""
        return self[attr].cardinality if attr is not None else self.num_intersections

    def group_ids(self, codes: torch.Tensor | np.ndarray, attr: str | None = None) -> torch.Tensor:
        """Group id per case from codes ``[..., A]``: the code of ``attr``, or the intersection id
        of all attributes when ``attr`` is None. Returns LongTensor ``[...]`` (-1 unknown)."""
        if attr is None:
            return self.intersection(codes)
        c = torch.as_tensor(codes, dtype=torch.long)
        return c[..., self.attributes.index(self[attr].name)].clone()

    def select(self, attributes: Sequence[str]) -> "GroupSpec":
        """A spec with only ``attributes`` (in the given order)."""
        return GroupSpec([self[a] for a in attributes])

    def labels(self, df: pd.DataFrame, by: str) -> pd.Series:
        """Group label of every row for ``by`` (categorical Series aligned with ``df``, NaN = unknown).

        Args:
            df: one row per case with the raw attribute columns.
            by: an attribute, or an intersection ``"a+b"`` (labels joined by :data:`LABEL_JOIN`;
                unknown when any part is unknown).
        """
        parts = split_intersection(by)
        for p in parts:
            require(
                p in df.columns,
                f"attribute column '{p}' not in the table; available columns: {', '.join(map(str, df.columns))}",
            )
        sub = self.select(parts)
        codes = sub.encode_frame(df)
        ids = sub.intersection(codes).numpy() if len(parts) > 1 else codes[:, 0]
        cat = pd.Categorical.from_codes(ids, categories=sub.intersection_names())
        return pd.Series(cat, index=df.index, name=by)

    # ---- encoding ---------------------------------------------------------------------------
    def encode(self, attrs: Mapping[str, Any]) -> list[int]:
        """Codes of one case's raw attributes (absent keys -> -1)."""
        return [a.encode(attrs.get(a.name)) for a in self.specs]

    def encode_frame(self, df: pd.DataFrame, *, require_columns: bool = True) -> np.ndarray:
        """Codes of every row -> int64 array ``[N, A]`` (-1 unknown).

        Args:
            df: one row per case with one raw column per attribute.
            require_columns: raise if an attribute column is absent (default); ``False`` encodes
                an absent column as all-unknown.
        """
        out = np.full((len(df), len(self.specs)), UNKNOWN, dtype=np.int64)
        for j, a in enumerate(self.specs):
            if a.name not in df.columns:
                require(not require_columns, f"attribute column '{a.name}' is missing; columns are {list(df.columns)}")
                continue
            out[:, j] = a.encode_series(df[a.name].reset_index(drop=True))
        return out

    def unknown_counts(self, df: pd.DataFrame) -> dict[str, int]:
        """Number of rows whose code is unknown (-1), per attribute."""
        codes = self.encode_frame(df, require_columns=False)
        return {a: int((codes[:, j] == UNKNOWN).sum()) for j, a in enumerate(self.attributes)}

    def unseen_values(self, df: pd.DataFrame) -> dict[str, list[str]]:
        """Distinct non-missing raw values that encode to unknown, per attribute (for reports)."""
        out: dict[str, list[str]] = {}
        for a in self.specs:
            if a.name not in df.columns:
                continue
            gone = is_missing_number if a.binned else is_missing
            vals = sorted({canonical(v) for v in df[a.name].tolist() if not gone(v) and a.encode(v) == UNKNOWN})
            if vals:
                out[a.name] = vals
        return out

    def counts(self, df: pd.DataFrame) -> dict[str, dict[str, int]]:
        """Cases per group name (plus ``"unknown"``) of every attribute."""
        codes = self.encode_frame(df, require_columns=False)
        out: dict[str, dict[str, int]] = {}
        for j, a in enumerate(self.specs):
            c = {v: int((codes[:, j] == k).sum()) for k, v in enumerate(a.values)}
            c["unknown"] = int((codes[:, j] == UNKNOWN).sum())
            out[a.name] = c
        return out

    def intersection(self, codes: torch.Tensor | np.ndarray) -> torch.Tensor:
        """One id per attribute combination (mixed radix, first attribute most significant).

        Args:
            codes: LongTensor ``[..., A]`` of codes (-1 unknown).

        Returns:
            LongTensor ``[...]`` in ``0 .. num_intersections - 1``; -1 if any code is unknown.
        """
        c = torch.as_tensor(codes, dtype=torch.long)
        require(
            c.shape[-1:] == (len(self.specs),),
            f"intersection: codes must end with {len(self.specs)} attributes, got shape {tuple(c.shape)}",
        )
        card = torch.tensor(self.cardinalities, dtype=torch.long, device=c.device)
        require(
            bool(((c < card) | (c == UNKNOWN)).all()) and bool((c >= UNKNOWN).all()),
            f"intersection: codes out of range for cardinalities {self.cardinalities}",
        )
        radix = torch.ones_like(card)
        if len(card) > 1:
            radix[:-1] = torch.flip(torch.cumprod(torch.flip(card[1:], [0]), 0), [0])
        ids = (c.clamp(min=0) * radix).sum(-1)
        return torch.where((c == UNKNOWN).any(-1), torch.full_like(ids, UNKNOWN), ids)

    # ---- construction -----------------------------------------------------------------------
    @classmethod
    def infer(
        cls,
        df: pd.DataFrame,
        attributes: Sequence[str],
        *,
        bins: Mapping[str, Sequence[float] | Mapping[str, Any] | AttributeSpec] | None = None,
        max_categories: int = 50,
        max_numeric_levels: int = MAX_NUMERIC_LEVELS,
    ) -> "GroupSpec":
        """Build a spec from data: categorical attributes get their observed values (sorted).

        Args:
            df: metadata table with one column per attribute.
            attributes: attribute columns to use, in code order.
            bins: ``{attr: edges}``, ``{attr: {"edges": [...], "labels": [...], "right": bool}}`` or
                ``{attr: AttributeSpec}`` for continuous attributes (e.g. ``{"age": [60]}``).
            max_numeric_levels: refuse a column of numbers with more distinct values (default 12):
                it is continuous (age, a metric) and needs ``bins``; one group per value would make
                groups of one case and a meaningless worst group.
            max_categories: refuse categorical columns with more distinct values (default 50),
                which are almost always a continuous column that needs ``bins``.
        """
        bins = dict(bins or {})
        specs: list[AttributeSpec] = []
        for name in attributes:
            require(
                name in df.columns,
                f"attribute column '{name}' not in the table; available columns: {', '.join(map(str, df.columns))}",
            )
            if name in bins:
                b = bins[name]
                if not isinstance(b, AttributeSpec) or b.binned:
                    _require_numeric(df[name], name)
                if isinstance(b, Mapping):
                    specs.append(binned(name, b["edges"], b.get("labels"), right=bool(b.get("right", False))))
                elif isinstance(b, AttributeSpec):
                    specs.append(b)
                else:
                    specs.append(binned(name, list(b)))
                continue
            distinct = df[name].drop_duplicates().tolist()
            vals = sorted({canonical(v) for v in distinct if not is_missing(v)}, key=_natural_key)
            require(len(vals) > 0, f"attribute column '{name}' has no non-missing values")
            numeric = all(_is_number(v) for v in vals)
            require(
                not numeric or len(vals) <= max_numeric_levels,
                f"attribute column '{name}' holds {len(vals)} distinct numbers: it looks continuous; bin it, "
                f"e.g. --bins {name}=" + ",".join(_suggest_edges(df[name])),
            )
            require(
                len(vals) <= max_categories,
                f"attribute column '{name}' has {len(vals)} distinct values (> {max_categories}); "
                f"give bins for a continuous attribute, e.g. bins={{'{name}': [60]}}",
            )
            specs.append(AttributeSpec(name=name, values=vals))
        return cls(specs)

    @classmethod
    def for_table(
        cls,
        df: pd.DataFrame,
        by: Sequence[str],
        *,
        bins: Mapping[str, Sequence[float] | Mapping[str, Any]] | None = None,
        base: "GroupSpec | None" = None,
    ) -> "GroupSpec":
        """The spec an audit of ``df`` by ``by`` uses: every attribute named in ``by`` (intersections
        split into their columns) from ``base`` (a run's saved spec) when it has it, unless ``bins``
        gives it explicitly; otherwise inferred from the data (:meth:`infer`)."""
        bins = dict(bins or {})
        columns = list(dict.fromkeys(p for attr in by for p in split_intersection(attr)))
        for attr in bins:
            require(
                attr in df.columns,
                f"--bins: column '{attr}' not in the table; available columns: {', '.join(map(str, df.columns))}",
            )
        known = {a.name: a for a in base.specs} if base is not None else {}
        fixed = {c: known[c] for c in columns if c in known and c not in bins}
        return cls.infer(df, columns, bins={**bins, **fixed})

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe description (``{"attributes": [...]}``)."""
        return {"attributes": [a.to_dict() for a in self.specs]}

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "GroupSpec":
        """Inverse of :meth:`to_dict`."""
        require(
            isinstance(d, Mapping) and isinstance(d.get("attributes"), list),
            "group spec must be a mapping with an 'attributes' list",
        )
        return cls(d["attributes"])

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Write the spec as JSON (atomically)."""
        return write_json(path, self.to_dict())

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> "GroupSpec":
        """Read a spec written by :meth:`save` (JSON, or YAML by suffix)."""
        p = Path(path)
        require(p.is_file(), f"group spec file '{p}' does not exist")
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(p.read_text(encoding="utf-8"))
            else:
                data = read_json(p, "a group spec")
        except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
            raise DuetfairError(f"group spec file '{p}' cannot be parsed: {exc}".replace("\n", " ")) from exc
        return cls.from_dict(data)


def _require_numeric(col: pd.Series, name: str) -> None:
    """Refuse a column to bin that holds non-numeric, non-missing values (names the first one)."""
    numeric = pd.to_numeric(col, errors="coerce")
    bad = col[numeric.isna() & ~col.map(is_missing_number)]
    require(
        bad.empty,
        f"column '{name}': value '{bad.iloc[0] if not bad.empty else ''}' is not numeric; expected numbers to bin",
    )


def known_values(series: pd.Series) -> pd.Series:
    """The values of ``series`` that are not missing (:func:`is_missing`)."""
    return series[~series.map(is_missing).astype(bool)]


def attribute_kind(series: pd.Series) -> str:
    """``"constant"`` (fewer than 2 distinct known values), ``"continuous"`` (numbers with more than
    :data:`MAX_NUMERIC_LEVELS` distinct values: it needs bins) or ``"categorical"``."""
    values = known_values(series)
    distinct = {canonical(v) for v in values.drop_duplicates().tolist()}
    if len(distinct) < 2:
        return "constant"
    numeric = all(_is_number(v) for v in distinct)
    return "continuous" if numeric and len(distinct) > MAX_NUMERIC_LEVELS else "categorical"


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _suggest_edges(col: pd.Series) -> list[str]:
    """Quartile edges of a numeric column, rounded, for the error message's example."""
    x = pd.to_numeric(col, errors="coerce").dropna()
    edges = sorted({float(f"{q:.2g}") for q in x.quantile([0.25, 0.5, 0.75]).tolist()})
    return [_fmt(e) for e in edges] or ["60"]


def split_intersection(by: str) -> list[str]:
    """``"race+sex"`` -> ``["race", "sex"]``; a single attribute -> ``[by]``."""
    parts = [p.strip() for p in str(by).split(INTERSECTION_SEP)]
    require(all(parts), f"attribute '{by}': expected a column or columns joined by '{INTERSECTION_SEP}'")
    return parts


def _natural_key(s: str) -> tuple[int, float, str]:
    """Sort numbers numerically before strings: ``"2" < "10" < "a"``."""
    try:
        return (0, float(s), s)
    except ValueError:
        return (1, 0.0, s)


def group_labels(
    df: pd.DataFrame, by: str, *, bins: Sequence[float] | Mapping[str, Any] | None = None, spec: GroupSpec | None = None
) -> pd.Series:
    """Labels of ``df`` for one attribute or intersection ``by`` (categorical Series, NaN = unknown),
    under ``spec`` where it defines the attribute, else a spec inferred from the data (with ``bins``
    for a single continuous column: edges, or ``{"edges", "right", "labels"}``)."""
    parts = split_intersection(by)
    require(
        bins is None or len(parts) == 1,
        f"attribute '{by}': bin the columns of an intersection one by one, not the intersection",
    )
    return GroupSpec.for_table(df, [by], bins={by: bins} if bins is not None else None, base=spec).labels(df, by)


# ---- the analysis-only hidden column ----------------------------------------------------------

HARD_TOKENS = frozenset({"1", "true", "yes", "y", "hard"})
"""Raw strings (stripped, case-insensitive) of a hidden column read as a hard case."""
REST_TOKENS = frozenset({"0", "false", "no", "n", "rest", "easy"})
"""Raw strings read as not hard."""


@dataclass(frozen=True)
class HiddenColumn:
    """The analysis-only column of known hard cases (never an input of training): its name and
    which raw values mark a hard case. Audits report these cases as hidden failures.

    Written ``"morphology"`` (values 0/1, numbers > 0 hard, booleans, yes/no, true/false, hard)
    or ``"morphology=irregular"`` / ``"morphology=irregular,spiculated"`` (those values are hard,
    every other known value is not). Missing values (:func:`is_missing`) are unknown.
    """

    name: str = "hidden_subtype"
    hard: tuple[str, ...] | None = None

    @classmethod
    def parse(cls, text: "str | HiddenColumn | None") -> "HiddenColumn":
        """``"column"`` or ``"column=value[,value]"``; ``None`` gives the default column
        (:data:`duetfair.options.HIDDEN_COLUMN`)."""
        from duetfair.options import HIDDEN_COLUMN

        if isinstance(text, HiddenColumn):
            return text
        if text is None:
            return cls(HIDDEN_COLUMN)
        name, sep, values = str(text).partition("=")
        hard = tuple(canonical(v) for v in values.split(",") if v.strip()) if sep else None
        require(
            bool(name.strip()),
            f"hidden column '{text}': expected COLUMN or COLUMN=VALUE, e.g. morphology or morphology=irregular",
        )
        require(not sep or bool(hard), f"hidden column '{text}': expected at least one hard value after '='")
        return cls(name.strip(), hard)

    def __str__(self) -> str:
        return self.name if self.hard is None else f"{self.name}={','.join(self.hard)}"

    def flags(self, values: pd.Series | Sequence[Any]) -> np.ndarray:
        """``int64 [N]``: 1 hard, 0 not hard, -1 unknown (missing value); a value that is neither
        0/1-like nor a named hard value raises a one-line error naming the column and value."""
        return np.fromiter((self._flag(v) for v in values), dtype=np.int64, count=len(values))

    def _flag(self, value: Any) -> int:
        if isinstance(value, (bool, np.bool_)):
            return int(bool(value)) if self.hard is None else int(str(bool(value)) in self.hard)
        if is_missing(value):
            return -1
        key = canonical(value)
        if self.hard is not None:
            return int(key in self.hard)
        if key.lower() in HARD_TOKENS or key.lower() in REST_TOKENS:
            return int(key.lower() in HARD_TOKENS)
        try:
            return int(float(key) > 0)
        except ValueError:
            raise DuetfairError(
                f"hidden column '{self.name}': value '{value}' is not 0/1, true/false or yes/no; "
                f"name the hard value(s), e.g. {self.name}={key}"
            ) from None

    def check(self, df: pd.DataFrame, where: str) -> None:
        """Refuse a table without the column or, for named hard values, without any of them
        (a typo would otherwise report no hard case at all)."""
        require(
            self.name in df.columns,
            f"{where}: hidden column '{self.name}' is missing; columns are {list(map(str, df.columns))}",
        )
        self.flags(df[self.name])
        if self.hard is not None:
            seen = {canonical(v) for v in df[self.name] if not is_missing(v)}
            require(
                bool(seen & set(self.hard)),
                f"{where}: hidden column '{self.name}' never holds "
                f"{list(self.hard)}; its values are {sorted(seen)[:10]}",
            )
