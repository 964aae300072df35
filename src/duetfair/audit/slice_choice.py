"""Which of the significant hidden failure slices are reported, and in which order.

:mod:`duetfair.audit.slices` tests every slice of every scope; this module keeps the findings a
reader wants from the slices that pass the multiple-testing threshold:

* **One finding per slice at its broadest scope** (``merge_scopes``): a slice significant in the
  whole table is listed inside a group only when it is worse there by more than ``redundancy_z``
  standard errors of the difference of the nested means (the rule of
  :func:`~duetfair.audit.discovery.redundant_itemsets`, with the group as the added item). A slice
  found overall and inside five groups is one finding, not six, and the narrow copies do not
  crowd the list.
* **A refinement instead of a broad slice** (``refine``): a single-descriptor slice is replaced,
  at its place in the ranking, by a significant two-descriptor refinement of it when the rest of
  the broad slice does not fail (its mean within ``redundancy_z`` standard errors of the scope's
  cases outside the broad slice, or better): the failure lies in the refinement.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

OVERALL = "overall"
"""``within`` of a slice of the whole table."""


@dataclass
class Mined:
    """Slices of one scope: item index tuples, sizes, means, p-values and redundancy."""

    items: list[tuple[int, ...]]
    n: np.ndarray
    mean: np.ndarray
    t: np.ndarray
    p: np.ndarray
    redundant: np.ndarray


@dataclass
class Scope:
    """A scope of the search: the whole table or one group, its rows and tested outcome."""

    within: str
    attribute: str | None
    group: str | None
    rows: np.ndarray  # row positions of the scope's cases with a finite outcome
    y: np.ndarray  # the outcome the scope's slices are tested on, [len(rows)]
    adjusted_for: tuple[str, ...] = ()  # attributes whose groups ``y`` is adjusted for


@dataclass
class Record:
    """One tested slice: its scope, the scope's mined slices, its index there, items and q-value."""

    scope: Scope
    mined: Mined
    k: int
    key: tuple[int, ...]
    q: float

    def divergence(self) -> float:
        """Mean of the scope's outcome in the slice minus the scope's mean."""
        return float(self.mined.mean[self.k] - self.scope.y.mean())

    def gap(self) -> float:
        """Mean of the scope's outcome in the slice minus the rest's."""
        n, total = self.mined.n[self.k], self.scope.y.size
        rest = (self.scope.y.sum() - self.mined.mean[self.k] * n) / (total - n)
        return float(self.mined.mean[self.k] - rest)

    def between_ss(self, sign: float) -> float:
        """Between-groups sum of squares of the split of the scope into the slice and the rest
        (``n (N - n) / N gap^2``), 0 when the slice scores better than the rest."""
        n, total, gap = self.mined.n[self.k], self.scope.y.size, self.gap()
        return float(n * (total - n) / total * gap**2) if sign * gap < 0 else 0.0

    def rank_key(self, rank: str, sign: float) -> float:
        """Sort key of :data:`duetfair.audit.slices.RANKS` (smaller first)."""
        gap = sign * self.gap()
        n, total = self.mined.n[self.k], self.scope.y.size
        if rank == "t":
            return float(sign * self.mined.t[self.k])
        if rank == "deficit":
            return float(gap * n)
        if rank == "explained":  # share of the scope's variance the split explains, signed
            ss = float(((self.scope.y - self.scope.y.mean()) ** 2).sum())
            return float(-(n * (total - n) / total) * gap**2 / ss) if ss > 0 else 0.0
        return float(gap)


def broadest_scopes(chosen: list[Record], sign: float, z: float) -> list[Record]:
    """One finding per slice definition at its broadest significant scope: a slice significant in
    the whole table is kept inside a group only when it is worse there by more than ``z`` standard
    errors of the difference of the nested means (the rule of
    :func:`~duetfair.audit.discovery.redundant_itemsets`, the group as the added item)."""
    overall = {r.key: r for r in chosen if r.scope.within == OVERALL}
    kept = []
    for r in chosen:
        parent = overall.get(r.key)
        if parent is not None and r is not parent:
            sd = float(np.std(parent.scope.y))
            se = sd * math.sqrt(max(1.0 / r.mined.n[r.k] - 1.0 / parent.mined.n[parent.k], 0.0))
            if sign * (r.divergence() - parent.divergence()) >= -z * se:
                continue
        kept.append(r)
    return kept


def refined(chosen: list[Record], x: np.ndarray, sign: float, z: float) -> list[Record]:
    """Each single-descriptor slice replaced, at its place in the ranking, by a significant
    two-descriptor refinement of it in the same scope when the rest of the broad slice does not
    fail: its mean is within ``z`` standard errors of the mean of the scope's cases outside the
    broad slice, or better (``x [n, m]``: the one-hot levels of every case). The failure then lies
    in the refinement; of several, the one whose split explains most of the scope's variance
    (``n (N - n) / N gap^2``). A slice is listed once, at its first place."""
    pairs: dict[tuple[str, int], list[Record]] = {}
    for c in chosen:
        if len(c.key) == 2:
            for item in c.key:
                pairs.setdefault((c.scope.within, item), []).append(c)
    out: list[Record] = []
    seen: set[tuple[str, tuple[int, ...]]] = set()
    for r in chosen:
        if len(r.key) == 1:
            children = [c for c in pairs.get((r.scope.within, r.key[0]), []) if _rest_holds(r, c, x, sign, z)]
            r = max(children, key=lambda c: c.between_ss(sign), default=r)
        if (r.scope.within, r.key) not in seen:
            seen.add((r.scope.within, r.key))
            out.append(r)
    return out


def _rest_holds(parent: Record, child: Record, x: np.ndarray, sign: float, z: float) -> bool:
    """Whether the cases of ``parent`` outside ``child`` score within ``z`` standard errors of the
    scope's cases outside ``parent`` (Welch), or better."""
    xs = x[parent.scope.rows]
    in_parent = xs[:, list(parent.key)].all(1)
    rest = in_parent & ~xs[:, list(child.key)].all(1)
    a, b = parent.scope.y[rest], parent.scope.y[~in_parent]
    if a.size < 2 or b.size < 2:
        return True
    se = math.sqrt(a.var(ddof=1) / a.size + b.var(ddof=1) / b.size)
    return bool(sign * (a.mean() - b.mean()) >= -z * se)
