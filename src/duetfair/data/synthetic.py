"""Built-in synthetic fairness benchmark (2D fundus, 2D skin lesion, 3D tumour).

It reproduces the *structure* of the papers' problems so that fairness methods can differ on it:

* **inter-group effects** - appearance (contrast, polarity, brightness, noise, texture) and anatomy
  (target size / shape distributions) depend on the attributes, so an attribute-aware model has
  something to adapt to, and minority groups are genuinely harder;
* **intra-group hidden failures** - inside every group a minority subtype (``hidden_prob``, default
  15 %), drawn independently of the attributes and absent from the metadata a model sees, looks
  *systematically different*: its target has another appearance (fundus: a cup darker than the
  rim; skin: an amelanotic lesion lighter than the skin; tumour: a rim-enhancing tumour whose
  necrotic core does not enhance), plus an artefact and somewhat lower contrast. A model that
  learns mostly from the typical cases scores lower on it. It is recorded in the analysis-only
  column ``hidden_subtype``;
* **decoys that make the subtype a lesson against the majority** - in ``lesion2d`` and
  ``tumor3d`` the typical cases hold a background object that looks like the subtype's target
  (glare spots coloured like an amelanotic lesion; a benign cyst with an enhancing wall and a
  non-enhancing core), so what most cases teach ("this is background") is wrong for the subtype.
  The subtype can still be told apart from its context (no typical target beside it, a rounder
  decoy), so it is learnable but under-represented: a model that sees enough of it, the benchmark's
  oracle, segments it better than ERM. The tumour cysts are as large as the tumours, so that size
  alone does not give the subtype away. ``fundus2d`` needs no decoy: its subtype's cup inverts what
  the typical cups teach.

Generation is vectorised over cases with torch (float32, CPU), seeded and deterministic: the same
task, size, parameters and seed give the same cases bit for bit. Every effect size and proportion
is a field of the task's parameter dataclass (:class:`FundusParams`, :class:`LesionParams`,
:class:`TumorParams`) with a documented default; pass overrides as keyword arguments.

Tasks:

* ``fundus2d`` - Harvard-FairSeg-like grayscale SLO fundus, classes 0 background / 1 rim / 2 cup;
  attributes ``race`` (Asian/Black/White, 9/15/76 %), ``age`` (years; spec bins <60 / >=60),
  ``sex``.
* ``lesion2d`` - HAM10000-like RGB skin with one lesion, classes 0 / 1; attributes ``age`` (years;
  spec bins <20, 20-39, 40-59, 60-79, >=80), ``sex``, ``site``.
* ``tumor3d`` - radiotherapy / MAMA-MIA-like multi-phase 3D volume (default 3 channels: pre-contrast
  and two post-contrast phases, z-scored over phases), classes 0 / 1; attributes ``stage``
  (T1-T4; T1 rare and small) and ``institution`` (4 sites, imbalanced).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Mapping, Sequence

import numpy as np
import pandas as pd
import torch

from duetfair.data.groups import (
    FAIRSEG_AGE_EDGES,
    FAIRSEG_AGE_LABELS,
    HAM_AGE_EDGES,
    HAM_AGE_LABELS,
    AttributeSpec,
    GroupSpec,
)
from duetfair.data.synthetic_draw import _fundus, _lesion, _tumor
from duetfair.errors import require
from duetfair.options import HIDDEN_COLUMN

if TYPE_CHECKING:
    from duetfair.data.dataset import CaseDataset

TASKS = ("fundus2d", "lesion2d", "tumor3d")
GENERATOR_VERSION: dict[str, int] = {"fundus2d": 1, "lesion2d": 2, "tumor3d": 3}
"""Version of each task's cases under its default parameters, raised whenever a change of the
generator changes them (version 2: the decoys of ``lesion2d`` and ``tumor3d``; version 3 of
``tumor3d``: cysts as large as the tumours, so that size no longer tells the subtype from a cyst). From version 2 on
it is part of the config hash of a run on the task (see :func:`generator_version`), so a finished
run trained on older cases is never taken for a new one; version 1 adds nothing to the hash, so
runs made before versions existed keep theirs."""
CHUNK = 256  # cases generated at once (bounds peak memory, keeps tensors cache-friendly)
MAX_MEMORY_BYTES = 4 << 30
"""Largest synthetic dataset held in memory (4 GiB of images and labels); larger requests are
refused up front. ``write_synthetic`` streams to disk and holds one chunk at a time."""
MAX_CASES_ON_DISK = 1_000_000
"""Largest number of cases ``write_synthetic`` writes."""


@dataclass(frozen=True)
class FundusParams:
    """Parameters of ``fundus2d`` (per-race tuples are in the order of ``race_values``).

    Intensities are in [0, 1] before noise; sizes are fractions of the image side.
    """

    image_size: int = 64  #: image side in pixels (default 64; the paper protocol uses 224)
    race_values: tuple[str, ...] = ("Asian", "Black", "White")  #: race group names
    race_probs: tuple[float, ...] = (0.09, 0.15, 0.76)  #: race proportions (Harvard-FairSeg-like)
    brightness: tuple[float, ...] = (0.45, 0.62, 0.35)  #: background level per race
    contrast: tuple[float, ...] = (0.55, 0.75, 1.0)  #: disc/cup vs background contrast per race
    polarity: tuple[float, ...] = (1.0, -1.0, 1.0)  #: +1 bright disc, -1 inverted (dark) disc
    noise: tuple[float, ...] = (0.09, 0.07, 0.05)  #: Gaussian noise std per race
    texture: tuple[float, ...] = (0.08, 0.12, 0.04)  #: amplitude of smooth background texture
    disc_radius: tuple[float, ...] = (0.15, 0.22, 0.19)  #: mean disc radius per race
    cup_ratio: tuple[float, ...] = (0.55, 0.5, 0.45)  #: mean cup-to-disc radius ratio per race
    size_jitter: float = 0.15  #: relative std of disc radius within a group
    age_mean: float = 61.0  #: age mean in years
    age_std: float = 13.0  #: age std in years (clipped to 18-95)
    age_contrast: float = 0.3  #: contrast lost linearly from age 40 (0) to 90 (this fraction)
    age_cup: float = 0.1  #: cup ratio added linearly from age 40 (0) to 90 (this much)
    male_prob: float = 0.45  #: probability of sex Male
    male_disc_scale: float = 1.05  #: disc radius factor of Male cases
    irregularity: float = 0.06  #: border irregularity of ordinary cases
    edge: float = 0.05  #: softness of the image edges (labels stay hard)
    hidden_prob: float = 0.15  #: proportion of the hidden hard subtype inside every group
    hidden_contrast: float = 0.8  #: contrast factor of the hidden subtype
    hidden_cup_polarity: float = -1.0  #: sign of the cup's step over the rim (hidden; -1: darker cup)
    hidden_artifact: float = 0.2  #: amplitude of the artefact band across the disc (hidden)
    hidden_cup_scale: float = 0.9  #: cup ratio factor of the hidden subtype
    hidden_irregularity: float = 0.1  #: border irregularity of the hidden subtype


@dataclass(frozen=True)
class LesionParams:
    """Parameters of ``lesion2d`` (per-site tuples are in the order of ``site_values``)."""

    image_size: int = 64  #: image side in pixels
    age_mean: float = 51.0  #: age mean in years (HAM10000-like)
    age_std: float = 17.0  #: age std (clipped to 1-95)
    male_prob: float = 0.54  #: probability of sex male
    site_values: tuple[str, ...] = ("trunk", "lower extremity", "upper extremity", "face", "acral")
    site_probs: tuple[float, ...] = (0.45, 0.22, 0.15, 0.12, 0.06)  #: site proportions
    site_texture: tuple[float, ...] = (0.03, 0.04, 0.04, 0.08, 0.10)  #: skin texture amplitude
    site_stripes: tuple[float, ...] = (0.0, 0.0, 0.0, 0.0, 0.10)  #: ridge pattern amplitude (acral)
    site_contrast: tuple[float, ...] = (1.0, 1.0, 1.0, 0.8, 0.6)  #: lesion contrast factor per site
    lesion_radius: float = 0.22  #: mean lesion radius (fraction of side) at age 40-59
    young_radius_scale: float = 0.6  #: radius factor below age 20 (small naevi)
    old_contrast_loss: float = 0.35  #: contrast lost linearly from age 50 (0) to 90 (this fraction)
    old_texture: float = 0.05  #: extra skin texture amplitude at age 90 (linear from 50)
    male_hair_prob: float = 0.3  #: probability of a few hairs in male cases (female: a third)
    noise: float = 0.04  #: Gaussian noise std
    irregularity: float = 0.1  #: lesion border irregularity of ordinary cases
    edge: float = 0.04  #: softness of the image edges
    hidden_prob: float = 0.15  #: proportion of the hidden hard subtype inside every group
    hidden_contrast: float = 0.7  #: contrast factor of the hidden subtype
    hidden_polarity: float = -1.0  #: sign of the hidden lesion's colour step (-1: lighter than skin)
    hidden_hairs: int = 2  #: extra hairs over the hidden subtype
    hidden_radius_scale: float = 0.85  #: lesion radius factor of the hidden subtype
    hidden_irregularity: float = 0.15  #: border irregularity of the hidden subtype
    glare_prob: float = 1.0  #: probability of glare spots (air bubbles) in a typical case, background by label
    glare_hidden_prob: float = 0.0  #: probability of glare spots in a hidden-subtype case
    glare_max: int = 2  #: largest number of glare spots in a case (1..glare_max, uniform)
    glare_radius: tuple[float, float] = (0.14, 0.24)  #: glare spot radius range (fraction of side)
    glare_rgb: tuple[float, float, float] = (0.30, 0.28, 0.23)  #: colour step of a glare spot (R, G, B)


@dataclass(frozen=True)
class TumorParams:
    """Parameters of ``tumor3d`` (per-stage / per-institution tuples follow the value orders)."""

    image_size: int = 32  #: volume side in voxels
    channels: int = 3  #: phases: pre-contrast + (channels - 1) post-contrast
    stage_values: tuple[str, ...] = ("T1", "T2", "T3", "T4")
    stage_probs: tuple[float, ...] = (0.05, 0.45, 0.40, 0.10)  #: T-stage proportions (T1 rare)
    stage_radius: tuple[float, ...] = (0.08, 0.13, 0.18, 0.24)  #: mean tumour radius per stage
    stage_irregularity: tuple[float, ...] = (0.05, 0.08, 0.12, 0.25)  #: shape irregularity per stage
    institution_values: tuple[str, ...] = ("A", "B", "C", "D")
    institution_probs: tuple[float, ...] = (0.5, 0.25, 0.15, 0.10)  #: site proportions
    enhancement: tuple[float, ...] = (1.0, 0.8, 0.6, 0.7)  #: contrast uptake per institution
    noise: tuple[float, ...] = (0.05, 0.08, 0.12, 0.10)  #: noise std per institution
    bias_field: tuple[float, ...] = (0.05, 0.15, 0.10, 0.30)  #: smooth bias field amplitude
    tissue: tuple[float, ...] = (0.10, 0.10, 0.18, 0.12)  #: fibroglandular texture amplitude
    edge: float = 0.05  #: softness of the image edges
    hidden_prob: float = 0.15  #: proportion of the hidden hard subtype inside every group
    hidden_enhancement: float = 0.8  #: contrast uptake factor of the hidden (rim-enhancing) subtype
    hidden_core: float = 0.6  #: radius fraction of the hidden subtype's non-enhancing necrotic core
    hidden_ghost: float = 0.15  #: amplitude of a motion ghost stripe in the hidden subtype
    hidden_radius_scale: float = 1.1  #: radius factor of the hidden subtype
    hidden_irregularity: float = 0.05  #: extra shape irregularity of the hidden subtype
    cyst_prob: float = 1.0  #: probability of a benign cyst in a typical case, background by label
    cyst_hidden_prob: float = 0.0  #: probability of a benign cyst in a hidden-subtype case
    cyst_radius: tuple[float, float] = (0.12, 0.24)  #: cyst radius range (fraction of side)
    cyst_core: float = 0.6  #: radius fraction of the cyst's fluid core


PARAMS: dict[str, type] = {"fundus2d": FundusParams, "lesion2d": LesionParams, "tumor3d": TumorParams}
NUM_CLASSES = {"fundus2d": 3, "lesion2d": 2, "tumor3d": 2}
SPATIAL_DIMS = {"fundus2d": 2, "lesion2d": 2, "tumor3d": 3}
IN_CHANNELS = {"fundus2d": 1, "lesion2d": 3, "tumor3d": 3}


@dataclass
class SyntheticData:
    """Generated cases: ``images [N, C, *S]`` float32, ``labels [N, 1, *S]`` int64 and ``meta``
    (``case_id``, attribute columns, ``hidden_subtype``)."""

    task: str
    images: torch.Tensor
    labels: torch.Tensor
    meta: pd.DataFrame
    params: Any = field(repr=False, default=None)


def synthetic_task(args: Mapping[str, Any]) -> str:
    """The task named by synthetic dataset arguments ``args``: ``task``, or its alias ``kind``
    (not both); ``fundus2d`` when neither is given."""
    require(not {"task", "kind"} <= set(args), "synthetic dataset: give 'task' or 'kind', not both")
    return str(args.get("task", args.get("kind", TASKS[0])))


def generator_version(args: Mapping[str, Any]) -> int:
    """:data:`GENERATOR_VERSION` of the task named by synthetic dataset arguments ``args`` (see
    :func:`synthetic_task`); 1 for an unknown task name."""
    return GENERATOR_VERSION.get(synthetic_task(args), 1)


def make_params(task: str, image_size: int | None = None, **overrides: Any) -> Any:
    """The parameter dataclass of ``task`` with ``overrides`` (unknown names are refused)."""
    require(task in PARAMS, f"unknown synthetic task '{task}'; expected one of {list(TASKS)}")
    cls = PARAMS[task]
    names = {f.name for f in fields(cls)}
    bad = sorted(set(overrides) - names)
    require(not bad, f"synthetic task '{task}': unknown parameters {bad}; expected some of {sorted(names)}")
    p = cls()
    if image_size is not None:
        overrides["image_size"] = int(image_size)
    p = replace(p, **{k: (tuple(v) if isinstance(v, list) else v) for k, v in overrides.items()})
    _validate(task, p)
    return p


def _validate(task: str, p: Any) -> None:
    require(p.image_size >= 16, f"{task}: image_size must be >= 16, got {p.image_size}")
    _require_probs(task, p, "hidden_prob")
    if task == "lesion2d":
        _require_probs(task, p, "glare_prob", "glare_hidden_prob")
        require(p.glare_max >= 1, f"{task}: glare_max must be >= 1, got {p.glare_max}")
        _require_range(task, p, "glare_radius")
        require(len(p.glare_rgb) == 3, f"{task}: glare_rgb must have 3 entries (R, G, B), got {p.glare_rgb}")
    if task == "tumor3d":
        _require_probs(task, p, "cyst_prob", "cyst_hidden_prob")
        _require_range(task, p, "cyst_radius")
        require(0.0 < p.cyst_core < 1.0, f"{task}: cyst_core must be in (0, 1), got {p.cyst_core}")
    pairs = {
        "fundus2d": [
            (
                "race_values",
                ["race_probs", "brightness", "contrast", "polarity", "noise", "texture", "disc_radius", "cup_ratio"],
            )
        ],
        "lesion2d": [("site_values", ["site_probs", "site_texture", "site_stripes", "site_contrast"])],
        "tumor3d": [
            ("stage_values", ["stage_probs", "stage_radius", "stage_irregularity"]),
            ("institution_values", ["institution_probs", "enhancement", "noise", "bias_field", "tissue"]),
        ],
    }[task]
    for values, per_group in pairs:
        k = len(getattr(p, values))
        for name in per_group:
            require(
                len(getattr(p, name)) == k,
                f"{task}: '{name}' has {len(getattr(p, name))} entries; expected {k} (one per {values})",
            )
        probs = getattr(p, per_group[0])
        require(
            all(x >= 0 for x in probs) and sum(probs) > 0, f"{task}: '{per_group[0]}' must be >= 0 with a positive sum"
        )


def _require_probs(task: str, p: Any, *names: str) -> None:
    for name in names:
        require(0.0 <= getattr(p, name) <= 1.0, f"{task}: {name} must be in [0, 1], got {getattr(p, name)}")


def _require_range(task: str, p: Any, name: str) -> None:
    low, high = getattr(p, name)
    require(0 < low <= high, f"{task}: {name} must be (low, high) with 0 < low <= high, got {getattr(p, name)}")


#: Group names of the planted subtype when it is selected as an attribute (codes 0 / 1).
HIDDEN_GROUPS = ("typical", "hidden")


def group_spec(task: str, params: Any | None = None, attributes: Sequence[str] | None = None) -> GroupSpec:
    """Group spec of a synthetic task (age bins: FairSeg <60/>=60 for fundus, HAM10000 5 bins for
    lesions); ``attributes`` selects and orders them (default: all of the task's).

    The planted subtype (:data:`~duetfair.options.HIDDEN_COLUMN`, groups :data:`HIDDEN_GROUPS`) is
    never an attribute by default; naming it in ``attributes`` gives a model the true subtype, which
    only the oracle of the benchmark does (it measures how much knowing the hard cases could gain)."""
    p = params if params is not None else make_params(task)
    if task == "fundus2d":
        specs = [
            AttributeSpec("race", list(p.race_values)),
            AttributeSpec("age", list(FAIRSEG_AGE_LABELS), edges=list(FAIRSEG_AGE_EDGES)),
            AttributeSpec("sex", ["Female", "Male"]),
        ]
    elif task == "lesion2d":
        specs = [
            AttributeSpec("age", list(HAM_AGE_LABELS), edges=list(HAM_AGE_EDGES)),
            AttributeSpec("sex", ["female", "male"]),
            AttributeSpec("site", list(p.site_values)),
        ]
    else:
        specs = [AttributeSpec("stage", list(p.stage_values)), AttributeSpec("institution", list(p.institution_values))]
    specs.append(
        AttributeSpec(HIDDEN_COLUMN, list(HIDDEN_GROUPS), value_map={"0": HIDDEN_GROUPS[0], "1": HIDDEN_GROUPS[1]})
    )
    spec = GroupSpec(specs)
    if attributes is None:
        return spec.select([s.name for s in specs[:-1]])
    return spec.select(list(attributes))


def generate(
    task: str, n: int, *, seed: int = 0, image_size: int | None = None, id_prefix: str | None = None, **params: Any
) -> SyntheticData:
    """Generate ``n`` cases of ``task`` in memory.

    Args:
        task: ``"fundus2d"``, ``"lesion2d"`` or ``"tumor3d"``.
        n: number of cases (>= 1).
        seed: random seed (default 0); same arguments -> identical output.
        image_size: image side (default: the task's, 64 for 2D and 32 for 3D).
        id_prefix: case id prefix (default: the task name); ids are ``<prefix>_00000`` ...
        **params: overrides of the task's parameter dataclass fields.

    Returns:
        :class:`SyntheticData` with ``images [n, C, *S]``, ``labels [n, 1, *S]`` and ``meta``.

    Example:
        >>> data = generate("fundus2d", 8, seed=1, image_size=32, hidden_prob=0.2)
        >>> tuple(data.images.shape), tuple(data.labels.shape)  # [N, C, H, W], [N, 1, H, W]
        ((8, 1, 32, 32), (8, 1, 32, 32))
        >>> list(data.meta.columns)
        ['case_id', 'race', 'age', 'sex', 'hidden_subtype']
    """
    p = make_params(task, image_size, **params)
    need = int(n) * case_bytes(task, p.image_size)
    require(
        need <= MAX_MEMORY_BYTES,
        f"{n} {task} cases of size {p.image_size} need {need / 2**30:.1f} GiB in memory "
        f"(limit {MAX_MEMORY_BYTES >> 30} GiB); use fewer cases, a smaller image_size, "
        f"or write them to disk with 'duetfair synth'",
    )
    images, labels, metas = [], [], []
    for img, lab, meta in generate_chunks(task, n, seed=seed, image_size=image_size, id_prefix=id_prefix, **params):
        images.append(img)
        labels.append(lab)
        metas.append(meta)
    return SyntheticData(task, torch.cat(images), torch.cat(labels), pd.concat(metas, ignore_index=True), p)


def case_bytes(task: str, image_size: int) -> int:
    """Bytes of one case in memory: float32 image channels and an int64 label map."""
    voxels = int(image_size) ** SPATIAL_DIMS[task]
    return voxels * (4 * IN_CHANNELS[task] + 8)


def generate_chunks(
    task: str, n: int, *, seed: int = 0, image_size: int | None = None, id_prefix: str | None = None, **params: Any
) -> Iterator[tuple[torch.Tensor, torch.Tensor, pd.DataFrame]]:
    """:func:`generate` in chunks of :data:`CHUNK` cases: ``(images, labels, meta)`` per chunk,
    the same cases in the same order as :func:`generate` (memory: one chunk)."""
    require(isinstance(n, (int, np.integer)) and int(n) >= 1, f"number of cases must be >= 1, got {n}")
    require(0 <= int(seed) < 2**63, f"seed must be in [0, 2^63), got {seed}")
    p = make_params(task, image_size, **params)
    chunk = min(CHUNK, int(n)) * case_bytes(task, p.image_size)
    require(
        chunk <= MAX_MEMORY_BYTES,
        f"image_size {p.image_size}: one chunk of {task} cases needs "
        f"{chunk / 2**30:.1f} GiB (limit {MAX_MEMORY_BYTES >> 30} GiB); use a smaller size",
    )
    gen = torch.Generator().manual_seed(
        int(np.random.SeedSequence([int(seed), TASKS.index(task)]).generate_state(1)[0])
    )
    makers: dict[str, Callable[[Any, int, torch.Generator], tuple[torch.Tensor, torch.Tensor, pd.DataFrame]]]
    makers = {"fundus2d": _fundus, "lesion2d": _lesion, "tumor3d": _tumor}
    maker = makers[task]
    prefix = id_prefix or task
    for start in range(0, int(n), CHUNK):
        img, lab, meta = maker(p, min(CHUNK, int(n) - start), gen)
        meta.insert(0, "case_id", [f"{prefix}_{i:05d}" for i in range(start, start + len(meta))])
        yield img, lab, meta


# ---- datasets and files -----------------------------------------------------------------------
def synthetic_datasets(
    task: str = TASKS[0],
    *,
    n_train: int = 512,
    n_val: int = 128,
    n_test: int = 256,
    image_size: int | None = None,
    seed: int = 0,
    attributes: Sequence[str] | None = None,
    **params: Any,
) -> dict[str, "CaseDataset"]:
    """In-memory train/val/test datasets of a synthetic task (no disk; tensors cached).

    Each split is generated from its own seed derived from ``seed``, so the test set does not
    change when ``n_train`` does.

    Args:
        task: ``"fundus2d"`` (default), ``"lesion2d"`` or ``"tumor3d"``.
        n_train / n_val / n_test: cases per split (defaults 512 / 128 / 256; 0 leaves a split out).
        image_size: image side (default: 64 for 2D, 32 for 3D).
        seed: random seed (default 0).
        attributes: attributes of the group spec, in code order (default: all of the task's).
        **params: overrides of the task's parameter dataclass (effect sizes, proportions).
    """
    from duetfair.data.dataset import CaseDataset

    p = make_params(task, image_size, **params)
    spec = group_spec(task, p, attributes)
    out: dict[str, CaseDataset] = {}
    for k, (split, n) in enumerate((("train", n_train), ("val", n_val), ("test", n_test))):
        if int(n) <= 0:
            continue
        split_seed = int(np.random.SeedSequence([int(seed), 7919, k]).generate_state(1)[0])
        data = generate(
            task,
            int(n),
            seed=split_seed,
            id_prefix=f"{task}_{split}",
            **{f.name: getattr(p, f.name) for f in fields(p)},
        )
        meta = data.meta.assign(split=split)
        images, labels = data.images, data.labels
        out[split] = CaseDataset(
            meta,
            spec,
            _tensor_reader(images, labels),
            num_classes=NUM_CLASSES[task],
            in_channels=int(images.shape[1]),
            channel_source="files" if SPATIAL_DIMS[task] == 3 else "native",
            spatial_dims=SPATIAL_DIMS[task],
        )
    require(len(out) > 0, "synthetic dataset: all of n_train, n_val, n_test are 0")
    return out


def _tensor_reader(images: torch.Tensor, labels: torch.Tensor) -> Callable[[int], tuple[torch.Tensor, torch.Tensor]]:
    """``i -> (images[i], labels[i])``: a dataset's read function over generated tensors."""
    return lambda i: (images[i], labels[i])


def write_synthetic(
    task: str,
    n: int,
    out_dir: str,
    *,
    seed: int = 0,
    image_size: int | None = None,
    fractions: Sequence[float] = (0.8, 0.1, 0.1),
    overwrite: bool = False,
    **params: Any,
) -> Path:
    """Write ``n`` synthetic cases as a user dataset: ``manifest.csv`` + image/label files.

    2D tasks write 8-bit PNGs (``images/<id>.png``, ``labels/<id>.png`` holding class ids);
    ``tumor3d`` writes one NIfTI per phase (``images/<id>_000k.nii.gz``, joined with ``;`` in the
    manifest's ``image`` column) and ``labels/<id>.nii.gz``. The manifest has columns ``image``,
    ``label``, ``case_id``, the attributes, ``split`` (stratified by the first attribute and the
    hidden subtype) and ``hidden_subtype``; ``manifest.json`` beside it records ``num_classes``,
    ``spatial_dims`` and the group spec, so ``build_datasets("manifest", path=...)`` needs nothing
    else. Returns the manifest path.
    """
    from duetfair.data.splits import assign_splits
    from duetfair.io import staged_outputs, write_json

    root = Path(out_dir)
    manifest = root / "manifest.csv"
    require(
        overwrite or not manifest.exists(),
        f"'{manifest}' already exists; choose another --out folder or pass --overwrite",
    )
    require(isinstance(n, (int, np.integer)) and int(n) >= 1, f"number of cases must be >= 1, got {n}")
    require(int(n) <= MAX_CASES_ON_DISK, f"--n {n}: at most {MAX_CASES_ON_DISK} cases are written")
    p = make_params(task, image_size, **params)
    spec = group_spec(task, p)
    writer = _write_case_2d if SPATIAL_DIMS[task] == 2 else _write_case_3d
    with staged_outputs(root) as stage:  # the whole dataset, or nothing
        (stage / "images").mkdir()
        (stage / "labels").mkdir()
        rows, strata = _write_cases(stage, task, n, spec, writer, seed=seed, image_size=image_size, **params)
        splits = assign_splits(strata, fractions=fractions, stratify=list(strata.columns), seed=seed)
        _write_manifest(stage / manifest.name, rows, splits.to_numpy(), strata[HIDDEN_COLUMN].to_numpy(), spec)
        rows.unlink()
        write_json(
            stage / manifest.with_suffix(".json").name,
            {
                "task": task,
                "num_classes": NUM_CLASSES[task],
                "spatial_dims": SPATIAL_DIMS[task],
                "seed": seed,
                "group_spec": spec.to_dict(),
            },
        )
    return manifest


def _write_cases(
    stage: Path, task: str, n: int, spec: GroupSpec, writer: Any, **kwargs: Any
) -> tuple[Path, pd.DataFrame]:
    """Write the files of every case, chunk by chunk, streaming their manifest rows (without the
    split) to a temporary CSV in ``stage``; memory stays one chunk whatever ``n``: per case only the
    2 numbers the split is stratified by are kept (first attribute's code, hidden subtype).
    Returns the rows file and those numbers (``__code_<attr>``, ``hidden_subtype``; int8 ``[n]``)."""
    first = spec.attributes[0]
    code, hidden = np.empty(int(n), dtype=np.int8), np.empty(int(n), dtype=np.int8)
    rows = stage / ".rows.csv"
    start = 0
    with rows.open("w", encoding="utf-8", newline="") as f:
        for images, labels, part in generate_chunks(task, n, **kwargs):
            paths = [writer(stage, cid, images[i], labels[i]) for i, cid in enumerate(part["case_id"])]
            part = part.assign(image=[p[0] for p in paths], label=[p[1] for p in paths])
            part[["image", "label", "case_id", *spec.attributes]].to_csv(f, header=False, index=False)
            stop = start + len(part)
            code[start:stop] = spec.select([first]).encode_frame(part, require_columns=False)[:, 0]
            hidden[start:stop] = part[HIDDEN_COLUMN].to_numpy(dtype=np.int64)
            start = stop
    return rows, pd.DataFrame({f"__code_{first}": code.astype(np.int64), HIDDEN_COLUMN: hidden.astype(np.int64)})


def _write_manifest(path: Path, rows: Path, splits: np.ndarray, hidden: np.ndarray, spec: GroupSpec) -> None:
    """``manifest.csv`` from the streamed rows: each line gets its split and hidden subtype
    (columns ``image, label, case_id, <attributes>, split, hidden_subtype``), line by line."""
    header = ",".join(["image", "label", "case_id", *spec.attributes, "split", HIDDEN_COLUMN])
    with rows.open(encoding="utf-8", newline="") as src, path.open("w", encoding="utf-8", newline="") as dst:
        dst.write(header + "\n")
        for i, line in enumerate(src):
            dst.write(f"{line.rstrip(chr(10)).rstrip(chr(13))},{splits[i]},{int(hidden[i])}\n")


def _write_case_2d(root: Path, cid: str, image: torch.Tensor, label: torch.Tensor) -> tuple[str, str]:
    """One case as 8-bit PNGs under ``root`` (a staging folder); returns the relative paths."""
    from PIL import Image

    arr = (image.clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    arr = arr[0] if arr.shape[0] == 1 else np.moveaxis(arr, 0, -1)
    im_rel, lb_rel = f"images/{cid}.png", f"labels/{cid}.png"
    Image.fromarray(arr).save(root / im_rel, format="PNG")
    Image.fromarray(label[0].to(torch.uint8).numpy()).save(root / lb_rel, format="PNG")
    return im_rel, lb_rel


def _write_case_3d(root: Path, cid: str, image: torch.Tensor, label: torch.Tensor) -> tuple[str, str]:
    """One case as NIfTI files (one per phase) under ``root`` (a staging folder); relative paths."""
    import nibabel as nib

    paths = [f"images/{cid}_{k:04d}.nii.gz" for k in range(image.shape[0])]
    for k, rel in enumerate(paths):
        nib.save(nib.Nifti1Image(image[k].numpy().astype(np.float32), np.eye(4)), str(root / rel))
    lb_rel = f"labels/{cid}.nii.gz"
    nib.save(nib.Nifti1Image(label[0].numpy().astype(np.uint8), np.eye(4)), str(root / lb_rel))
    return ";".join(paths), lb_rel
