"""What a first, plain training run learnt about every training case: the input of the two-stage
objectives (Just Train Twice, subclass DRO).

The trainer runs the first stage (:mod:`duetfair.engine.first_stage`) and hands the objective a
:class:`FirstStageCases`: one row per training case with its objective group, its case-level Dice
under the first-stage model and its case descriptors (``desc_*``,
:mod:`duetfair.metrics.descriptors`: structure, image around it, error of the first-stage
prediction), plus the model's pooled encoder features. Every number is computed from the image,
the reference mask and the first model's prediction of *training* cases; nothing here knows a
hidden subtype.

Feature spaces (:meth:`FirstStageCases.space`):

* ``features``: the first model's pooled encoder features, standardised, then reduced to at most
  ``max_dims`` principal components (``sklearn.decomposition.PCA``; the components keep their
  variances, so the directions that separate cases dominate), as "No Subclass Left Behind"
  clusters a first model's representation;
* ``descriptors``: the case descriptors, standardised column by column (missing values filled
  with the column median; constant columns dropped);
* ``error``: the first model's Dice alone (one standardised column), the signal Just Train Twice uses.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pandas as pd

from duetfair.errors import require

__all__ = ["FirstStageCases", "FeatureTransform", "FeatureSpace", "FEATURE_SPACES"]

FeatureSpace = Literal["features", "descriptors", "error"]
FEATURE_SPACES: tuple[str, ...] = ("features", "descriptors", "error")
CASES_FILE = "first_stage_cases.csv"
FEATURES_FILE = "first_stage_features.npy"


@dataclass(frozen=True)
class FirstStageCases:
    """Per training case results of the first stage.

    Attributes:
        cases: one row per training case, in the training split's order: ``case_id`` (str),
            ``group`` (objective group id, ``-1`` unknown), ``dice`` (case-level mean over the
            foreground classes, in [0, 1]) and the ``desc_*`` descriptor columns.
        features: ``[N, F]`` float32 pooled encoder features of the first model, row ``i`` = case ``i``.
    """

    cases: pd.DataFrame
    features: np.ndarray

    def __post_init__(self) -> None:
        for col in ("case_id", "group", "dice"):
            require(col in self.cases.columns, f"first stage: the case table lacks column '{col}'")
        require(
            self.features.ndim == 2 and self.features.shape[0] == len(self.cases),
            f"first stage: features must be [N={len(self.cases)}, F], got {tuple(self.features.shape)}",
        )

    @property
    def case_ids(self) -> list[str]:
        """The cases' ids, in the order of the table."""
        return self.cases["case_id"].astype(str).tolist()

    @property
    def groups(self) -> np.ndarray:
        """``[N]`` int64 objective group ids (``-1`` unknown)."""
        return self.cases["group"].to_numpy(dtype=np.int64)

    @property
    def dice(self) -> np.ndarray:
        """``[N]`` float64 case-level Dice of the first model (NaN where undefined)."""
        return self.cases["dice"].to_numpy(dtype=np.float64)

    def space(self, name: FeatureSpace, *, max_dims: int = 8, seed: int = 0) -> np.ndarray:
        """``[N, D]`` float64 standardised coordinates of every case in feature space ``name``."""
        require(name in FEATURE_SPACES, f"first stage: feature space must be one of {FEATURE_SPACES}, got '{name}'")
        if name == "error":
            x = np.nan_to_num(self.dice, nan=float(np.nanmedian(self.dice)) if np.isfinite(self.dice).any() else 0.0)
            return _standardise(x[:, None])
        if name == "descriptors":
            cols = [c for c in self.cases.columns if str(c).startswith("desc_")]
            require(bool(cols), "first stage: the case table holds no descriptor columns (desc_*)")
            frame = self.cases[cols].apply(pd.to_numeric, errors="coerce").astype(float)
            frame = frame.replace([np.inf, -np.inf], np.nan)
            frame = frame.fillna(frame.median()).fillna(0.0)
            return _standardise(frame.to_numpy())
        return FeatureTransform.fit(self.features, max_dims=max_dims, seed=seed)(self.features)

    def save(self, folder: str | Path) -> None:
        """Write the case table and the features into ``folder`` (atomically, file by file)."""
        from duetfair.io import atomic_path

        folder = Path(folder)
        with atomic_path(folder / CASES_FILE) as tmp:
            self.cases.to_csv(tmp, index=False)
        with atomic_path(folder / FEATURES_FILE) as tmp, open(tmp, "wb") as fh:
            np.save(fh, self.features.astype(np.float32), allow_pickle=False)

    @classmethod
    def load(cls, folder: str | Path) -> "FirstStageCases | None":
        """The saved results in ``folder``, or ``None`` when either file is missing."""
        folder = Path(folder)
        cases_file, features_file = folder / CASES_FILE, folder / FEATURES_FILE
        if not (cases_file.is_file() and features_file.is_file()):
            return None
        cases = pd.read_csv(cases_file, dtype={"case_id": str})
        return cls(cases, np.load(features_file, allow_pickle=False))


def _standardise(x: np.ndarray) -> np.ndarray:
    """Columns centred and scaled to unit standard deviation; constant columns dropped (at least one kept)."""
    x = np.asarray(x, dtype=np.float64)
    std = x.std(axis=0)
    keep = std > 1e-12
    if not keep.any():
        return np.zeros((x.shape[0], 1))
    return (x[:, keep] - x[:, keep].mean(axis=0)) / std[keep]


@dataclass(frozen=True)
class FeatureTransform:
    """The ``features`` space, fitted on the training cases and applicable to new cases:
    standardisation column by column (constant columns dropped), then the projection on at most
    ``max_dims`` principal components (their variances kept).

    Attributes:
        mean: ``[F]`` feature means of the training cases.
        scale: ``[F]`` their standard deviations.
        keep: ``[F]`` bool, the non-constant columns.
        centre: ``[F']`` mean of the standardised kept columns (PCA), ``None`` without reduction.
        components: ``[D, F']`` principal axes, ``None`` without reduction (``F' <= max_dims``).
    """

    mean: np.ndarray
    scale: np.ndarray
    keep: np.ndarray
    centre: np.ndarray | None = None
    components: np.ndarray | None = None

    @classmethod
    def fit(cls, features: np.ndarray, *, max_dims: int = 8, seed: int = 0) -> "FeatureTransform":
        """Fit on ``[N, F]`` training features (``sklearn.decomposition.PCA``)."""
        from sklearn.decomposition import PCA

        x = np.asarray(features, dtype=np.float64)
        mean, scale = x.mean(axis=0), x.std(axis=0)
        plain = cls(mean, scale, scale > 1e-12)
        z = plain(x)
        dims = min(max_dims, z.shape[1], max(1, z.shape[0] - 1))
        if z.shape[1] <= dims:
            return plain
        pca = PCA(n_components=dims, random_state=seed).fit(z)
        return cls(mean, scale, plain.keep, pca.mean_, pca.components_)

    def __call__(self, features: np.ndarray) -> np.ndarray:
        """``[N, D]`` float64 coordinates of ``[N, F]`` features."""
        x = np.asarray(features, dtype=np.float64)
        require(
            x.ndim == 2 and x.shape[1] == self.mean.shape[0],
            f"first stage: features must be [N, {self.mean.shape[0]}], got {tuple(x.shape)}",
        )
        if not self.keep.any():
            return np.zeros((x.shape[0], 1))
        z = (x[:, self.keep] - self.mean[self.keep]) / self.scale[self.keep]
        if self.components is None or self.centre is None:
            return z
        return (z - self.centre) @ self.components.T

    def arrays(self) -> dict[str, np.ndarray]:
        """The fitted arrays by name (for ``np.savez``; without reduction, empty PCA arrays)."""
        empty = np.zeros((0,))
        return {
            "mean": self.mean,
            "scale": self.scale,
            "keep": self.keep,
            "centre": empty if self.centre is None else self.centre,
            "components": empty if self.components is None else self.components,
        }

    @classmethod
    def from_arrays(cls, arrays: dict[str, np.ndarray]) -> "FeatureTransform":
        """Inverse of :meth:`arrays`."""
        centre, components = arrays["centre"], arrays["components"]
        reduced = components.size > 0
        return cls(
            arrays["mean"],
            arrays["scale"],
            arrays["keep"].astype(bool),
            centre if reduced else None,
            components if reduced else None,
        )
