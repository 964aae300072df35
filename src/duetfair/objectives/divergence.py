"""FairMedSeg divergence-aware reweighting, with the reference pitfalls fixed.

Once per epoch the trainer mines metadata subgroups whose validation Dice diverges from the overall
mean (``duetfair.audit.discovery.find_divergent_subgroups``, DivExplorer; the objective asks for
them with ``needs_subgroups``) and passes them to :meth:`DivergenceReweighting.on_validation_end`
together with the training cases' discrete metadata labels.
Every training case ``i`` then gets a weight

    ``w_i = 1 + gain * max_{S contains i} m_S``,   ``m_S = |div_S|`` (``/ max_S |div_S|`` when ``normalize``)

over the *significant* (``|t_S| >= t_threshold``) *under-performing* (``div_S < 0`` for a
higher-is-better outcome such as Dice) subgroups containing it, and 1 if there is none. The loss is

    ``L = alpha * mean_i l_i + (1 - alpha) * sum_i w_i l_i / sum_i w_i``   (paper: ``alpha = 0.2``).

Fixes of the public code: weights are keyed by ``case_id`` (not loader position, which a shuffling
loader misaligns); the weighted term keeps the per-case losses' gradient (the public code built it
from detached floats); weights are ``>= 1`` for under-performing subgroups (raw ``|div| << 1``
would make divergent cases *lighter* than untouched ones). Cases never seen by ``update`` weigh 1.
Groups are not used (the subgroups come from the metadata), so ``-1`` has no special role here.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.errors import require
from duetfair.objectives.base import Objective, ValidationResult, weighted_loss
from duetfair.objectives.distributed import all_reduce_sum

__all__ = ["DivergenceReweighting", "divergence_weights", "SUBGROUP_COLUMNS"]

SUBGROUP_COLUMNS = ("itemset", "divergence", "t")


def divergence_weights(
    subgroups: pd.DataFrame,
    train_meta: pd.DataFrame,
    *,
    t_threshold: float = 2.0,
    gain: float = 1.0,
    normalize: bool = True,
    higher_is_better: bool = True,
) -> pd.Series:
    """Per-case weights (``pd.Series`` indexed by ``case_id``, all ``>= 1``) from mined subgroups.

    Args:
        subgroups: discovery output, columns ``itemset`` (dict attribute -> value), ``divergence``
            (subgroup mean - overall mean), ``t`` (significance); extra columns are ignored.
        train_meta: one row per training case: ``case_id`` and the attribute columns named in the
            itemsets, discretised the same way as for discovery (values compared as strings).
        t_threshold: minimum ``|t|`` of a subgroup to be used.
        gain: weight added for the most divergent subgroup (when ``normalize``).
        normalize: divide ``|div|`` by the largest ``|div|`` of the used subgroups.
        higher_is_better: the outcome is better when higher (Dice); under-performing = ``div < 0``.
    """
    _check_frames(subgroups, train_meta)
    require(gain >= 0, f"divergence: gain must be >= 0, got {gain}")
    used = _significant_underperforming(subgroups, t_threshold, higher_is_better)
    boost = np.zeros(len(train_meta))
    if len(used):
        magnitude = used["divergence"].abs().to_numpy(dtype=float)
        if normalize:
            magnitude = magnitude / magnitude.max()
        as_text = {col: train_meta[col].astype(str).to_numpy() for col in _attributes(used)}
        for itemset, m in zip(used["itemset"], magnitude):
            members = _members(itemset, as_text, len(train_meta))
            boost = np.where(members, np.maximum(boost, m), boost)
    return pd.Series(
        1.0 + gain * boost, index=pd.Index(train_meta["case_id"].astype(str), name="case_id"), name="weight"
    )


class DivergenceReweighting(Objective):
    """Divergence-aware reweighting objective (needs ``case_ids``); refreshed by :meth:`update`.

    Args:
        num_groups: number of group ids accepted in ``group`` (unused by the loss).
        alpha: weight of the plain mean (paper: 0.2).
        t_threshold, gain, normalize, higher_is_better: see :func:`divergence_weights`.

    Example:
        >>> objective = DivergenceReweighting(num_groups=1, alpha=0.2)
        >>> mined = pd.DataFrame({"itemset": [{"site": "b"}], "divergence": [-0.2], "t": [-3.0]})  # per epoch
        >>> objective.update(mined, pd.DataFrame({"case_id": ["c1", "c2"], "site": ["a", "b"]}))
        >>> objective(torch.tensor([1.0, 4.0]), torch.zeros(2, dtype=torch.long), case_ids=["c1", "c2"])
        tensor(2.9000)
    """

    requires = frozenset({"case_ids"})
    needs_subgroups = True

    def __init__(
        self,
        num_groups: int = 1,
        *,
        alpha: float = 0.2,
        t_threshold: float = 2.0,
        gain: float = 1.0,
        normalize: bool = True,
        higher_is_better: bool = True,
    ) -> None:
        super().__init__(num_groups)
        require(0 <= alpha <= 1, f"divergence: alpha must be in [0, 1], got {alpha}")
        self.alpha, self.t_threshold, self.gain = float(alpha), float(t_threshold), float(gain)
        self.normalize, self.higher_is_better = normalize, higher_is_better
        self._weights: dict[str, float] = {}
        self._n_subgroups = 0
        self._unmatched = 0

    def on_validation_end(self, result: ValidationResult) -> None:
        """Refresh the weights from the subgroups the trainer mined on this validation."""
        require(result.subgroups is not None, "divergence: the trainer passed no mined subgroups")
        self.update(result.subgroups, result.train_labels)

    def update(self, subgroups: pd.DataFrame, train_meta: pd.DataFrame) -> None:
        """Recompute every training case's weight from this epoch's mined subgroups."""
        weights = divergence_weights(
            subgroups,
            train_meta,
            t_threshold=self.t_threshold,
            gain=self.gain,
            normalize=self.normalize,
            higher_is_better=self.higher_is_better,
        )
        self._weights = {str(k): float(v) for k, v in weights.items()}
        self._n_subgroups = len(_significant_underperforming(subgroups, self.t_threshold, self.higher_is_better))

    def case_weights(self, case_ids: Sequence[str], device: torch.device | None = None) -> torch.Tensor:
        """Weights ``[B]`` of the given cases (1 for cases without a stored weight)."""
        found = [self._weights.get(str(c)) for c in case_ids]
        self._unmatched = sum(w is None for w in found)
        return torch.tensor([1.0 if w is None else w for w in found], device=device)

    def compute(self, losses: torch.Tensor, group: torch.Tensor, *, case_ids: Sequence[str]) -> torch.Tensor:
        """``alpha * mean(l) + (1 - alpha) * sum(w l) / sum(w)`` over the global batch."""
        require(
            len(case_ids) == losses.shape[0],
            f"divergence: got {len(case_ids)} case_ids for a batch of {losses.shape[0]} losses",
        )
        w = self.case_weights(case_ids, losses.device).to(losses.dtype)
        totals = all_reduce_sum(
            torch.stack([torch.tensor(float(losses.numel()), dtype=w.dtype, device=w.device), w.sum()])
        )
        n, w_total = totals.unbind()
        combined = self.alpha / n + (1 - self.alpha) * w / w_total
        return weighted_loss(losses, combined)

    def get_extra_state(self) -> dict[str, Any]:
        """Per-case weights for ``state_dict()`` (plain lists, loadable with ``weights_only=True``)."""
        return {
            "case_ids": list(self._weights),
            "weights": list(self._weights.values()),
            "n_subgroups": self._n_subgroups,
        }

    def set_extra_state(self, state: dict[str, Any]) -> None:
        """Restore the per-case weights saved by :meth:`get_extra_state`."""
        self._weights = {str(c): float(w) for c, w in zip(state["case_ids"], state["weights"])}
        self._n_subgroups = int(state.get("n_subgroups", 0))

    def log_values(self) -> dict[str, float]:
        """Number of subgroups used, of up-weighted cases, the largest weight, unmatched ids in the last batch."""
        values = list(self._weights.values())
        return {
            "subgroups_used": float(self._n_subgroups),
            "cases_upweighted": float(sum(v > 1.0 for v in values)),
            "max_weight": float(max(values, default=1.0)),
            "unmatched_case_ids": float(self._unmatched),
        }


def _check_frames(subgroups: pd.DataFrame, train_meta: pd.DataFrame) -> None:
    missing = [c for c in SUBGROUP_COLUMNS if c not in subgroups.columns]
    require(
        not missing,
        f"divergence: subgroups table lacks column(s) {missing}; expected the discovery "
        f"output with columns {list(SUBGROUP_COLUMNS)}",
    )
    require("case_id" in train_meta.columns, "divergence: train_meta lacks column 'case_id'")
    dup = train_meta["case_id"].astype(str).duplicated()
    require(
        not dup.any(),
        f"divergence: train_meta has duplicate case_id "
        f"'{train_meta['case_id'].astype(str)[dup].iloc[0] if dup.any() else ''}'",
    )
    attrs = _attributes(subgroups)
    absent = sorted(a for a in attrs if a not in train_meta.columns)
    require(not absent, f"divergence: train_meta lacks attribute column(s) {absent} used by the subgroups")


def _attributes(subgroups: pd.DataFrame) -> set[str]:
    attrs: set[str] = set()
    for itemset in subgroups["itemset"]:
        require(isinstance(itemset, dict), f"divergence: itemset must be a dict attribute -> value, got {itemset!r}")
        attrs.update(str(a) for a in itemset)
    return attrs


def _significant_underperforming(subgroups: pd.DataFrame, t_threshold: float, higher_is_better: bool) -> pd.DataFrame:
    div = pd.to_numeric(subgroups["divergence"], errors="coerce")
    t = pd.to_numeric(subgroups["t"], errors="coerce").abs()
    worse = div < 0 if higher_is_better else div > 0
    nonempty = subgroups["itemset"].map(lambda s: isinstance(s, dict) and len(s) > 0)
    return subgroups[worse & (t >= t_threshold) & nonempty & div.notna()]


def _members(itemset: dict, as_text: dict[str, np.ndarray], n: int) -> np.ndarray:
    mask = np.ones(n, dtype=bool)
    for attr, value in itemset.items():
        mask &= as_text[str(attr)] == str(value)
    return mask
