"""Discovered subclasses ("No Subclass Left Behind", Sohoni et al., NeurIPS 2020): cluster every
patient group's training cases, then train robustly over the clusters.

A first, plain model is trained (config ``objective.first_stage``; the trainer runs it). Inside
every objective group its training cases are clustered with k-means (``sklearn.cluster.KMeans``)
in one feature space of :class:`~duetfair.objectives.stage.FirstStageCases` (the first model's
features, the case descriptors, or its per-case Dice). Group ``g``'s cluster ``c`` is subclass
``g * clusters + c``; the second model is trained from scratch with GroupDRO over the subclasses
(:class:`~duetfair.objectives.group_dro.GroupDRO`: the worst subclass's loss is up-weighted), and,
with ``balance`` (default, as the GroupDRO recipe), on batches that draw every subclass equally
often. A subclass that holds a group's hidden hard cases is then trained like a group of its own
without anyone having labelled it.

A group with fewer than ``clusters * min_size`` cases gets fewer clusters (at least one), so no
subclass is smaller than ``min_size`` cases at the time of clustering; unknown-attribute cases keep
ERM weights (``-1``), as in GroupDRO.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import DuetfairError, require
from duetfair.objectives.base import Objective, ObjectiveContext
from duetfair.objectives.group_dro import GroupDRO, group_balanced_weights
from duetfair.objectives.stage import FEATURE_SPACES, FeatureSpace

__all__ = ["SubclassDRO", "GroupClusters", "cluster_within_groups", "fit_group_clusters"]


@dataclass(frozen=True)
class GroupClusters:
    """k-means clusters found inside every group, numbered by size (largest ``c0``).

    Attributes:
        labels: ``[N]`` int64 subclass ids ``g * clusters + c`` of the clustered cases (``-1``
            for unknown groups).
        centroids: ``[G, clusters, D]`` float64 cluster centres, row ``[g, c]`` = cluster ``c``
            of group ``g``; NaN for the clusters a small group does not have.
        clusters: clusters per group ``k``.
    """

    labels: np.ndarray
    centroids: np.ndarray
    clusters: int

    def assign(self, x: np.ndarray, groups: np.ndarray) -> np.ndarray:
        """Subclass ids ``[N]`` of new cases: the nearest centre of their own group.

        Args:
            x: ``[N, D]`` coordinates in the clustering's space.
            groups: ``[N]`` group ids (``-1`` unknown, or a group never clustered: subclass ``-1``).
        """
        groups = np.asarray(groups, dtype=np.int64)
        out = np.full(groups.shape, -1, dtype=np.int64)
        for g in np.unique(groups[(groups >= 0) & (groups < self.centroids.shape[0])]):
            idx = np.flatnonzero(groups == g)
            dist = ((x[idx, None, :] - self.centroids[g][None]) ** 2).sum(-1)  # [n, k], NaN = no cluster
            if np.isnan(dist).all():
                continue
            out[idx] = g * self.clusters + np.argmin(np.where(np.isnan(dist), np.inf, dist), axis=1)
        return out


def fit_group_clusters(
    x: np.ndarray, groups: np.ndarray, *, clusters: int, min_size: int = 8, seed: int = 0
) -> GroupClusters:
    """k-means inside every group (``sklearn.cluster.KMeans``), clusters numbered by size.

    Args:
        x: ``[N, D]`` coordinates of the cases.
        groups: ``[N]`` group ids (``-1`` unknown: subclass ``-1``).
        clusters: clusters per group (fewer for a group smaller than ``clusters * min_size``).
        min_size: smallest cluster size aimed at.
        seed: k-means initialisation seed.
    """
    from sklearn.cluster import KMeans

    require(clusters >= 1, f"subclass_dro: clusters must be >= 1, got {clusters}")
    require(min_size >= 1, f"subclass_dro: min_size must be >= 1, got {min_size}")
    x = np.asarray(x, dtype=np.float64)
    groups = np.asarray(groups, dtype=np.int64)
    out = np.full(groups.shape, -1, dtype=np.int64)
    known = np.unique(groups[groups >= 0])
    centroids = np.full((int(known.max()) + 1 if known.size else 0, clusters, x.shape[1]), np.nan)
    for g in known:
        idx = np.flatnonzero(groups == g)
        k = max(1, min(clusters, idx.size // min_size))
        labels, centres = np.zeros(idx.size, dtype=np.int64), x[idx].mean(axis=0, keepdims=True)
        if k > 1:
            km = KMeans(n_clusters=k, n_init=10, random_state=seed).fit(x[idx])
            labels, centres = km.labels_.astype(np.int64), km.cluster_centers_
        by_size = np.argsort(-np.bincount(labels, minlength=k), kind="stable")
        rank = np.empty(k, dtype=np.int64)
        rank[by_size] = np.arange(k)
        out[idx] = g * clusters + rank[labels]
        centroids[g, rank] = centres
    return GroupClusters(out, centroids, clusters)


def cluster_within_groups(
    x: np.ndarray, groups: np.ndarray, *, clusters: int, min_size: int = 8, seed: int = 0
) -> np.ndarray:
    """Subclass id per case (``[N]`` int64 ``g * clusters + c``, ``-1`` for unknown groups):
    the labels of :func:`fit_group_clusters`."""
    return fit_group_clusters(x, groups, clusters=clusters, min_size=min_size, seed=seed).labels


class SubclassDRO(Objective):
    """GroupDRO over the clusters found inside every group (needs a first stage and ``case_ids``).

    Args:
        num_groups: number of objective group ids ``G``.
        clusters: clusters per group ``k`` (``G * k`` subclasses).
        space: feature space of the clustering: ``features``, ``descriptors`` or ``error``.
        step_size: GroupDRO's exponentiated-gradient step over the subclasses.
        balance: draw every subclass equally often in the batches.
        min_size: smallest cluster size aimed at (module docstring).
        seed: k-means initialisation seed.
    """

    needs_first_stage = True
    requires = frozenset({"case_ids"})

    # buffers (register_buffer), typed for mypy
    subclass: torch.Tensor

    def __init__(
        self,
        num_groups: int,
        *,
        clusters: int = 2,
        space: FeatureSpace = "features",
        step_size: float = 0.01,
        balance: bool = True,
        min_size: int = 8,
        seed: int = 0,
    ) -> None:
        super().__init__(num_groups)
        require(
            isinstance(clusters, int) and clusters >= 1,
            f"subclass_dro: clusters must be an integer >= 1, got {clusters!r}",
        )
        require(space in FEATURE_SPACES, f"subclass_dro: space must be one of {FEATURE_SPACES}, got '{space}'")
        self.clusters, self.space, self.balance = clusters, space, bool(balance)
        self.min_size, self.seed = int(min_size), int(seed)
        self.dro = GroupDRO(num_groups * clusters, step_size=step_size, renormalize_present=True)
        self._index: dict[str, int] = {}
        self.register_buffer("subclass", torch.zeros(0, dtype=torch.long))
        self.group_names: list[str] = [str(g) for g in range(num_groups)]

    @classmethod
    def from_context(cls, context: ObjectiveContext, **options: Any) -> "SubclassDRO":
        """Clusters the first stage's training cases inside every group."""
        first = context.first_stage
        if first is None:
            raise DuetfairError("subclass_dro: needs a first stage (config objective.first_stage)")
        obj = cls(context.num_groups, **options)
        x = first.space(obj.space, seed=obj.seed)
        sub = cluster_within_groups(x, first.groups, clusters=obj.clusters, min_size=obj.min_size, seed=obj.seed)
        obj._index = {c: i for i, c in enumerate(first.case_ids)}
        obj.subclass = torch.as_tensor(sub, dtype=torch.long)
        return obj

    def _lookup(self, case_ids: Sequence[str]) -> torch.Tensor:
        missing = [c for c in case_ids if str(c) not in self._index]
        require(
            not missing,
            f"subclass_dro: case(s) {missing[:3]} were not in the first stage; delete its folder to redo it",
        )
        return self.subclass[[self._index[str(c)] for c in case_ids]]

    def sampling_weights(self, case_ids: Sequence[str]) -> torch.Tensor | None:
        """Subclass-balanced draws (``balance``), else the trainer's own sampling."""
        return group_balanced_weights(self._lookup(case_ids).cpu()) if self.balance else None

    def case_subgroups(self) -> pd.DataFrame | None:
        """Cluster per training case inside its group, ``"c<k>"`` (``c0`` the largest; ``unknown``
        for unknown groups)."""
        if not self._index:
            return None
        sub = self.subclass.cpu().numpy()
        labels = [f"c{s % self.clusters}" if s >= 0 else "unknown" for s in sub]
        return pd.DataFrame({"case_id": list(self._index), "subgroup": labels})

    def compute(self, losses: torch.Tensor, group: torch.Tensor, *, case_ids: Sequence[str]) -> torch.Tensor:
        """GroupDRO loss of ``losses [B]`` over the cases' subclasses (``group`` only via them)."""
        return self.dro.compute(losses, self._lookup(case_ids).to(losses.device))

    def log_values(self) -> dict[str, float]:
        """The subclass weights ``q``."""
        return self.dro.log_values()
