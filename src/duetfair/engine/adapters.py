"""Thin adapters between the experiment config and the data / models / objectives registries.

They translate config sections into registry calls, fill in values the trainer knows (number of
groups, image size, training group counts, the model's feature width) and turn the training-group
choice (``data.group_attribute``) into a function ``codes [B, A] -> group ids [B]``.
"""

from __future__ import annotations

import inspect
from typing import Any, Callable, Optional, Sequence

import torch
from torch import nn

from duetfair.errors import DuetfairError, require

GroupFn = Callable[[torch.Tensor], torch.Tensor]


def build_datasets(kind: str, args: dict[str, Any]) -> dict[str, Any]:
    """``duetfair.data.build_datasets(kind, **args)`` with a clear error for unknown options."""
    from duetfair.data import build_datasets as _build

    try:
        return _build(kind, **args)
    except TypeError as exc:  # unexpected keyword from the config
        raise DuetfairError(f"config data.args: {exc}") from None


def group_mapping(spec: Any, attribute: Optional[str]) -> tuple[GroupFn, int, list[str]]:
    """Training groups from attribute codes.

    Args:
        spec: the data's ``GroupSpec``.
        attribute: one attribute name, or ``None`` for the intersection of all attributes.

    Returns:
        ``(fn, num_groups, names)``: ``fn(codes [B, A]) -> LongTensor [B]`` (-1 unknown), the number
        of group ids and their display names.
    """
    attrs = list(spec.attributes)
    require(len(attrs) > 0, "data: the dataset defines no attributes; fairness training needs at least one")
    if attribute is None:
        names = list(spec.intersection_names()) if hasattr(spec, "intersection_names") else \
            [str(i) for i in range(spec.num_intersections)]
        return (lambda codes: spec.intersection(codes)), int(spec.num_intersections), names
    require(attribute in attrs, f"config data.group_attribute: '{attribute}' is not one of {attrs}")
    j = attrs.index(attribute)
    return (lambda codes: codes[:, j].long()), int(spec.cardinalities[j]), [str(n) for n in spec.group_names(attribute)]


def _accepts(fn: Callable[..., Any], name: str) -> bool:
    params = inspect.signature(fn).parameters
    return name in params or any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def build_model(name: str, args: dict[str, Any], *, in_channels: int, num_classes: int, num_groups: int,
                image_shape: Sequence[int]) -> nn.Module:
    """``duetfair.models.registry.build_model`` with channels, classes, groups and (when the config
    does not give it) ``img_size`` taken from the data."""
    from duetfair.models.registry import build_model as _build

    kwargs = dict(args)
    kwargs.setdefault("img_size", [int(s) for s in image_shape])
    try:
        return _build(name, in_channels=in_channels, num_classes=num_classes, num_groups=num_groups, **kwargs)
    except TypeError as exc:
        raise DuetfairError(f"config model.args: {exc}") from None


def build_objective(name: str, args: dict[str, Any], *, num_groups: int, train_dataset: Any, group_fn: GroupFn,
                    feature_dim: Optional[int], loss_args: Optional[dict[str, Any]] = None) -> nn.Module:
    """``duetfair.objectives.build_objective`` with options the trainer knows filled in: training
    group counts (GroupDRO adjustment), the model's ``feature_dim`` (adversarial head) and the
    per-case loss options (FEBS recomputes the loss itself)."""
    from duetfair.objectives.registry import build_objective as _build
    from duetfair.objectives.registry import objective_options

    options = objective_options(name)
    kwargs = dict(args)
    if "group_counts" in options and "group_counts" not in kwargs:
        ids = group_fn(train_dataset.codes)
        kwargs["group_counts"] = torch.bincount(ids[ids >= 0], minlength=num_groups).tolist()
    if "feature_dim" in options and "feature_dim" not in kwargs:
        require(feature_dim is not None, f"objective '{name}' needs model features; the model has no feature_dim")
        kwargs["feature_dim"] = int(feature_dim)  # type: ignore[arg-type]
    for key, value in (loss_args or {}).items():
        if key in options and key not in kwargs:
            kwargs[key] = value
    return _build(name, num_groups=num_groups, **kwargs)


def build_loss(args: dict[str, Any]) -> nn.Module:
    """Per-case Dice + CE (``PerCaseDiceCE(**objective.loss)``)."""
    from duetfair.objectives.per_case import PerCaseDiceCE

    try:
        return PerCaseDiceCE(**args)
    except TypeError as exc:
        raise DuetfairError(f"config objective.loss: {exc}") from None
