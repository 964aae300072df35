"""duetfair.data: what a case is and how to read it.

``build_datasets(kind, **kwargs) -> {"train": CaseDataset, "val": ..., "test": ...}`` for
``kind`` in ``synthetic``, ``manifest``, ``fairseg``, ``ham10000``, ``mamamia``.
"""

from __future__ import annotations

from typing import Any, Callable

from duetfair.data.dataset import CaseDataset, collate_cases
from duetfair.data.groups import UNKNOWN, AttributeSpec, GroupSpec
from duetfair.options import DatasetKind, parse

__all__ = ["build_datasets", "CaseDataset", "GroupSpec", "AttributeSpec", "collate_cases", "UNKNOWN"]


def _builder(kind: str) -> Callable[..., dict[str, CaseDataset]]:
    if kind == "synthetic":
        from duetfair.data.synthetic import synthetic_datasets

        return synthetic_datasets
    if kind == "manifest":
        from duetfair.data.manifest import manifest_datasets

        return manifest_datasets
    if kind == "fairseg":
        from duetfair.data.fairseg import fairseg_datasets

        return fairseg_datasets
    if kind == "ham10000":
        from duetfair.data.ham10000 import ham10000_datasets

        return ham10000_datasets
    from duetfair.data.mamamia import mamamia_datasets

    return mamamia_datasets


def build_datasets(kind: str, /, **kwargs: Any) -> dict[str, CaseDataset]:
    """Datasets of one source keyed by split (``"train"``, ``"val"``, ``"test"``).

    Args:
        kind: ``"synthetic"`` (``task=fundus2d|lesion2d|tumor3d``, ``n_train``, ``n_val``,
            ``n_test``, ``image_size``, ``seed``, effect-size overrides; ``kind`` inside kwargs is
            accepted as an alias of ``task``), ``"manifest"`` (``path=...``), ``"fairseg"``
            (``root=...``), ``"ham10000"`` (``root=...``) or ``"mamamia"`` (``root=...``).
        **kwargs: the loader's arguments (see ``synthetic_datasets``, ``manifest_datasets``,
            ``fairseg_datasets``, ``ham10000_datasets``, ``mamamia_datasets``).

    Example::

        ds = build_datasets("synthetic", task="fundus2d", n_train=256, n_val=64, n_test=128, seed=0)
        case = ds["train"][0]   # {"image", "label", "case_id", "attrs", "codes", "hidden"}
    """
    kind = parse(DatasetKind, kind, "dataset kind")
    if kind == "synthetic":
        from duetfair.data.synthetic import synthetic_task

        kwargs["task"] = synthetic_task(kwargs)
        kwargs.pop("kind", None)
    return _builder(kind)(**kwargs)
