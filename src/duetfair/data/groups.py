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
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Literal, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import DuetfairError, require
from duetfair.io import write_json

UNKNOWN = -1
"""Code of a missing or unseen attribute value."""

MISSING_TOKENS = frozenset({"", "nan", "-1", "missing", "unknown"})
"""Raw strings (stripped, case-insensitive) read as a missing attribute value. Words such as
``NA``, ``None`` or ``null`` are not among them: they can be group names (North America); a
table's own missing words are declared where it is read (``duetfair audit --missing NA``,
:func:`duetfair.io.read_table`), and in a column of numbers they are missing numbers."""

MAX_NUMERIC_LEVELS = 12
"""A column of numbers with more distinct values than this is continuous and must be binned."""

INTERSECTION_SEP = "+"
"""Separator of attributes in an intersection spec (``"race+sex"``)."""

LABEL_JOIN = " & "
"""Separator of the labels of an intersection group (``"Black & F"``)."""

# Standard binnings used by the papers (docs/conventions.md).
FAIRSEG_AGE_EDGES = (60.0,)
FAIRSEG_AGE_LABELS = ("<60", ">=60")
HAM_AGE_EDGES = (20.0, 40.0, 60.0, 80.0)
HAM_AGE_LABELS = ("<20", "20-39", "40-59", "60-79", ">=80")
MAMAMIA_AGE_EDGES = (40.0, 50.0, 60.0, 70.0)
MAMAMIA_AGE_LABELS = ("0-40", "41-50", "51-60", "61-70", "71+")


def is_missing(value: Any) -> bool:
    """True for ``None``, NaN, ``pd.NA``/``NaT``, the number -1 and the strings of
    :data:`MISSING_TOKENS` (empty, ``nan``, ``unknown``, ``missing``, ``-1``)."""
    if value is None:
        return True
    if isinstance(value, str):
        return value.strip().lower() in MISSING_TOKENS
    if (
        isinstance(value, (int, float, np.integer, np.floating))
        and not isinstance(value, (bool, np.bool_))
        and value == -1
    ):
        return True
    try:
        return bool(pd.isna(value))
    except (TypeError, ValueError):
        return False


def is_missing_number(value: Any) -> bool:
    """:func:`is_missing`, or a word for a missing number (``NA``, ``n/a``, ``null``, ``None``;
    :data:`duetfair.io.NUMBER_NA_TOKENS`): in a column of numbers (an attribute cut into bins) such
    a word cannot be a group name."""
    from duetfair.io import NUMBER_NA_TOKENS

    return is_missing(value) or (isinstance(value, str) and value.strip().lower() in NUMBER_NA_TOKENS)


def canonical(value: Any) -> str:
    """Canonical string of a raw categorical value: ``1``, ``1.0``, ``"1.0"`` and ``" 1 "`` -> ``"1"``.

    Numbers with an integral value lose their decimal part; strings are stripped (case kept).
    """
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        f = float(value)
        return str(int(f)) if f.is_integer() else repr(f)
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        return canonical(value.item())
    s = str(value).strip()
    try:  # numeric strings from text tables: "1.0" -> "1"
        f = float(s)
        if f.is_integer() and s.lower() not in ("inf", "-inf", "nan"):
            return str(int(f))
    except ValueError:
        pass
    return s


@dataclass
class AttributeSpec:
    """How one attribute becomes a code.

    Args:
        name: attribute name (the key in a case's ``attrs`` and the metadata column).
        values: group names, in code order (code ``k`` = ``values[k]``). For binned attributes
            these are the interval labels (``len(edges) + 1`` of them).
        edges: bin edges for a continuous attribute (e.g. age in years); ``None`` = categorical.
        right: binned only; ``False`` (default) -> intervals ``[e_k, e_{k+1})`` (``age < 60`` vs
            ``age >= 60``); ``True`` -> ``(e_k, e_{k+1}]`` (MAMA-MIA ``(40, 50]`` = ``41-50``).
        value_map: categorical only; raw value (canonical string) -> group name, applied before
            matching. Keys are compared case-insensitively.
        match: how ``value_map`` keys match a raw string: ``"exact"`` (default) or ``"prefix"``
            (the raw value starts with the key, e.g. ``"peri"`` matches ``"perimenopausal"``).
        missing: group name given to *missing* raw values; ``None`` (default) -> unknown (-1).
            MAMA-MIA treats missing menopause as its own ``"unknown"`` group.
        case_sensitive: categorical only; compare raw strings to ``values`` case-sensitively
            (default ``False``).
    """

    name: str
    values: list[str]
    edges: list[float] | None = None
    right: bool = False
    value_map: dict[str, str] | None = None
    match: Literal["exact", "prefix"] = "exact"
    missing: str | None = None
    case_sensitive: bool = False
    _lookup: dict[str, int] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        self.values = [str(v) for v in self.values]
        require(len(self.values) >= 1, f"attribute '{self.name}': needs at least one group value")
        require(
            len(set(self.values)) == len(self.values), f"attribute '{self.name}': duplicate group values {self.values}"
        )
        require(
            self.match in ("exact", "prefix"),
            f"attribute '{self.name}': match must be 'exact' or 'prefix', got '{self.match}'",
        )
        if self.edges is not None:
            self.edges = [float(e) for e in self.edges]
            require(
                all(a < b for a, b in zip(self.edges, self.edges[1:])),
                f"attribute '{self.name}': bin edges must increase strictly, got {self.edges}",
            )
            require(
                len(self.values) == len(self.edges) + 1,
                f"attribute '{self.name}': {len(self.edges)} edges need {len(self.edges) + 1} "
                f"labels, got {len(self.values)}",
            )
        if self.value_map is not None:
            self.value_map = {self._key(canonical(k)): str(v) for k, v in self.value_map.items()}
            bad = sorted(set(self.value_map.values()) - set(self.values))
            require(not bad, f"attribute '{self.name}': value_map targets {bad} are not in values {self.values}")
        require(
            self.missing is None or self.missing in self.values,
            f"attribute '{self.name}': missing group '{self.missing}' is not in values {self.values}",
        )
        self._lookup = {self._key(v): i for i, v in enumerate(self.values)}

    @property
    def binned(self) -> bool:
        """True when the attribute is continuous and cut into bins."""
        return self.edges is not None

    @property
    def cardinality(self) -> int:
        """Number of groups (codes ``0 .. cardinality - 1``)."""
        return len(self.values)

    def _key(self, s: str) -> str:
        return s if self.case_sensitive else s.lower()

    def encode(self, value: Any) -> int:
        """Code of one raw value; ``-1`` when missing (unless ``missing`` names a group) or unseen."""
        if is_missing_number(value) if self.binned else is_missing(value):
            return self._lookup[self._key(self.missing)] if self.missing is not None else UNKNOWN
        if self.binned:
            try:
                x = float(value)
            except (TypeError, ValueError):
                return UNKNOWN
            if not math.isfinite(x):
                return UNKNOWN
            return int(np.digitize([x], self.edges, right=self.right)[0])
        key = self._key(canonical(value))
        if self.value_map is not None:
            mapped = self._map(key)
            if mapped is not None:
                key = self._key(mapped)
        return self._lookup.get(key, UNKNOWN)

    def _map(self, key: str) -> str | None:
        assert self.value_map is not None
        if key in self.value_map:
            return self.value_map[key]
        if self.match == "prefix":
            for k in sorted(self.value_map, key=len, reverse=True):
                if key.startswith(k):
                    return self.value_map[k]
        return None

    def encode_series(self, values: pd.Series | Sequence[Any]) -> np.ndarray:
        """Codes of many raw values -> int64 array ``[N]`` (each distinct value encoded once)."""
        s = (values if isinstance(values, pd.Series) else pd.Series(list(values), dtype=object)).reset_index(drop=True)
        if self.binned:
            return self._encode_numeric(s)
        codes, uniques = pd.factorize(s, use_na_sentinel=True)
        table = np.array([self.encode(u) for u in uniques] + [self.encode(None)], dtype=np.int64)
        return table[codes]  # code -1 (NaN) takes the last entry, the code of a missing value

    def _encode_numeric(self, s: pd.Series) -> np.ndarray:
        assert self.edges is not None
        x = pd.to_numeric(s, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        codes = np.digitize(np.nan_to_num(x, nan=0.0, posinf=0.0, neginf=0.0), self.edges, right=self.right).astype(
            np.int64
        )
        missing = s.map(is_missing_number).to_numpy(dtype=bool)
        codes[~np.isfinite(x)] = UNKNOWN
        codes[missing] = self.encode(None)
        return codes

    def labels(self, values: pd.Series | Sequence[Any]) -> pd.Categorical:
        """Group label of every raw value (categories = :attr:`values` in code order, NaN = unknown)."""
        return pd.Categorical.from_codes(self.encode_series(values), categories=list(self.values))

    def to_dict(self) -> dict[str, Any]:
        """JSON/YAML-safe description."""
        d: dict[str, Any] = {"name": self.name, "values": list(self.values)}
        if self.edges is not None:
            d["edges"] = list(self.edges)
            d["right"] = self.right
        if self.value_map is not None:
            d["value_map"] = dict(self.value_map)
            d["match"] = self.match
        if self.missing is not None:
            d["missing"] = self.missing
        if self.case_sensitive:
            d["case_sensitive"] = True
        return d

    @classmethod
    def from_dict(cls, d: Mapping[str, Any]) -> "AttributeSpec":
        """Inverse of :meth:`to_dict`."""
        require(
            isinstance(d, Mapping) and "name" in d and "values" in d,
            f"attribute spec must be a mapping with 'name' and 'values', got {d!r}",
        )
        allowed = {"name", "values", "edges", "right", "value_map", "match", "missing", "case_sensitive"}
        extra = sorted(set(d) - allowed)
        require(not extra, f"attribute spec '{d['name']}': unknown keys {extra}; expected {sorted(allowed)}")
        return cls(**dict(d))


def _fmt(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def bin_labels(edges: Sequence[float], right: bool = False) -> list[str]:
    """Labels of the intervals cut at ``edges`` (the one definition of bin labels).

    ``right=False`` (left-closed, ``[a, b)``): ``[20, 40]`` -> ``<20, 20-39, >=40``;
    ``right=True`` (right-closed, ``(a, b]``): ``[40, 50]`` -> ``<=40, 41-50, >50``.
    Integer edges give inclusive integer ranges; other edges give interval notation.
    """
    e = [float(x) for x in edges]
    integral = all(x.is_integer() for x in e)
    labels = [f"<={_fmt(e[0])}" if right else f"<{_fmt(e[0])}"]
    for lo, hi in zip(e, e[1:]):
        if not integral:
            labels.append(f"({_fmt(lo)}, {_fmt(hi)}]" if right else f"[{_fmt(lo)}, {_fmt(hi)})")
        elif hi - lo == 1:
            labels.append(_fmt(hi) if right else _fmt(lo))
        else:
            labels.append(f"{_fmt(lo + 1)}-{_fmt(hi)}" if right else f"{_fmt(lo)}-{_fmt(hi - 1)}")
    labels.append(f">{_fmt(e[-1])}" if right else f">={_fmt(e[-1])}")
    return labels


def parse_bins(text: str) -> tuple[str, dict[str, Any]]:
    """Parse ``"age=20,40,60,80"`` (left-closed) or ``"age=40,50,60,70:right"`` (right-closed)
    -> ``("age", {"edges": [...], "right": bool})``, the ``bins`` entry of :meth:`GroupSpec.infer`."""
    require("=" in text, f"--bins '{text}': expected ATTR=EDGE,EDGE,... such as age=20,40,60,80")
    name, _, rest = text.partition("=")
    name = name.strip()
    require(name != "", f"--bins '{text}': missing attribute name before '='")
    edges_txt, _, closed = rest.partition(":")
    closed = closed.strip().lower() or "left"
    require(closed in ("left", "right"), f"--bins '{text}': closure '{closed}' must be 'left' or 'right'")
    try:
        edges = [float(x) for x in edges_txt.split(",") if x.strip() != ""]
    except ValueError:
        raise DuetfairError(
            f"--bins '{text}': edges must be numbers separated by commas, such as age=20,40,60,80"
        ) from None
    require(len(edges) >= 1, f"--bins '{text}': expected at least one edge")
    require(all(math.isfinite(x) for x in edges), f"--bins '{text}': edges must be finite")
    require(all(b > a for a, b in zip(edges, edges[1:])), f"--bins '{text}': edges must be strictly increasing")
    return name, {"edges": edges, "right": closed == "right"}


def binned(
    name: str, edges: Sequence[float], labels: Sequence[str] | None = None, *, right: bool = False
) -> AttributeSpec:
    """Spec of a continuous attribute cut at ``edges``; default labels from :func:`bin_labels`."""
    edges = [float(e) for e in edges]
    labels = bin_labels(edges, right) if labels is None else labels
    return AttributeSpec(name=name, values=list(labels), edges=edges, right=right)


def categorical(
    name: str,
    values: Sequence[Any],
    *,
    value_map: Mapping[Any, str] | None = None,
    match: Literal["exact", "prefix"] = "exact",
    missing: str | None = None,
) -> AttributeSpec:
    """Spec of a categorical attribute with group names ``values`` (code order)."""
    vm = {canonical(k): str(v) for k, v in value_map.items()} if value_map is not None else None
    return AttributeSpec(name=name, values=[canonical(v) for v in values], value_map=vm, match=match, missing=missing)


class GroupSpec:
    """Which attributes define subgroups and how raw values become codes.

    Args:
        attributes: one :class:`AttributeSpec` per attribute, in code order (also accepted: their
            ``to_dict()`` mappings).

    Example::

        spec = GroupSpec([categorical("race", ["Asian", "Black", "White"],
                                      value_map={0: "Asian", 1: "Black", 2: "White"}),
                          binned("age", [60], ["<60", ">=60"])])
        spec.encode({"race": 2, "age": 71.5})         # [2, 1]
        spec.intersection(torch.tensor([[2, 1]]))      # tensor([5])
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
        bins: Mapping[str, Sequence[float] | Mapping[str, Any]] | None = None,
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
        text = p.read_text(encoding="utf-8")
        try:
            if p.suffix.lower() in (".yaml", ".yml"):
                import yaml

                data = yaml.safe_load(text)
            else:
                data = json.loads(text)
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
