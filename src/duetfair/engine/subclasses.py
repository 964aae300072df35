"""Routing on discovered subclasses: a dMoE model whose router learns the subtype nobody labelled.

The benchmark's oracle routes a dMoE model on the patient group *and* on the planted hidden
subtype, which no real data set names. With ``model.subclasses`` a run finds its own subtype:

1. the first stage (:mod:`duetfair.engine.first_stage`: the run's model routed on the groups, ERM
   loss, ``objective.first_stage`` epochs) gives every training case its pooled encoder features;
2. the features are standardised and reduced to at most 8 principal components
   (:class:`~duetfair.objectives.stage.FeatureTransform`), and every ``data.group_attribute``
   group's training cases are clustered with k-means (``model.subclasses.clusters`` per group;
   :func:`~duetfair.objectives.subclass.fit_group_clusters`, ``c0`` the largest cluster);
3. every case, of any split or a new image, gets the derived attribute ``subclass``: the nearest
   cluster centre of its own group in that space. The features come from the image alone (no
   reference mask, no label), so validation, test and ``duetfair predict`` cases get theirs the
   same way as the training cases;
4. the main model is a dMoE that routes on ``[group attribute, subclass]`` (unless
   ``model.route_attributes`` says otherwise), trained from scratch.

The fitted space and centres are saved in ``RUN/first_stage/subclass_router.npz``; the cluster of
every training case, cluster sizes and, where the data knows the hidden subtype, each cluster's
purity and recall in ``RUN/first_stage/subgroup_summary.csv``. ``cases.csv`` of an evaluation has
the ``subclass`` column, and the audit reports the subclasses like any attribute.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import numpy as np
import pandas as pd
import torch

from duetfair.errors import require
from duetfair.objectives.stage import FeatureTransform, FirstStageCases
from duetfair.objectives.subclass import GroupClusters, fit_group_clusters

__all__ = [
    "SUBCLASS",
    "ROUTER_FILE",
    "SubclassRouter",
    "check_subclass_config",
    "route_attributes",
    "route_on_subclasses",
    "attach_subclasses",
    "FirstModel",
    "SubclassOfImage",
]

SUBCLASS = "subclass"
"""Name of the derived attribute."""
ROUTER_FILE = "subclass_router.npz"


@dataclass(frozen=True)
class SubclassRouter:
    """The fitted feature space and cluster centres that give any case its subclass.

    Attributes:
        transform: standardisation + PCA of the first model's pooled features.
        clusters: cluster centres per group in that space.
    """

    transform: FeatureTransform
    clusters: GroupClusters

    @classmethod
    def fit(cls, first: FirstStageCases, *, clusters: int, min_size: int, seed: int = 0) -> "SubclassRouter":
        """Fit on the first stage's training cases (features and objective groups)."""
        transform = FeatureTransform.fit(first.features, seed=seed)
        found = fit_group_clusters(
            transform(first.features), first.groups, clusters=clusters, min_size=min_size, seed=seed
        )
        return cls(transform, found)

    @property
    def names(self) -> list[str]:
        """Values of the ``subclass`` attribute, in code order (``c0`` the largest cluster)."""
        return [f"c{c}" for c in range(self.clusters.clusters)]

    def assign(self, features: np.ndarray, groups: np.ndarray) -> list[Optional[str]]:
        """Subclass name of every case (``None``: unknown group), from ``[N, F]`` pooled features
        and ``[N]`` group ids."""
        ids = self.clusters.assign(self.transform(features), groups)
        return [self.names[i % self.clusters.clusters] if i >= 0 else None for i in ids]

    def save(self, path: Path) -> None:
        """Write the arrays to ``path`` (``.npz``, no pickles; atomically)."""
        from duetfair.io import atomic_path

        arrays = {f"transform_{k}": v for k, v in self.transform.arrays().items()}
        with atomic_path(path) as tmp, open(tmp, "wb") as fh:
            arrays.update(centroids=self.clusters.centroids, clusters=np.asarray(self.clusters.clusters))
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    @classmethod
    def load(cls, path: Path) -> "SubclassRouter":
        """Read what :meth:`save` wrote (one-line error when the file is missing)."""
        require(path.is_file(), f"{path}: missing; the run routes on subclasses and needs its first stage's router")
        with np.load(path, allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
        transform = FeatureTransform.from_arrays(
            {k.removeprefix("transform_"): v for k, v in arrays.items() if k.startswith("transform_")}
        )
        found = GroupClusters(np.zeros(0, dtype=np.int64), arrays["centroids"], int(arrays["clusters"]))
        return cls(transform, found)


def check_subclass_config(cfg: Any) -> None:
    """One-line errors for a config that routes on subclasses but cannot."""
    from duetfair.models.registry import moe_kind

    require(
        cfg.data.group_attribute is not None,
        "config model.subclasses: needs data.group_attribute (the attribute whose groups are clustered)",
    )
    require(
        moe_kind(cfg.model.name) == "dmoe",
        f"config model.subclasses: needs a dMoE model (routes on attributes); model.name is '{cfg.model.name}'",
    )


def route_attributes(cfg: Any) -> Optional[list[str]]:
    """``model.route_attributes``, or for a run with ``model.subclasses``: the group attribute and
    :data:`SUBCLASS`."""
    if cfg.model.subclasses is None:
        return cfg.model.route_attributes
    check_subclass_config(cfg)  # the first place a run's grouping is made: its errors come first
    return (
        cfg.model.route_attributes if cfg.model.route_attributes is not None else [cfg.data.group_attribute, SUBCLASS]
    )


def _first_stage_folder(run_root: Path) -> Path:
    from duetfair.engine.first_stage import FOLDER

    return Path(run_root) / FOLDER


@dataclass(frozen=True)
class FirstModel:
    """The first stage's final model (``RUN/first_stage/checkpoints/last.pt``; routes on the groups
    only), with that run's config, spec and grouping."""

    model: Any
    cfg: Any
    spec: Any
    grouping: Any
    device: torch.device

    @classmethod
    def load(cls, run_root: Path, device: torch.device) -> "FirstModel":
        """The first model of the run in ``run_root`` on ``device``."""
        from duetfair.engine import adapters
        from duetfair.engine.evaluate import load_model

        model, cfg, _, spec = load_model(_first_stage_folder(run_root), "last", device)
        return cls(model, cfg, spec, adapters.grouping(spec, cfg), device)

    def features(self, source: Any, codes: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
        """``([N, F] pooled features, [N] group ids)`` of the cases of ``source`` whose attribute
        codes under the first stage's spec are ``codes [N, A]``."""
        from duetfair.engine.inference import pooled_features

        batch = self.cfg.train.eval_batch_size or self.cfg.train.batch_size
        route = self.grouping.route_codes
        feats = pooled_features(self.model, source, device=self.device, batch_size=batch, route_fn=route)
        return feats, self.grouping.group_ids(codes).numpy()

    def dataset_features(self, dataset: Any) -> tuple[np.ndarray, np.ndarray]:
        """:meth:`features` of a dataset, its attributes encoded with the first stage's spec."""
        from duetfair.engine.batching import make_source
        from duetfair.engine.evaluate import recode

        codes = recode(dataset, self.spec)
        return self.features(make_source(dataset, self.cfg.data.cache, self.cfg.data.num_workers, codes=codes), codes)


def subclass_attribute(router: SubclassRouter) -> Any:
    """The ``subclass`` :class:`~duetfair.data.attributes.AttributeSpec`."""
    from duetfair.data.attributes import AttributeSpec

    return AttributeSpec(SUBCLASS, router.names)


def attach_subclasses(run_root: Path, dataset: Any, *, device: torch.device) -> Any:
    """``dataset`` with the ``subclass`` attribute of every case (first stage model + router of the run)."""
    router = SubclassRouter.load(_first_stage_folder(run_root) / ROUTER_FILE)
    feats, groups = FirstModel.load(run_root, device).dataset_features(dataset)
    return dataset.with_attribute(subclass_attribute(router), router.assign(feats, groups))


def route_on_subclasses(trainer: Any, first: FirstStageCases) -> None:
    """Fit the router on the first stage, give the trainer's train and val cases their subclass,
    save the router and the subclass report (main process)."""
    from duetfair.engine.first_stage import write_subgroup_report

    cfg, folder = trainer.cfg, _first_stage_folder(trainer.run_dir)
    options = cfg.model.subclasses
    router = SubclassRouter.fit(first, clusters=options.clusters, min_size=options.min_size, seed=cfg.seed)
    train = trainer.datasets["train"]
    train_words = router.assign(first.features, first.groups)
    require(
        list(train.case_ids) == first.case_ids,
        f"{folder}: its cases differ from the training split's; delete the folder to redo the first stage",
    )
    val = trainer.datasets["val"]  # the trainer's own validation cases, read once
    feats, groups = FirstModel.load(trainer.run_dir, trainer.device).features(trainer.val_source, val.codes)
    attribute = subclass_attribute(router)
    datasets = dict(trainer.datasets)
    datasets["train"] = train.with_attribute(attribute, train_words)
    datasets["val"] = val.with_attribute(attribute, router.assign(feats, groups))
    trainer.use_datasets(datasets)
    if trainer.info.is_main:
        router.save(folder / ROUTER_FILE)
        found = pd.DataFrame({"case_id": first.case_ids, "subgroup": [w or "unknown" for w in train_words]})
        hidden = getattr(train, "hidden_flags", None) or [-1] * len(train)
        write_subgroup_report(trainer.run_dir, found, first, group_names=trainer.grouping.names, hidden=hidden)


@dataclass(frozen=True)
class SubclassOfImage:
    """The subclass of single images (``duetfair predict``): the first stage's model and the router.

    Attributes:
        first: the first stage's :class:`FirstModel`.
        router: the run's :class:`SubclassRouter`.
    """

    first: FirstModel
    router: SubclassRouter

    @classmethod
    def of_run(cls, run_root: Path, cfg: Any, device: torch.device) -> "SubclassOfImage | None":
        """Loaded for a run with ``model.subclasses``; ``None`` for every other run."""
        if cfg.model.subclasses is None:
            return None
        router = SubclassRouter.load(_first_stage_folder(run_root) / ROUTER_FILE)
        return cls(FirstModel.load(run_root, device), router)

    @torch.no_grad()
    def code(self, image: torch.Tensor, codes: list[int]) -> int:
        """Code of the ``subclass`` attribute (``-1``: unknown group) of ``image [1, C, *S]`` (at
        the training size) whose other attributes have ``codes`` (the first stage's spec order)."""
        first, batch = self.first, torch.tensor([codes], dtype=torch.long)
        first.model.eval()
        _, feats = first.model.forward_features(
            image.to(first.device), group=first.grouping.route_codes(batch).to(first.device)
        )
        word = self.router.assign(feats.float().cpu().numpy(), first.grouping.group_ids(batch).numpy())[0]
        return -1 if word is None else self.router.names.index(word)
