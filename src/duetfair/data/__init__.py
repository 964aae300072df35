"""duetfair.data: what a case is and how to read it.

``build_datasets(kind, **kwargs) -> {"train": CaseDataset, "val": ..., "test": ...}`` for
``kind`` in ``synthetic``, ``manifest``, ``fairseg``, ``ham10000``, ``mamamia``.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, cast

from duetfair.data.dataset import CaseDataset, collate_cases
from duetfair.data.groups import UNKNOWN, AttributeSpec, GroupSpec
from duetfair.errors import DuetfairError
from duetfair.options import DatasetKind, choices, parse

__all__ = ["LOADERS", "build_datasets", "loader", "CaseDataset", "GroupSpec", "AttributeSpec", "collate_cases"]
__all__ += ["UNKNOWN"]


LOADERS: dict[str, str] = {kind: f"duetfair.data.{kind}:{kind}_datasets" for kind in choices(DatasetKind)}
"""Dataset kind -> ``"module:function"`` of its loader (imported on first use): every
:class:`~duetfair.options.DatasetKind` ``k`` is read by ``duetfair.data.k.k_datasets``, which takes
keyword arguments and returns ``{"train": CaseDataset, "val": ..., "test": ...}``
(``tests/data/test_loaders.py`` checks that each one exists)."""


def loader(kind: str) -> Callable[..., dict[str, CaseDataset]]:
    """The loader function of ``kind``; a one-line error listing the kinds when there is none."""
    ref = LOADERS.get(str(kind))
    if ref is None:
        raise DuetfairError(f"dataset kind {str(kind)!r}: no loader; expected one of {', '.join(map(str, LOADERS))}")
    module, _, name = ref.partition(":")
    return cast(Callable[..., dict[str, CaseDataset]], getattr(importlib.import_module(module), name))


def build_datasets(kind: str, /, **kwargs: Any) -> dict[str, CaseDataset]:
    """Datasets of one source keyed by split (``"train"``, ``"val"``, ``"test"``).

    Args:
        kind: ``"synthetic"`` (``task=fundus2d|lesion2d|tumor3d``, ``n_train``, ``n_val``,
            ``n_test``, ``image_size``, ``seed``, effect-size overrides; ``kind`` inside kwargs is
            accepted as an alias of ``task``), ``"manifest"`` (``path=...``), ``"fairseg"``
            (``root=...``), ``"ham10000"`` (``root=...``) or ``"mamamia"`` (``root=...``).
        **kwargs: the loader's arguments (see ``synthetic_datasets``, ``manifest_datasets``,
            ``fairseg_datasets``, ``ham10000_datasets``, ``mamamia_datasets``).

    Example:
        >>> ds = build_datasets("synthetic", task="fundus2d", n_train=8, n_val=4, n_test=4, image_size=32, seed=0)
        >>> sorted(ds), len(ds["train"])
        (['test', 'train', 'val'], 8)
        >>> case = ds["train"][0]
        >>> sorted(case)
        ['attrs', 'case_id', 'codes', 'hidden', 'image', 'label']
        >>> tuple(case["image"].shape), tuple(case["label"].shape)  # [C, H, W], [1, H, W]
        ((1, 32, 32), (1, 32, 32))
    """
    kind = parse(DatasetKind, kind, "dataset kind")
    if kind == "synthetic":
        from duetfair.data.synthetic import synthetic_task

        kwargs["task"] = synthetic_task(kwargs)
        kwargs.pop("kind", None)
    return loader(kind)(**kwargs)
