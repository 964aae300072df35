"""Thin adapters between the experiment config and the data / models / objectives registries.

They translate config sections into registry calls with what the trainer knows filled in (channels,
classes, image size, the groups), and turn the config's group choices into a :class:`Grouping`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional, Sequence

import torch
from torch import nn

from duetfair.data.groups import GroupSpec
from duetfair.errors import DuetfairError, require
from duetfair.models.base import SegmentationModel
from duetfair.objectives.base import Objective, ObjectiveContext


@dataclass(frozen=True)
class Grouping:
    """Which groups a run trains with, derived from the attribute codes ``[B, A]`` of a batch.

    Attributes:
        spec: the data's group spec (codes and names).
        attribute: attribute of the objective's group ids and of model selection; ``None`` = the
            intersection of all attributes.
        route: attributes a dMoE model routes on; ``None`` = the objective's groups.
    """

    spec: GroupSpec
    attribute: Optional[str] = None
    route: Optional[tuple[str, ...]] = None

    def __post_init__(self) -> None:
        attrs = self.spec.attributes
        require(len(attrs) > 0, "data: the dataset defines no attributes; fairness training needs at least one")
        require(
            self.attribute is None or self.attribute in attrs,
            f"config data.group_attribute: '{self.attribute}' is not one of {attrs}",
        )
        for a in self.route or ():
            require(a in attrs, f"config model.route_attributes: '{a}' is not one of {attrs}")

    @property
    def by(self) -> str:
        """The audit key of the objective's groups: the attribute, or ``"a+b+..."`` for the intersection."""
        return self.attribute if self.attribute is not None else "+".join(self.spec.attributes)

    @property
    def num_groups(self) -> int:
        return self.spec.num_groups(self.attribute)

    @property
    def names(self) -> list[str]:
        """Names of the objective's group ids (id order)."""
        return self.spec.group_names(self.attribute)

    @property
    def route_cards(self) -> int | list[int]:
        """``num_groups`` of the model: one cardinality, or one per routing attribute."""
        if self.route is None:
            return self.num_groups
        return [self.spec[a].cardinality for a in self.route]

    def group_ids(self, codes: torch.Tensor) -> torch.Tensor:
        """Objective group ids ``[B]`` (-1 unknown) from codes ``[B, A]``."""
        return self.spec.group_ids(codes, self.attribute)

    def route_codes(self, codes: torch.Tensor) -> torch.Tensor:
        """What the model routes on: group ids ``[B]``, or the routing attributes' codes ``[B, A']``."""
        if self.route is None:
            return self.group_ids(codes)
        return codes[:, [self.spec.attributes.index(a) for a in self.route]]


def grouping(spec: GroupSpec, cfg: Any) -> Grouping:
    """The :class:`Grouping` of an experiment config (``data.group_attribute``, ``model.route_attributes``)."""
    from duetfair.engine.subclasses import SUBCLASS, route_attributes

    route = route_attributes(cfg)
    if route is not None and SUBCLASS not in spec.attributes:  # before the subclasses are found
        route = [a for a in route if a != SUBCLASS]
    return Grouping(spec, cfg.data.group_attribute, tuple(route) if route else None)


def build_datasets(kind: str, args: dict[str, Any], hidden_column: Optional[str] = None) -> dict[str, Any]:
    """``duetfair.data.build_datasets(kind, **args)`` with a clear error for unknown options;
    ``hidden_column`` (``data.hidden_column``) goes to the manifest loader, the one that reads it."""
    from duetfair.data import build_datasets as _build
    from duetfair.options import HIDDEN_COLUMN

    if hidden_column is not None and kind != "manifest":  # other loaders write the default column themselves
        require(
            hidden_column == HIDDEN_COLUMN,
            f"config data.hidden_column: only data.kind 'manifest' reads a "
            f"hidden column by name; kind '{kind}' has '{HIDDEN_COLUMN}' or none",
        )
        hidden_column = None
    if hidden_column is not None:
        given = args.get("hidden_column")
        require(
            given is None or str(given) == hidden_column,
            f"config data.hidden_column '{hidden_column}' and data.args.hidden_column '{given}' differ; keep one",
        )
        args = {**args, "hidden_column": hidden_column}
    try:
        return _build(kind, **args)
    except TypeError as exc:  # unexpected keyword from the config
        raise DuetfairError(f"config data.args: {exc}") from None


def build_model(
    name: str,
    args: dict[str, Any],
    *,
    in_channels: int,
    num_classes: int,
    num_groups: int | list[int],
    image_shape: Sequence[int],
) -> SegmentationModel:
    """``duetfair.models.registry.build_model`` with channels, classes, groups and (when the config
    does not give it) ``img_size`` taken from the data."""
    from duetfair.models.registry import build_model as _build

    kwargs = dict(args)
    kwargs.setdefault("img_size", [int(s) for s in image_shape])
    try:
        return _build(name, in_channels=in_channels, num_classes=num_classes, num_groups=num_groups, **kwargs)
    except TypeError as exc:
        raise DuetfairError(f"config model.args: {exc}") from None


def build_objective(name: str, args: dict[str, Any], context: ObjectiveContext) -> Objective:
    """``duetfair.objectives.build_objective`` from the config's options and the trainer's context."""
    from duetfair.objectives.registry import build_objective as _build

    return _build(name, context=context, **args)


def build_loss(args: dict[str, Any]) -> nn.Module:
    """Per-case Dice + CE (``PerCaseDiceCE(**objective.loss)``)."""
    from duetfair.objectives.per_case import PerCaseDiceCE

    try:
        return PerCaseDiceCE(**args)
    except TypeError as exc:
        raise DuetfairError(f"config objective.loss: {exc}") from None
