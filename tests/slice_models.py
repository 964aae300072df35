"""Prediction models for the hidden-slice tests, and the audit of their predictions.

Training a model per test is slow on a CPU, so the default suite scores documented stand-ins:

* :func:`erm_like`: what the ERM models of the benchmark do on the synthetic suites
  (``docs/benchmarks.md``: every ERM model scores the planted subtype lower than the rest). A
  typical structure is predicted with its boundary moved by one pixel / voxel inwards or outwards
  (or not at all), so small structures lose more Dice than large ones, as with real models. A case
  of the hidden subtype is predicted with part of the structure missed: a random 30-80 % of it, cut
  off along a random direction, plus the same boundary jitter. The model never sees the subtype
  label's value in the audit; the slices must find the cases from what they look like.
* :func:`random_errors`: the negative control. Each structure loses a random share (0-60 %) of its
  voxels, drawn independently of everything and removed at random places, so the Dice of a case
  (``2 (1 - f) / (2 - f)``) is independent of every descriptor.

:func:`audit_predictions` scores the predictions as ``duetfair evaluate`` does (per-case metrics
and :func:`~duetfair.metrics.descriptors.describe_batch` on the model's input image) and audits
the case-level table **without** the hidden column.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy import ndimage

from duetfair.audit import audit_table
from duetfair.audit.slices import OVERALL, SliceSettings
from duetfair.data.synthetic import generate, group_spec
from duetfair.metrics.cases import case_level
from duetfair.metrics.descriptors import describe_batch
from duetfair.metrics.per_case import per_case_metrics
from duetfair.options import HIDDEN_COLUMN

SIZES = {"fundus2d": 48, "lesion2d": 48, "tumor3d": 32}
"""Image side of the test data per suite."""


def _jitter(mask: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    step = rng.integers(-1, 2)
    if step > 0:
        return ndimage.binary_dilation(mask)
    if step < 0:
        eroded = ndimage.binary_erosion(mask)
        return eroded if eroded.any() else mask
    return mask


def _cut(mask: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """``mask`` without ``share`` of its voxels, cut off along a random direction."""
    coords = np.argwhere(mask)
    if len(coords) < 2:
        return mask
    direction = rng.normal(size=mask.ndim)
    proj = coords @ direction
    keep = proj >= np.quantile(proj, share)
    out = np.zeros_like(mask)
    out[tuple(coords[keep].T)] = True
    return out


def erm_like(labels: np.ndarray, hidden: np.ndarray, seed: int = 0) -> np.ndarray:
    """Predicted class maps ``[N, *S]`` of the ERM stand-in (module docstring) for ``labels [N, *S]``."""
    rng = np.random.default_rng(seed)
    pred = np.zeros_like(labels)
    for i in range(len(labels)):
        for c in np.unique(labels[i][labels[i] > 0]):
            mask = labels[i] == c
            if hidden[i]:
                mask = _cut(mask, rng.uniform(0.3, 0.8), rng)
            pred[i][_jitter(mask, rng)] = c
    return pred


def random_errors(labels: np.ndarray, seed: int = 0, most: float = 0.6) -> np.ndarray:
    """Predicted class maps of the negative control (module docstring)."""
    rng = np.random.default_rng(seed)
    pred = labels.copy()
    for i in range(len(labels)):
        for c in np.unique(labels[i][labels[i] > 0]):
            where = np.flatnonzero(labels[i].reshape(-1) == c)
            drop = rng.choice(where, size=int(round(rng.uniform(0, most) * where.size)), replace=False)
            pred[i].reshape(-1)[drop] = 0
    return pred


@dataclass
class Audited:
    """A suite's audit of one model's predictions and the truth to score its slices against."""

    task: str
    frame: pd.DataFrame
    hidden: np.ndarray
    audit: dict
    spec: object

    def scope(self, s: dict) -> np.ndarray:
        """Rows of the slice's scope."""
        if s["within"] == OVERALL:
            return np.ones(len(self.frame), dtype=bool)
        labels = self.spec.labels(self.frame, s["attribute"]).astype(object).to_numpy()  # type: ignore[attr-defined]
        return labels == s["group"]

    def prf(self, s: dict) -> tuple[float, float, float]:
        """Precision, recall and F1 of the slice's members against the subtype's cases of its scope."""
        ids = self.frame["case_id"].astype(str).to_numpy()
        truth = set(ids[self.scope(s) & self.hidden])
        members = set(s["members"])
        tp = len(members & truth)
        p = tp / len(members) if members else 0.0
        r = tp / len(truth) if truth else 0.0
        return p, r, (2 * p * r / (p + r) if p + r else 0.0)

    def top_slice(self) -> dict | None:
        """The first significant slice overall or inside the worst group of the first attribute."""
        first = self.audit["by"][0]
        worst = self.audit["metrics"]["dice"]["attributes"][first]["worst_group"]
        scopes = {OVERALL, f"{first}={worst}"}
        return next((s for s in self.audit.get("hidden_slices", []) if s["within"] in scopes), None)


def audit_predictions(
    task: str, pred: np.ndarray, images: np.ndarray, labels: np.ndarray, meta: pd.DataFrame, **slices: object
) -> Audited:
    """Score ``pred [N, *S]`` against ``labels [N, *S]`` with descriptors of ``images [N, C, *S]``
    and audit the case-level table without the hidden column."""
    num_classes = int(max(labels.max(), pred.max())) + 1
    table = per_case_metrics(pred, labels, num_classes=max(num_classes, 2), metrics=("dice", "iou"))
    extra = describe_batch(pred, labels, range(1, max(num_classes, 2)), image=images)
    table = pd.concat([table, extra], axis=1)
    table.insert(0, "case_id", meta["case_id"].to_numpy()[table.pop("case").to_numpy()])
    spec = group_spec(task)
    cases = table.merge(meta, on="case_id", how="left")
    frame = case_level(cases)
    hidden = frame.pop(HIDDEN_COLUMN).to_numpy() == 1
    audit = audit_table(
        frame, by=list(spec.attributes), metrics=("dice",), n_boot=0, spec=spec, slices=SliceSettings(**slices)
    )
    return Audited(task, frame, hidden, audit, spec)


def suite(task: str, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, pd.DataFrame]:
    """``(images [N, C, *S], labels [N, *S], meta)`` of ``n`` synthetic cases of ``task``."""
    data = generate(task, n, seed=seed, image_size=SIZES[task])
    return data.images.numpy(), data.labels[:, 0].numpy(), data.meta
