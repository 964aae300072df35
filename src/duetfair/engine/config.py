"""Typed experiment configuration: YAML in, validated, ``--set`` overrides, resolved copy saved.

An experiment is one YAML file (read by a ``yaml.SafeLoader`` that also refuses duplicate keys,
files over 1 MiB and alias bombs)::

    extends: fundus2d.yaml          # optional: a base file (relative to this file, or a packaged name)
    method: dmoe                    # optional shortcut that sets model variant + objective
    seed: 0
    data:   {kind: synthetic, args: {task: fundus2d, n_train: 240}, group_attribute: race}
    model:  {name: vit_seg, args: {img_size: 64}}
    objective: {name: erm, args: {}}
    optim:  {name: adamw, lr: 1.0e-3}
    schedule: {name: poly, power: 0.9, warmup_epochs: 0}
    train:  {epochs: 10, batch_size: 16, select: worst_group}

Validation errors name the key and the allowed values, e.g.
``config train.select: 'best' is not one of 'overall', 'worst_group', 'es'``.

The ``method`` shortcut (see :data:`METHODS`) fills ``model`` variant and ``objective`` the way the
papers pair them: ``fair_dro`` = dMoE model + subgroup-conditioned DRO loss (DuetFair), ``moe`` =
attribute-blind MoE, ``divergence`` = FairMedSeg reweighting, and so on. The shortcut appends the
variant suffix to a bare backbone name (``vit_seg`` -> ``vit_seg_dmoe``) and sets ``objective.name``
only when the config does not name one: an explicit ``objective.name`` or a full registry
``model.name`` (``vit_seg_moe``) wins over the shortcut.
"""

from __future__ import annotations

import copy
import hashlib
import json
from importlib import resources
from pathlib import Path
from typing import Any, Literal, Optional

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from duetfair.engine.config_yaml import MAX_CONFIG_NODES, count_nodes
from duetfair.engine.config_yaml import read_yaml as _read_yaml
from duetfair.engine.recipes import RECIPES, apply_recipe
from duetfair.errors import DuetfairError, require
from duetfair.metrics.registry import SCORED_METRICS
from duetfair.options import DatasetKind, EmptyPolicy, EsVariant, Method, SelectRule, parse

METHODS: dict[Method, tuple[str, str, SelectRule]] = {m: (r.moe, r.objective, r.select) for m, r in RECIPES.items()}
"""Method shortcut -> (MoE kind, objective, default selection rule): a view of
:data:`duetfair.engine.recipes.RECIPES`, the owner of every method's recipe. ``subgroup_dro`` is
the FairDRO loss on the plain model (the DuetFair ablation); ``oracle`` is the benchmark's ceiling
on a synthetic task (packaged ``<task>_oracle`` configs only)."""


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", validate_assignment=True)


class DataConfig(_Section):
    """Where cases come from and which attribute defines the training groups."""

    kind: DatasetKind = DatasetKind.SYNTHETIC
    args: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``duetfair.data.build_datasets(kind, **args)``."""
    group_attribute: Optional[str] = None
    """Attribute whose codes are the group ids of objective and model; ``None`` = intersection of
    all configured attributes."""
    audit_attributes: Optional[list[str]] = None
    """Attributes reported in audits (default: all configured attributes)."""
    cache: bool = True
    """Decode every case once and keep it in memory (small and synthetic data)."""
    num_workers: int = Field(0, ge=0)
    """DataLoader workers when cases are not cached."""
    hidden_column: Optional[str] = None
    """Analysis-only column of known hard cases, reported in audits as hidden failures and never
    an input of training: ``morphology`` (values 0/1, yes/no) or ``morphology=irregular`` (that
    value is hard). ``None``: ``hidden_subtype`` when the data has it. Read by the manifest loader
    (``data.kind: manifest``)."""

    @field_validator("hidden_column")
    @classmethod
    def _hidden(cls, value: Optional[str]) -> Optional[str]:
        from duetfair.data.groups import HiddenColumn

        return None if value is None else str(HiddenColumn.parse(value))


class AugmentConfig(_Section):
    """Batch augmentation on tensors (applied on the device, seeded): flips and 90-degree turns."""

    flip_prob: float = Field(0.5, ge=0.0, le=1.0)
    rot90_prob: float = Field(0.5, ge=0.0, le=1.0)
    enabled: bool = True


class SubclassRoutingConfig(_Section):
    """Subclasses a dMoE model routes on: k-means clusters of every ``data.group_attribute`` group
    in the first stage model's pooled features (computed from the image alone, so every new case
    gets its subclass too). The derived attribute is ``subclass`` (``c0`` the largest cluster)."""

    clusters: int = Field(3, ge=1)
    """Clusters per group (3: chosen on validation, docs/benchmarks.md)."""
    min_size: int = Field(8, ge=1)
    """A group with fewer than ``clusters * min_size`` training cases gets fewer clusters."""


class ModelConfig(_Section):
    """A registry model (``duetfair.models.registry.build_model``)."""

    name: str = "vit_seg"
    args: dict[str, Any] = Field(default_factory=dict)
    route_attributes: Optional[list[str]] = None
    """Attributes a dMoE model routes on; several give one router set per attribute (logits summed)
    or one router per combination (``args.moe_kwargs.multi_attribute: intersection``). ``None``:
    the objective's groups (``data.group_attribute``)."""
    aux_loss_weight: float = Field(1.0, ge=0.0)
    """Factor on ``model.aux_loss()`` added to the objective (MoE load balancing; the loss itself
    is 0 unless enabled in the model, e.g. ``args.moe_kwargs.load_balance_weight``); 0 = never."""
    subclasses: Optional[SubclassRoutingConfig] = None
    """Route a dMoE model on subclasses discovered inside every group too
    (:mod:`duetfair.engine.subclasses`; needs ``objective.first_stage``); ``None``: off."""


class FirstStageConfig(_Section):
    """The first, plain training run of a two-stage objective (``jtt``, ``subclass_dro``): the same
    model, data and optimiser with the ERM loss, for ``epochs`` epochs (default: ``fraction`` of
    ``train.epochs``, at least 1). Its model and per-case results live in ``RUN/first_stage/``."""

    epochs: Optional[int] = Field(None, ge=1)
    fraction: float = Field(0.25, gt=0.0, le=1.0)

    def resolve_epochs(self, main_epochs: int) -> int:
        """Epochs of the first stage for a main run of ``main_epochs`` epochs."""
        return self.epochs if self.epochs is not None else max(1, round(self.fraction * main_epochs))


class ObjectiveConfig(_Section):
    """A fairness objective (``duetfair.objectives.build_objective``) on per-case Dice+CE losses."""

    name: str = "erm"
    args: dict[str, Any] = Field(default_factory=dict)
    loss: dict[str, Any] = Field(default_factory=dict)
    """Keyword arguments of ``PerCaseDiceCE`` (e.g. ``include_background``)."""
    discovery: dict[str, Any] = Field(default_factory=dict)
    """Options of the per-epoch subgroup mining of the ``divergence`` objective
    (``find_divergent_subgroups``: ``min_support``, ``max_length``)."""
    first_stage: Optional[FirstStageConfig] = None
    """The first training run of a two-stage objective (``jtt``, ``subclass_dro``); required by
    them, ignored (and not hashed) for every other objective."""


class OptimConfig(_Section):
    """Optimiser. ``lr_scale_batch``: if set, lr is multiplied by batch_size / lr_scale_batch (dMoE
    reference: 0.01 x batch / 24)."""

    name: Literal["adamw", "sgd"] = "adamw"
    lr: float = Field(1e-3, gt=0.0)
    weight_decay: float = Field(1e-4, ge=0.0)
    momentum: float = Field(0.9, ge=0.0, lt=1.0)
    lr_scale_batch: Optional[int] = Field(None, gt=0)
    grad_clip: Optional[float] = Field(None, gt=0.0)


class ScheduleConfig(_Section):
    """Learning-rate schedule stepped every iteration: linear warm-up then poly / cosine / constant."""

    name: Literal["poly", "cosine", "constant"] = "poly"
    power: float = Field(0.9, gt=0.0)
    warmup_epochs: float = Field(0.0, ge=0.0)
    min_lr_ratio: float = Field(0.0, ge=0.0, le=1.0)


class TrainConfig(_Section):
    """Loop settings. ``select``: model-selection rule on validation (higher is better):
    ``overall`` Dice, ``worst_group`` Dice or ``es`` (equity-scaled Dice)."""

    epochs: int = Field(10, ge=1)
    batch_size: int = Field(16, ge=1)
    eval_batch_size: Optional[int] = Field(None, ge=1)
    select: Optional[SelectRule] = None
    amp: Literal["auto", "off", "bf16", "fp16"] = "auto"
    channels_last: bool = True
    deterministic: bool | Literal["auto"] = "auto"
    """Deterministic kernels: ``auto`` (default) = on for CPU (bit-exact runs and resume), off on
    CUDA with a line at start-up (fast kernels); ``true`` / ``false`` force them on / off."""
    compile: bool = False
    """``torch.compile`` the model's forward (every model, with and without MoE); the checkpoints
    are those of the eager model."""
    val_every: int = Field(1, ge=1)
    device: Literal["auto", "cpu", "cuda"] = "auto"
    balance_by: Optional[str] = None
    """Group-balanced sampling: every epoch draws as many cases as the training split holds, with
    replacement, each group of this attribute equally often (``"groups"``: the objective's groups;
    the reference GroupDRO recipe). ``None`` (default): a plain permutation of the split."""
    threads: Optional[int] = Field(None, ge=1, le=1024)
    """CPU threads of this process (torch intra-op); ``None``: one per core, at most 8. Lower it
    when several jobs share a machine (see docs/reliability.md)."""

    @field_validator("amp", mode="before")
    @classmethod
    def _amp_bool(cls, value: Any) -> Any:
        # ``amp: off`` in YAML 1.1 is the boolean False
        return {False: "off", True: "auto"}.get(value, value) if isinstance(value, bool) else value

    progress: bool = True
    """Progress bars on a terminal (never in a log file)."""
    log_every_epoch: bool = True
    """One plain line per epoch (loss, validation overall / worst-group Dice, time) on rank 0,
    on a terminal above the bars and in log files, CI and cluster jobs alike."""
    tensorboard: bool = True


class EvalConfig(_Section):
    """Metrics of ``duetfair evaluate`` (validation during training always uses Dice and IoU)."""

    split: str = "test"
    metrics: list[str] = list(SCORED_METRICS)
    """Metrics scored per case (``metrics.registry.SCORED_METRICS``)."""
    empty: EmptyPolicy = EmptyPolicy.NNUNET
    n_boot: int = Field(1000, ge=0)
    es_variant: EsVariant = EsVariant.SUM_ABS

    @field_validator("metrics")
    @classmethod
    def _metrics(cls, value: list[str]) -> list[str]:
        unknown = [m for m in value if m not in SCORED_METRICS]
        if unknown:
            raise ValueError(f"{unknown[0]!r} is not one of {', '.join(map(repr, SCORED_METRICS))}")
        return value


class ExperimentConfig(_Section):
    """A complete experiment (see the module docstring for the YAML layout)."""

    name: str = "experiment"
    method: Optional[Method] = None
    seed: int = Field(0, ge=0, le=2**31 - 1)
    output_dir: str = "runs/experiment"
    data: DataConfig = Field(default_factory=DataConfig)
    model: ModelConfig = Field(default_factory=ModelConfig)
    objective: ObjectiveConfig = Field(default_factory=ObjectiveConfig)
    optim: OptimConfig = Field(default_factory=OptimConfig)
    schedule: ScheduleConfig = Field(default_factory=ScheduleConfig)
    augment: AugmentConfig = Field(default_factory=AugmentConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    # -- derived values ---------------------------------------------------------------------
    @property
    def select_rule(self) -> SelectRule:
        """Model-selection rule: explicit ``train.select``, the method's default, else ``overall``
        for plain ERM and ``worst_group`` for every fairness method."""
        from duetfair.models.registry import moe_kind

        if self.train.select is not None:
            return self.train.select
        if self.method is not None:
            return METHODS[self.method][2]
        plain = self.objective.name == "erm" and moe_kind(self.model.name) == "none"
        return SelectRule.OVERALL if plain else SelectRule.WORST_GROUP

    @property
    def needs_first_stage(self) -> bool:
        """A two-stage objective (``jtt``, ``subclass_dro``) or routing on subclasses (``model.subclasses``)."""
        from duetfair.objectives.registry import OBJECTIVES

        two_stage = getattr(OBJECTIVES.get(self.objective.name), "needs_first_stage", False)
        return bool(two_stage) or self.model.subclasses is not None

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON/YAML-safe dict of the resolved config."""
        return self.model_dump(mode="json")

    def config_hash(self) -> str:
        """Hash of everything that changes the training trajectory (output paths, display and
        analysis-only settings excluded, so adding such a setting keeps old runs resumable); on
        synthetic data also the generator's version (``duetfair.data.synthetic.GENERATOR_VERSION``)."""
        d = self.to_dict()
        for k in ("output_dir", "name"):
            d.pop(k, None)
        d["train"] = {
            k: v for k, v in d["train"].items() if k not in ("progress", "tensorboard", "log_every_epoch", "threads")
        }
        # `auto` is `true` on CPU, the earlier default; an unset compile changes nothing: both keep
        # the hashes (and the resumability) of runs written before these settings existed
        if d["train"].get("deterministic") == "auto":
            d["train"]["deterministic"] = True
        if not d["train"].get("compile"):
            d["train"].pop("compile", None)
        d["data"].pop("hidden_column", None)
        from duetfair.objectives.registry import OBJECTIVES

        mines = getattr(OBJECTIVES.get(self.objective.name), "needs_subgroups", True)
        if not mines:  # subgroup-mining options change nothing for an objective that mines none
            d["objective"]["discovery"] = {}
        if not self.needs_first_stage:
            d["objective"].pop("first_stage", None)  # keeps the hashes of runs from before the setting
        if self.model.subclasses is None:
            d["model"].pop("subclasses", None)
        if self.data.kind == DatasetKind.SYNTHETIC:  # the cases change with the generator's version
            from duetfair.data.synthetic import generator_version

            version = generator_version(self.data.args)
            if version > 1:
                d["data"]["generator_version"] = version
        d.pop("eval", None)
        blob = json.dumps(d, sort_keys=True, default=str).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


# ---- loading ---------------------------------------------------------------------------------


def packaged_config_dir() -> Path:
    """Folder of the configs shipped inside the package (``duetfair/configs``)."""
    return Path(str(resources.files("duetfair") / "configs"))


def list_packaged_configs() -> list[str]:
    """Names (without ``.yaml``) of the packaged configs: the files, and ``<task>_<method>`` for
    every task config and method (made from the task's file and the method's recipe)."""
    files = {p.stem for p in packaged_config_dir().glob("*.yaml")}
    methods = [m.value for m in Method if m != Method.ORACLE]
    return sorted(files | {f"{task}_{m}" for task in _task_configs() for m in methods})


def _task_configs() -> list[str]:
    """Packaged configs that are a task of their own (no ``extends``): the bases of the
    ``<task>_<method>`` names."""
    return sorted(p.stem for p in packaged_config_dir().glob("*.yaml") if "extends" not in _read_yaml(p))


def _method_config(spec: str | Path) -> Optional[dict[str, Any]]:
    """The raw config of a packaged ``<task>_<method>`` name without a file of its own: the task's
    config switched to the method exactly as ``duetfair benchmark CONFIG --method`` does, so both
    resolve to the same config. ``None`` when ``spec`` is not such a name."""
    name = str(spec).removesuffix(".yaml")
    if Path(spec).exists() or "/" in name or (packaged_config_dir() / f"{name}.yaml").is_file():
        return None
    for method in sorted((m.value for m in Method if m != Method.ORACLE), key=len, reverse=True):
        task = name.removesuffix(f"_{method}")
        if task != name and (packaged_config_dir() / f"{task}.yaml").is_file() and task in _task_configs():
            raw = with_method(load_raw(task), method)
            return {**raw, "name": name, "output_dir": f"runs/{name}"}
    return None


def find_config(spec: str | Path) -> Path:
    """Resolve a config path or a packaged config name (``fundus2d_dmoe``) to a file."""
    path = Path(spec)
    if path.is_file():
        return path
    name = path.name if path.suffix in (".yaml", ".yml") else f"{path.name}.yaml"
    packaged = packaged_config_dir() / name
    if str(spec) == path.name or str(spec) == path.stem:
        if packaged.is_file():
            return packaged
    if packaged.is_file() and not path.parent.exists():
        return packaged
    names = ", ".join(list_packaged_configs()[:12])
    raise DuetfairError(f"config '{spec}' not found; expected a YAML file or a packaged config name ({names}, ...)")


def deep_merge(base: dict[str, Any], over: dict[str, Any]) -> dict[str, Any]:
    """Recursive dict merge; ``over`` wins; nested dicts are merged, everything else replaced."""
    out = copy.deepcopy(base)
    for key, value in over.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = deep_merge(out[key], value)
        else:
            out[key] = copy.deepcopy(value)
    return out


#: section -> the key that selects a registry entry; ``args`` of that entry belong to it alone
_SELECTORS = {"data": "kind", "model": "name", "objective": "name"}


def merge_configs(base: dict[str, Any], child: dict[str, Any]) -> dict[str, Any]:
    """``extends`` merge: :func:`deep_merge`, except that a child section choosing another
    ``data.kind`` / ``model.name`` / ``objective.name`` replaces the parent's ``args`` (they were
    the other entry's options) instead of merging into them."""
    base = copy.deepcopy(base)
    for section, key in _SELECTORS.items():
        parent, over = base.get(section), child.get(section)
        if isinstance(parent, dict) and isinstance(over, dict) and key in over and over[key] != parent.get(key):
            parent.pop("args", None)
    return deep_merge(base, child)


def load_raw(spec: str | Path, _seen: Optional[set[Path]] = None) -> dict[str, Any]:
    """Read a config file following ``extends:`` chains (relative to the file, else packaged);
    a packaged ``<task>_<method>`` name is made from the task's config (:func:`_method_config`)."""
    virtual = _method_config(spec)
    if virtual is not None:
        return virtual
    path = find_config(spec).resolve()
    seen = set() if _seen is None else _seen
    if path in seen:
        raise DuetfairError(f"config {path}: 'extends' forms a cycle")
    seen.add(path)
    data = _read_yaml(path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str) or not parent.strip():
        raise DuetfairError(f"config {path} extends: expected a file name, got {parent!r}")
    base = load_raw(_parent_config(path, parent.strip()), seen)
    return merge_configs(base, data)


def _parent_config(path: Path, parent: str) -> str | Path:
    """What ``extends: parent`` of config ``path`` names: a file in the config's folder (or below
    it), else a packaged config name (a file, or a ``<task>_<method>`` name). A path outside the
    folder (``../``, absolute, a link out) is refused."""
    from duetfair.io import resolve_inside

    local = resolve_inside(path.parent, parent, f"config {path} extends")
    if local.is_file():
        return local
    packaged = packaged_config_dir() / (parent if parent.endswith((".yaml", ".yml")) else f"{parent}.yaml")
    if Path(parent).name == parent and packaged.is_file():
        return packaged
    if Path(parent).name == parent and _method_config(parent) is not None:
        return parent
    names = ", ".join(list_packaged_configs()[:12])
    raise DuetfairError(
        f"config {path} extends '{parent}': not found in {path.parent} nor a packaged config ({names}, ...)"
    )


def parse_override(item: str) -> tuple[list[str], Any]:
    """Parse ``a.b.c=value`` (value read as YAML: numbers, booleans, lists, null)."""
    if "=" not in item:
        raise DuetfairError(f"--set '{item}': expected KEY=VALUE, e.g. train.epochs=5")
    key, raw = item.split("=", 1)
    parts = [p for p in key.strip().split(".")]
    if not key.strip() or any(not p for p in parts):
        raise DuetfairError(f"--set '{item}': expected a dotted key such as optim.lr")
    try:
        # YAML 1.1 reads on/off/yes/no as booleans; keep them as words (e.g. train.amp=off)
        keep = raw.strip().lower() in ("on", "off", "yes", "no", "y", "n")
        value = raw.strip() if keep else (yaml.safe_load(raw) if raw.strip() else "")
    except (yaml.YAMLError, RecursionError):
        value = raw
    if isinstance(value, str):  # YAML 1.1 reads '3e-4' as a string
        try:
            value = float(value) if value.strip().lower() not in ("nan", "inf", "-inf", "infinity") else value
        except ValueError:
            pass
    return parts, value


def apply_overrides(raw: dict[str, Any], overrides: list[str]) -> dict[str, Any]:
    """Apply ``--set`` overrides to a raw config dict (creating nested keys as needed)."""
    out = copy.deepcopy(raw)
    for item in overrides:
        parts, value = parse_override(item)
        node = out
        for i, part in enumerate(parts[:-1]):
            child = node.get(part)
            if child is None:
                child = node[part] = {}
            if not isinstance(child, dict):
                where = ".".join(parts[: i + 1])
                raise DuetfairError(f"--set '{item}': '{where}' is a value, not a section")
            node = child
        node[parts[-1]] = value
    return out


def _apply_method(raw: dict[str, Any]) -> dict[str, Any]:
    """Expand the ``method`` shortcut into model variant, objective and selection defaults."""
    from duetfair.models.registry import MOE_BACKBONES, moe_kind, variant_name

    method = raw.get("method")
    if method is None or method not in set(Method):
        return raw
    kind, objective, _ = METHODS[Method(method)]
    out = copy.deepcopy(raw)
    model = out.setdefault("model", {})
    if not isinstance(model, dict):
        return out
    name = str(model.get("name", ModelConfig().name))
    if name in MOE_BACKBONES:
        model["name"] = variant_name(name, kind)
    elif kind != "none" and moe_kind(name) == "none":
        raise DuetfairError(
            f"config method '{method}' needs a backbone with MoE variants "
            f"({', '.join(MOE_BACKBONES)}); model.name is '{name}'"
        )
    obj = out.setdefault("objective", {})
    if isinstance(obj, dict) and "name" not in obj:
        obj["name"] = objective
    return apply_recipe(out, RECIPES[Method(method)])


def with_method(raw: dict[str, Any], method: str) -> dict[str, Any]:
    """``raw`` (any experiment config, e.g. a user's manifest config) switched to ``method``, as
    ``duetfair benchmark CONFIG --method ...`` does: ``method`` set, the model reduced to its
    backbone so that the shortcut picks the method's variant, the objective set to the method's,
    its ``args`` dropped when the objective changes (they were the other objective's options; the
    method's recipe fills them, :mod:`duetfair.engine.recipes`) and ``model.args.moe_kwargs``
    dropped for a method without MoE. Everything else (data, sizes, optimiser, ``train.select``,
    ``objective.discovery``, ``train.balance_by`` when the config sets it) is kept, so every method
    trains on the same footing."""
    from duetfair.models.registry import MOE_VARIANTS, moe_kind

    target = parse(Method, method, "--method")
    require(
        target != Method.ORACLE,
        "method 'oracle' needs the planted subtype of a synthetic task; it has packaged configs only "
        "(<task>_oracle), not a switch for another config",
    )
    kind, objective, _ = METHODS[target]
    own = validate(raw)
    out = copy.deepcopy(raw)
    out["method"] = target.value
    model = out["model"] = dict(out.get("model") or {})
    model["name"] = own.model.name.removesuffix(MOE_VARIANTS[moe_kind(own.model.name)])
    if not RECIPES[target].subclasses:
        model.pop("subclasses", None)  # routing on subclasses is the subclass_moe recipe's
    if kind == "none" and isinstance(model.get("args"), dict):
        model["args"] = {k: v for k, v in model["args"].items() if k != "moe_kwargs"}
    obj = out["objective"] = dict(out.get("objective") or {})
    if own.objective.name != objective:
        obj.pop("args", None)
    obj["name"] = objective
    return out


def _format_error(exc: ValidationError) -> str:
    """One line naming the key and the allowed values of the first validation problem."""
    err = exc.errors()[0]
    key = ".".join(str(p) for p in err["loc"]) or "config"
    value = _short(err.get("input"))
    kind = err["type"]
    ctx = err.get("ctx") or {}
    if kind in ("literal_error", "enum"):
        return f"config {key}: {value} is not one of {ctx.get('expected')}"
    if kind == "extra_forbidden":
        return f"config {key}: unknown key; check the spelling (see the section's documented keys)"
    if kind == "value_error":
        return f"config {key}: {err['msg'].removeprefix('Value error, ')}"
    return f"config {key}: {err['msg'].lower()} (got {value})"


def _short(value: Any, limit: int = 80) -> str:
    """``repr(value)`` cut to ``limit`` characters (an error never echoes a huge value)."""
    if isinstance(value, (dict, list)) and count_nodes(value, 1000) > 1000:
        return f"<{type(value).__name__} of more than 1000 values>"
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def validate(raw: dict[str, Any]) -> ExperimentConfig:
    """Validate a raw dict (after ``method`` expansion) into an :class:`ExperimentConfig`."""
    try:
        return ExperimentConfig.model_validate(_apply_method(raw))
    except ValidationError as exc:
        raise DuetfairError(_format_error(exc)) from None


def load_config(spec: str | Path, overrides: Optional[list[str]] = None) -> ExperimentConfig:
    """Load, merge ``extends``, apply ``--set`` overrides, expand ``method`` and validate.

    Example:
        >>> cfg = load_config("fundus2d_dmoe", ["train.epochs=2", "optim.lr=3e-4"])
        >>> str(cfg.method), cfg.train.epochs, cfg.optim.lr
        ('dmoe', 2, 0.0003)
    """
    raw = apply_overrides(load_raw(spec), list(overrides or []))
    if count_nodes(raw, MAX_CONFIG_NODES) > MAX_CONFIG_NODES:
        raise DuetfairError(f"config {spec}: the overrides expand to more than {MAX_CONFIG_NODES} values")
    return validate(raw)


def save_config(cfg: ExperimentConfig, path: str | Path) -> Path:
    """Write the resolved config as YAML (atomic)."""
    from duetfair.io import write_text

    return write_text(path, yaml.safe_dump(cfg.to_dict(), sort_keys=False))
