"""Hidden failure slices: cases that fail, described by what they look like, inside every group.

A subgroup mean hides hard cases inside the group, and nobody has a column that names them. The
case descriptors of ``cases.csv`` (``desc_*``, :mod:`duetfair.metrics.descriptors`) describe every
case by its structure (size, shape, location), its image (contrast, texture, edges, blur, noise)
and its error. This module turns them into plain-word levels and searches for slices of cases, in
the whole table and inside every patient group, whose metric is worse than the rest's:

* **Levels.** Each descriptor with words (:attr:`Descriptor.levels`) is cut at its tertiles over
  all cases (``levels=3``; 2: halves) into words such as ``small`` / ``medium-sized`` /
  ``large``. ``contrast`` gives two attributes: the tertiles of its magnitude (``low-contrast``
  ...) and, when both signs hold at least ``min_support`` of the cases, its sign (``darker`` /
  ``lighter than the surroundings``); ``components`` is ``one-piece`` or ``fragmented``. A
  table with several structures per case has one attribute per structure (``contrast[cup]``).
  Error descriptors describe how a slice fails; they never define one.
* **Slices** are single levels and conjunctions of two levels of different descriptors
  (``max_length``; longer ones are hard to read and overfit). Their counts and means come from
  products of the one-hot level matrix (DivExplorer's miner enumerates every frequent itemset
  whatever its length, which on correlated descriptors takes minutes).
* **Scopes**: the whole table (``overall``) and every group of every audited attribute with at
  least ``2 min_n`` cases; a slice is compared with the rest of its scope. The outcome of the
  whole table is adjusted for the audited groups (``overall="adjusted"``, :func:`group_adjusted`),
  that of a group for the groups of the other attributes (``within="adjusted"``): a slice is
  compared with cases of the same groups, so that a known group's gap does not pass for a hidden
  slice (inside ``sex=Female``, the descriptors that go with a harder race).
* **Tests** as in :mod:`duetfair.audit.discovery`: Welch's t-test of the slice against the rest
  (:func:`~duetfair.audit.discovery.welch_vs_rest`), Benjamini-Hochberg q-values over every slice
  tested in **every** scope together (one family, so that more groups do not mean more false
  slices), then redundancy pruning (:func:`~duetfair.audit.discovery.redundant_itemsets`: a
  conjunction whose divergence is within ``redundancy_z`` standard errors of one of its parts').
  A slice needs ``min_n`` cases and ``min_support`` of its scope, and leaves ``min_n`` outside.
* **Reported** (``hidden_slices``): the significant slices that score worse than the rest of their
  scope, one finding per slice at its broadest scope (``merge_scopes``) and a broad slice replaced
  by its refinement where the failure lies (``refine``; both in :mod:`duetfair.audit.slice_choice`),
  worst first by ``rank`` (default ``t``), at most ``max_slices``: the definition in
  words, ``within`` (``overall`` or ``attribute=group``), ``n`` and ``share`` of the scope, ``mean``,
  ``mean_rest``, ``gap`` (slice minus rest) with a Welch confidence interval, ``p`` and ``q``,
  ``failure_rate`` (share of its cases beyond the failure cut-off), ``share_of_failures`` (share of
  the scope's failing cases it holds), the median error descriptors and ``members`` (case ids).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Any, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.audit.discovery import DEFAULT_REDUNDANCY_Z, bh_q_values, redundant_itemsets, welch_vs_rest
from duetfair.audit.slice_choice import OVERALL, Mined, Record, Scope, broadest_scopes, refined
from duetfair.errors import require
from duetfair.metrics.descriptors import POLARITY_WORDS, descriptor_columns, descriptor_of

RANKS = ("gap", "t", "deficit", "explained")
"""Orders of the reported slices: most negative gap, most negative Welch t, largest deficit
(cases x gap: the metric the slice costs in total), largest share of the scope's variance explained
by splitting it into the slice and the rest (``n (N - n) / N gap^2 / SS``)."""

OVERALL_MODES = ("adjusted", "raw")
"""Outcome of the ``overall`` scope: adjusted for the audited groups (:func:`group_adjusted`) or raw;
of a group's scope (``within``): adjusted for the groups of the other audited attributes, or raw."""


@dataclass(frozen=True)
class SliceSettings:
    """Settings of the slice search (each a named choice, stored in ``audit.json``; module
    docstring). ``overall`` / ``within``: the outcome of the whole table / of a group adjusted for
    the (other) audited groups, or ``"raw"``. ``merge_scopes``: one finding per slice at its
    broadest significant scope. ``refine``: a broad slice replaced by the refinement that holds
    its failure. ``redundancy_z`` is the tolerance of the last two as of the redundancy pruning."""

    levels: int = 3
    min_support: float = 0.05
    min_n: int = 10
    max_length: int = 2
    fdr: float = 0.05
    redundancy_z: float | None = DEFAULT_REDUNDANCY_Z
    max_slices: int = 20
    rank: str = "t"
    overall: str = "adjusted"
    within: str = "adjusted"
    merge_scopes: bool = True
    refine: bool = True
    level: float = 0.95

    def check(self) -> None:
        """One-line errors for bad settings."""
        require(self.levels in (2, 3), f"slice levels={self.levels}: expected 2 (halves) or 3 (tertiles)")
        require(0.0 < self.min_support < 1.0, f"slice min_support={self.min_support}: expected a fraction in (0, 1)")
        require(self.min_n >= 2, f"slice min_n={self.min_n}: expected at least 2 cases")
        require(self.max_length in (1, 2), f"slice max_length={self.max_length}: expected 1 or 2")
        require(self.rank in RANKS, f"slice rank '{self.rank}': expected one of {', '.join(RANKS)}")
        require(self.overall in OVERALL_MODES, f"slice overall '{self.overall}': expected adjusted or raw")
        require(self.within in OVERALL_MODES, f"slice within '{self.within}': expected adjusted or raw")
        require(0.0 < self.fdr < 1.0, f"slice fdr={self.fdr}: expected a false discovery rate in (0, 1)")


@dataclass(frozen=True)
class SliceAttribute:
    """A binned descriptor: its name (``contrast[cup]``, ``polarity``), source column, structure
    (``cup``; None for one structure per case), words and whether they go before the noun."""

    name: str
    column: str
    structure: str | None
    attributive: bool


# ---- levels ------------------------------------------------------------------------------------


def _quantile_words(values: np.ndarray, words: Sequence[str], levels: int) -> np.ndarray | None:
    """Each value's word by its quantile bin (``levels`` bins over the finite values, right-closed
    like ``pandas.qcut``; tied edges merge bins); None when fewer than 2 bins remain."""
    ok = np.isfinite(values)
    if ok.sum() < levels:
        return None
    edges = np.unique(np.quantile(values[ok], np.arange(1, levels) / levels))
    idx = np.searchsorted(edges, values, side="left")
    used = np.unique(idx[ok])
    if used.size < 2:
        return None
    names = [words[0], words[1], words[2]] if levels == 3 else [words[0], words[2]]
    if len(edges) + 1 < levels:  # merged bins: lowest and highest words only
        names = [words[0], words[2]]
    out = np.array([names[min(i, len(names) - 1)] for i in idx], dtype=object)
    out[~ok] = None
    return out


def _structure_of(column: str) -> str | None:
    if "[" not in column:
        return None
    name = column[column.index("[") + 1 : -1]
    return f"label {name}" if name.lstrip("-").isdigit() else name


def descriptor_levels(
    frame: pd.DataFrame, *, levels: int = 3, min_share: float = 0.05
) -> tuple[pd.DataFrame, list[SliceAttribute]]:
    """Plain-word levels of the descriptors of a case-level table (module docstring).

    Returns a frame aligned with ``frame`` (one object column per slice attribute, None where the
    descriptor is undefined) and the attributes in column order.
    """
    cols: dict[str, np.ndarray] = {}
    attrs: list[SliceAttribute] = []
    for column in descriptor_columns(frame):
        d = descriptor_of(column)
        if d is None or d.levels is None:
            continue
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=np.float64)
        structure = _structure_of(column)
        suffix = column[len(d.column) :]
        found: list[tuple[str, np.ndarray | None, bool]] = []
        if d.name == "components":
            words = np.where(values > 1.5, d.levels[2], d.levels[0]).astype(object)
            words[~np.isfinite(values)] = None
            found.append((d.name + suffix, words if len(set(words[np.isfinite(values)])) > 1 else None, True))
        elif d.name == "contrast":
            found.append((d.name + suffix, _quantile_words(np.abs(values), d.levels, levels), True))
            found.append(("polarity" + suffix, _polarity(values, min_share), False))
        else:
            found.append((d.name + suffix, _quantile_words(values, d.levels, levels), d.attributive))
        for name, named, attributive in found:
            if named is not None:
                cols[name] = named
                attrs.append(SliceAttribute(name, column, structure, attributive))
    return pd.DataFrame(cols, index=frame.index), attrs


def _polarity(contrast: np.ndarray, min_share: float) -> np.ndarray | None:
    """``darker`` / ``lighter than the surroundings`` when both hold ``min_share`` of the cases."""
    ok = np.isfinite(contrast) & (contrast != 0)
    if ok.sum() == 0 or min((contrast[ok] < 0).mean(), (contrast[ok] > 0).mean()) < min_share:
        return None
    out = np.where(contrast < 0, POLARITY_WORDS[0], POLARITY_WORDS[1]).astype(object)
    out[~ok] = None
    return out


def definition(itemset: Mapping[str, str], attrs: Mapping[str, SliceAttribute]) -> str:
    """A slice in words: ``small, low-contrast structures`` or ``small cup and rim darker than the
    surroundings`` (several structures per case)."""
    parts = [(attrs[name], word) for name, word in itemset.items()]
    if all(a.structure is None for a, _ in parts):
        before = [w for a, w in parts if a.attributive]
        after = [w for a, w in parts if not a.attributive]
        return " ".join([", ".join([*before, "structures"]).replace(", structures", " structures"), *after])
    return " and ".join(
        f"{w} {a.structure or 'structure'}" if a.attributive else f"{a.structure or 'structure'} {w}" for a, w in parts
    )


# ---- mining ------------------------------------------------------------------------------------


def _one_hot(levels: pd.DataFrame) -> tuple[np.ndarray, list[tuple[str, str]], np.ndarray]:
    """``(X [n, m] bool, items [(attribute, word)], attribute index of each item [m])``."""
    blocks, items, owner = [], [], []
    for k, name in enumerate(levels.columns):
        col = levels[name].to_numpy(dtype=object)
        for word in dict.fromkeys(w for w in col if w is not None):
            blocks.append(col == word)
            items.append((str(name), str(word)))
            owner.append(k)
    x = np.stack(blocks, 1) if blocks else np.zeros((len(levels), 0), dtype=bool)
    return x, items, np.asarray(owner, dtype=np.int64)


def _mine(y: np.ndarray, x: np.ndarray, owner: np.ndarray, settings: SliceSettings) -> Mined:
    """Every slice of length 1..``max_length`` of one scope (``y [n]`` finite outcomes, ``x [n, m]``)."""
    n_all = y.size
    mu = float(y.mean())
    d2 = (y - mu) ** 2
    xf = x.astype(np.float64)
    counts = [xf.sum(0)]
    sums = [xf.T @ y]
    sq = [xf.T @ d2]
    keys: list[tuple[int, ...]] = [(i,) for i in range(x.shape[1])]
    if settings.max_length >= 2 and x.shape[1] > 1:
        i, j = np.triu_indices(x.shape[1], 1)
        keep = owner[i] != owner[j]
        i, j = i[keep], j[keep]
        counts.append((xf.T @ xf)[i, j])
        sums.append((xf.T @ (xf * y[:, None]))[i, j])
        sq.append((xf.T @ (xf * d2[:, None]))[i, j])
        keys += list(zip(i.tolist(), j.tolist()))
    n = np.concatenate(counts)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = np.concatenate(sums) / n
        msd = np.concatenate(sq) / n
    floor = max(settings.min_n, math.ceil(settings.min_support * n_all))
    tested = (n >= floor) & (n_all - n >= settings.min_n)
    t, p = welch_vs_rest(n[tested], mean[tested], msd[tested], n_all, mu, float(d2.sum()))
    idx = np.flatnonzero(tested)
    div = {frozenset(): 0.0, **{frozenset(keys[k]): float(mean[k] - mu) for k in range(len(keys)) if n[k] > 0}}
    size = {frozenset(): n_all, **{frozenset(keys[k]): int(n[k]) for k in range(len(keys)) if n[k] > 0}}
    dropped = (
        redundant_itemsets(div, size, sd=float(np.std(y)), z=settings.redundancy_z)
        if settings.redundancy_z is not None
        else set()
    )
    return Mined(
        items=[keys[k] for k in idx],
        n=n[idx].astype(np.int64),
        mean=mean[idx],
        t=np.asarray(t, dtype=np.float64),
        p=np.asarray(p, dtype=np.float64),
        redundant=np.array([frozenset(keys[k]) in dropped for k in idx], dtype=bool),
    )


# ---- the search --------------------------------------------------------------------------------


def group_adjusted(y: np.ndarray, labels: Mapping[str, pd.Series]) -> np.ndarray:
    """``y`` minus what the audited groups explain: the residual of a least-squares fit of ``y`` on
    the groups of every attribute (one-hot, unknown as a level of its own), plus the mean of
    ``y`` (so the values stay on the metric's scale). A slice of these values is compared with
    cases of the same groups."""
    if not labels:
        return y
    dummies = [pd.get_dummies(lab.astype(object).fillna("(unknown)"), drop_first=True) for lab in labels.values()]
    design = np.column_stack([np.ones(y.size), *[d.to_numpy(dtype=np.float64) for d in dummies]])
    coef, *_ = np.linalg.lstsq(design, y, rcond=None)
    return y - design @ coef + y.mean()


def _scopes(y: np.ndarray, labels: Mapping[str, pd.Series], finite: np.ndarray, settings: SliceSettings) -> list[Scope]:
    """The whole table and every group with at least ``2 min_n`` cases with a finite outcome. The
    outcome of the whole table is adjusted for the groups of every attribute (``overall="adjusted"``),
    that of a group for the groups of the other attributes (``within="adjusted"``): a slice is then
    compared with cases of the same groups, and a known group's gap cannot pass for a hidden slice
    (inside ``sex=Female``, a slice of the descriptors that go with a worse race is not hidden)."""

    def scope(within: str, attr: str | None, group: str | None, rows: np.ndarray, adjust: bool) -> Scope:
        others = {a: lab[rows] for a, lab in labels.items() if a != attr} if adjust else {}
        return Scope(within, attr, group, rows, group_adjusted(y[rows], others), tuple(others))

    out = [scope(OVERALL, None, None, np.flatnonzero(finite), settings.overall == "adjusted")]
    for attr, lab in labels.items():
        values = lab.astype(object).to_numpy()
        for group in lab.cat.categories:
            rows = np.flatnonzero(finite & (values == group))
            if rows.size >= 2 * settings.min_n:
                out.append(scope(f"{attr}={group}", attr, str(group), rows, settings.within == "adjusted"))
    return out


def find_slices(
    frame: pd.DataFrame,
    metric: str,
    labels: Mapping[str, pd.Series],
    *,
    higher_better: bool = True,
    failure_threshold: float | None = None,
    settings: SliceSettings = SliceSettings(),
) -> dict[str, Any]:
    """Hidden failure slices of a case-level table (module docstring).

    Args:
        frame: one row per case: ``case_id``, ``metric`` and descriptor columns.
        metric: the per-case metric column.
        labels: group label of every row per audited attribute (categorical, NaN = unknown),
            aligned with ``frame``.
        higher_better: direction of the metric (a failing slice has a lower mean, or higher).
        failure_threshold: the metric's failure cut-off (None: no failure shares).
        settings: :class:`SliceSettings`.

    Returns:
        ``{"hidden_slices": [...], "slice_search": {...}}`` (``slice_search``: the metric, the
        slice attributes, scopes, tests, how many passed, the most divergent slice when none did).
    """
    settings.check()
    y_all = pd.to_numeric(frame[metric], errors="coerce").to_numpy(dtype=np.float64)
    finite = np.isfinite(y_all)
    labels = {a: pd.Series(lab).reset_index(drop=True) for a, lab in labels.items()}
    levels, attrs = descriptor_levels(frame, levels=settings.levels, min_share=settings.min_support)
    x_all, items, owner = _one_hot(levels)
    scopes = _scopes(y_all, labels, finite, settings) if x_all.shape[1] else []
    mined = [_mine(s.y, x_all[s.rows], owner, settings) for s in scopes]
    records = _records(scopes, mined)
    sign = 1.0 if higher_better else -1.0
    worse = [r for r in records if np.isfinite(r.mined.t[r.k]) and sign * r.mined.t[r.k] < 0]
    significant = [r for r in worse if r.q <= settings.fdr and not r.mined.redundant[r.k]]
    chosen = _reported(significant, x_all, sign, settings)
    context = _Context(frame, y_all, x_all, items, {a.name: a for a in attrs}, failure_threshold, higher_better)
    slices = [_entry(r, context, settings) for r in chosen[: settings.max_slices]]
    top = min(worse, key=lambda r: r.q, default=None) if not slices else None
    return {
        "hidden_slices": slices,
        "slice_search": {
            "metric": metric,
            "higher_is_better": bool(higher_better),
            "attributes": [a.name for a in attrs],
            "overall_adjusted_for": list(labels) if settings.overall == "adjusted" else [],
            "within_adjusted": settings.within == "adjusted" and len(labels) > 1,
            "scopes": [{"within": s.within, "n": int(s.rows.size)} for s in scopes],
            "n_tests": len(records),
            "n_significant": len(significant),
            "most_divergent": None if top is None else _entry(top, context, settings),
            "failure_threshold": failure_threshold,
            "settings": asdict(settings),
        },
    }


def _records(scopes: list[Scope], mined: list[Mined]) -> list[Record]:
    """Every tested slice of every scope with its Benjamini-Hochberg q-value over all of them."""
    q_all = bh_q_values(np.concatenate([m.p for m in mined]) if mined else np.zeros(0))
    records, start = [], 0
    for scope, m in zip(scopes, mined):
        records += [Record(scope, m, k, key, float(q_all[start + k])) for k, key in enumerate(m.items)]
        start += len(m.items)
    return records


def _reported(significant: list[Record], x: np.ndarray, sign: float, settings: SliceSettings) -> list[Record]:
    """The significant slices as reported: merged to their broadest scopes, ranked, refined."""
    z = settings.redundancy_z or 0.0
    chosen = broadest_scopes(significant, sign, z) if settings.merge_scopes else list(significant)
    chosen.sort(key=lambda r: r.rank_key(settings.rank, sign))
    return refined(chosen, x, sign, z) if settings.refine else chosen


@dataclass
class _Context:
    frame: pd.DataFrame
    y: np.ndarray
    x: np.ndarray
    items: list[tuple[str, str]]
    attrs: dict[str, SliceAttribute]
    threshold: float | None
    higher_better: bool


def _entry(r: Record, c: _Context, settings: SliceSettings) -> dict[str, Any]:
    """The reported form of one slice (``gap`` and its interval on the scope's tested outcome)."""
    from scipy import stats

    itemset = {c.items[i][0]: c.items[i][1] for i in r.key}
    member = c.x[r.scope.rows][:, list(r.key)].all(1)
    inside = np.zeros(len(c.frame), dtype=bool)
    inside[r.scope.rows[member]] = True
    a, b = c.y[r.scope.rows[member]], c.y[r.scope.rows[~member]]
    ci = stats.ttest_ind(r.scope.y[member], r.scope.y[~member], equal_var=False).confidence_interval(settings.level)
    out: dict[str, Any] = {
        "definition": definition(itemset, c.attrs),
        "within": r.scope.within,
        "attribute": r.scope.attribute,
        "group": r.scope.group,
        "itemset": itemset,
        "descriptors": sorted({c.attrs[name].column for name in itemset}),
        "n": int(member.sum()),
        "share": float(member.mean()),
        "mean": float(a.mean()),
        "mean_rest": float(b.mean()),
        "gap": r.gap(),
        "gap_ci": [float(ci.low), float(ci.high)],
        "gap_adjusted": bool(r.scope.adjusted_for),
        "adjusted_for": list(r.scope.adjusted_for),
        "p": float(r.mined.p[r.k]),
        "q": float(r.q),
        "significant": bool(r.q <= settings.fdr),
    }
    out.update(_failures(a, b, c.threshold, c.higher_better))
    out.update(_error_profile(c.frame, inside))
    out["members"] = case_ids(c.frame)[inside].tolist()
    return out


def case_ids(frame: pd.DataFrame) -> np.ndarray:
    """The case ids of a table as text (its ``case_id`` column, else its row labels)."""
    ids = frame["case_id"] if "case_id" in frame.columns else pd.Series(frame.index, index=frame.index)
    return ids.astype(str).to_numpy()


def _failures(a: np.ndarray, b: np.ndarray, threshold: float | None, higher_better: bool) -> dict[str, Any]:
    """Failure rate of the slice and its share of the scope's failures (None without a cut-off)."""
    if threshold is None:
        return {"failure_rate": None, "share_of_failures": None}
    fail_a = a < threshold if higher_better else a > threshold
    fail_b = b < threshold if higher_better else b > threshold
    total = int(fail_a.sum() + fail_b.sum())
    return {
        "failure_rate": float(fail_a.mean()),
        "share_of_failures": float(fail_a.sum() / total) if total else None,
    }


def _error_profile(frame: pd.DataFrame, inside: np.ndarray) -> dict[str, Any]:
    """Median signed volume error and boundary share of the slice's error (over its structures)."""
    out: dict[str, Any] = {}
    for name in ("volume_error", "error_boundary_share"):
        cols = [col for col in descriptor_columns(frame) if col.partition("[")[0] == f"desc_{name}"]
        if cols:
            values = frame.loc[inside, cols].apply(pd.to_numeric, errors="coerce").to_numpy(dtype=np.float64)
            out[f"median_{name}"] = float(np.nanmedian(values)) if np.isfinite(values).any() else None
    return out


# ---- entry point of the audit ------------------------------------------------------------------


def case_frame(df: pd.DataFrame, metric: str, class_: Any | None = None) -> pd.DataFrame:
    """The case-level table the slices are searched in: the rows of ``class_``, or one row per case
    (metric averaged over classes, descriptors per class: :func:`~duetfair.metrics.cases.case_level`)."""
    from duetfair.metrics.cases import case_level

    if "class" not in df.columns:
        return df
    if class_ is not None:
        return df[df["class"].astype(str) == str(class_)].reset_index(drop=True)
    if df["class"].nunique(dropna=True) <= 1:
        return df.reset_index(drop=True)
    return case_level(df, [metric])


def slice_audit(
    df: pd.DataFrame,
    metric: str,
    by: Sequence[str],
    *,
    spec: Any = None,
    bins: Mapping[str, Any] | None = None,
    class_: Any | None = None,
    failure_threshold: float | None = None,
    settings: SliceSettings = SliceSettings(),
    adjust: Sequence[str] = (),
    n_boot: int = 1000,
    seed: int = 0,
) -> dict[str, Any]:
    """The audit's slice entries for the per-case table ``df`` and its first metric: the hidden
    failure slices (:func:`find_slices`, when ``df`` has descriptors) and the size- and
    confounder-controlled gaps (:func:`duetfair.audit.confounding.adjusted_gaps`) under
    ``adjusted_gaps``."""
    from duetfair.audit.confounding import adjusted_gaps
    from duetfair.data.groups import GroupSpec
    from duetfair.metrics.hidden import higher_is_better

    frame = case_frame(df, metric, class_)
    missing = [c for c in adjust if c not in frame.columns]
    require(not missing, f"--adjust {missing[0] if missing else ''}: not a column of the per-case table")
    groups = GroupSpec.for_table(frame, list(dict.fromkeys([*by, *adjust])), bins=bins, base=spec)
    hb = higher_is_better(metric)
    out: dict[str, Any] = {}
    if descriptor_columns(frame):
        labels = {a: groups.labels(frame, a) for a in by}
        out.update(
            find_slices(frame, metric, labels, higher_better=hb, failure_threshold=failure_threshold, settings=settings)
        )
    gaps = adjusted_gaps(
        frame, metric, by, groups, adjust=adjust, higher_better=hb, n_boot=n_boot, seed=seed, level=settings.level
    )
    out["adjusted_gaps"] = {"metric": metric, "adjust": list(adjust), "attributes": gaps}
    return out
