"""Drawing the synthetic cases: shared shape and texture blocks, and one generator per task.

``_fundus``, ``_lesion`` and ``_tumor`` take the task's parameters (:mod:`duetfair.data.synthetic`),
a case count ``n`` and a seeded ``torch.Generator`` and return ``(images [n, C, *S] float32,
labels [n, *S] int64, metadata)`` with one metadata row per case (attributes and the analysis-only
hidden-subtype column). Split from :mod:`duetfair.data.synthetic`, which documents the tasks.
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence, cast

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from duetfair.errors import require
from duetfair.options import HIDDEN_COLUMN

if TYPE_CHECKING:
    from duetfair.data.synthetic import FundusParams, LesionParams, TumorParams


# ---- shared building blocks --------------------------------------------------------------------
def _choice(gen: torch.Generator, probs: Sequence[float], n: int) -> torch.Tensor:
    return torch.multinomial(torch.tensor(probs, dtype=torch.float64), n, replacement=True, generator=gen)


def _uniform(gen: torch.Generator, n: int, lo: float, hi: float, *shape: int) -> torch.Tensor:
    return lo + (hi - lo) * torch.rand((n, *shape), generator=gen)


def _grid(size: int, dims: int) -> list[torch.Tensor]:
    """Coordinates in [-1, 1], each of shape ``[1, size, ...]`` broadcastable over cases."""
    ax = torch.linspace(-1.0, 1.0, size)
    return [g.unsqueeze(0) for g in torch.meshgrid(*([ax] * dims), indexing="ij")]


def _smooth(gen: torch.Generator, n: int, size: int, dims: int, coarse: int = 6) -> torch.Tensor:
    """Smooth random field ``[n, *S]`` with values about N(0, 1) (upsampled coarse noise)."""
    z = torch.randn((n, 1, *([coarse] * dims)), generator=gen)
    mode = "bicubic" if dims == 2 else "trilinear"
    return F.interpolate(z, size=(size,) * dims, mode=mode, align_corners=True)[:, 0]


def _level(
    coords: list[torch.Tensor],
    centre: torch.Tensor,
    radii: torch.Tensor,
    angle: torch.Tensor | None,
    irregular: torch.Tensor | None,
) -> torch.Tensor:
    """Signed shape level ``[n, *S]``: > 0 inside an ellipse(-oid) with a perturbed border.

    ``centre`` / ``radii``: ``[n, dims]`` in grid units; ``angle`` ``[n]`` (2D rotation);
    ``irregular``: ``[n, *S]`` perturbation added to the level (border irregularity).
    """
    dims = len(coords)
    expand = (slice(None),) + (None,) * dims
    d = [coords[k] - centre[:, k][expand] for k in range(dims)]
    if angle is not None:
        c, s = torch.cos(angle)[expand], torch.sin(angle)[expand]
        d = [c * d[0] + s * d[1], -s * d[0] + c * d[1]]
    rho = torch.sqrt(cast(torch.Tensor, sum((d[k] / radii[:, k][expand]) ** 2 for k in range(dims))) + 1e-12)
    level = 1.0 - rho
    return level + irregular if irregular is not None else level


def _soft(level: torch.Tensor, edge: float) -> torch.Tensor:
    return torch.sigmoid(level / max(edge, 1e-4))


def _col(x: torch.Tensor, dims: int) -> torch.Tensor:
    """``[n]`` -> ``[n, 1, ...]`` for broadcasting over ``dims`` spatial axes."""
    return x.reshape(-1, *([1] * dims))


def _take(values: Sequence[float], idx: torch.Tensor) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float32)[idx]


def _band(coords: list[torch.Tensor], gen: torch.Generator, n: int, width: float) -> torch.Tensor:
    """Soft straight band through the centre region (random angle and offset) ``[n, H, W]``."""
    theta = _uniform(gen, n, 0.0, math.pi)
    off = _uniform(gen, n, -0.25, 0.25)
    dist = (
        torch.cos(theta)[:, None, None] * coords[0] + torch.sin(theta)[:, None, None] * coords[1] - off[:, None, None]
    )
    return torch.exp(-((dist / width) ** 2))


def _hairs(coords: list[torch.Tensor], gen: torch.Generator, counts: torch.Tensor, width: float) -> torch.Tensor:
    """Occlusion mask in [0, 1] of ``counts[i]`` thin random lines per case ``[n, H, W]``."""
    n = len(counts)
    kmax = int(counts.max()) if n else 0
    out = torch.zeros((n, *coords[0].shape[1:]))
    for k in range(kmax):  # loop over hair index, vectorised over cases
        active = (counts > k).float()[:, None, None]
        theta = _uniform(gen, n, 0.0, math.pi)[:, None, None]
        off = _uniform(gen, n, -0.9, 0.9)[:, None, None]
        bend = _uniform(gen, n, -0.4, 0.4)[:, None, None]
        along = -torch.sin(theta) * coords[0] + torch.cos(theta) * coords[1]
        dist = torch.cos(theta) * coords[0] + torch.sin(theta) * coords[1] - off - bend * along**2
        out = torch.maximum(out, active * torch.exp(-((dist / width) ** 2)))
    return out


def _counts(gen: torch.Generator, n: int, prob: float | torch.Tensor, most: int) -> torch.Tensor:
    """Per-case object counts ``[n]`` (int64): uniform in ``1..most`` with probability ``prob``
    (a float or ``[n]``), else 0."""
    present = torch.rand(n, generator=gen) < prob
    return torch.where(present, torch.randint(1, most + 1, (n,), generator=gen), torch.zeros(n, dtype=torch.long))


def _glare(p: LesionParams, coords: list[torch.Tensor], gen: torch.Generator, hidden: torch.Tensor) -> torch.Tensor:
    """Glare spots ``[n, 3, H, W]`` to add to the image: ``1..glare_max`` round spots in a
    ``glare_prob`` share of the typical cases and a ``glare_hidden_prob`` share of the hidden
    subtype's (``hidden [n]`` bool), anywhere in the image, colour step ``glare_rgb``."""
    n = len(hidden)
    counts = _counts(gen, n, torch.where(hidden, p.glare_hidden_prob, p.glare_prob), p.glare_max)
    mask = torch.zeros((n, *coords[0].shape[1:]))
    for k in range(int(counts.max()) if n else 0):  # loop over spot index, vectorised over cases
        centre = _uniform(gen, n, -0.9, 0.9, 2)
        r = _uniform(gen, n, 2 * p.glare_radius[0], 2 * p.glare_radius[1])
        level = _level(coords, centre, torch.stack([r, r], 1), None, None)
        mask = torch.maximum(mask, (counts > k).float()[:, None, None] * _soft(level, p.edge))
    return mask.unsqueeze(1) * torch.tensor(p.glare_rgb)[None, :, None, None]


def _ages(gen: torch.Generator, n: int, mean: float, std: float, lo: float, hi: float) -> torch.Tensor:
    return (mean + std * torch.randn(n, generator=gen)).clamp(lo, hi).round()


# ---- fundus2d ---------------------------------------------------------------------------------
def _fundus(p: FundusParams, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    S = p.image_size
    race = _choice(gen, p.race_probs, n)
    age = _ages(gen, n, p.age_mean, p.age_std, 18, 95)
    male = torch.rand(n, generator=gen) < p.male_prob
    hidden = torch.rand(n, generator=gen) < p.hidden_prob
    old = ((age - 40.0) / 50.0).clamp(0, 1)

    contrast = _take(p.contrast, race) * (1 - p.age_contrast * old)
    contrast = torch.where(hidden, contrast * p.hidden_contrast, contrast)
    disc_r = 2 * _take(p.disc_radius, race) * (1 + p.size_jitter * torch.randn(n, generator=gen)).clamp(0.6, 1.5)
    disc_r = torch.where(male, disc_r * p.male_disc_scale, disc_r)
    cup = (_take(p.cup_ratio, race) + p.age_cup * old + 0.06 * torch.randn(n, generator=gen)).clamp(0.25, 0.85)
    cup = torch.where(hidden, cup * p.hidden_cup_scale, cup)
    irr_amp = torch.where(hidden, torch.full((n,), p.hidden_irregularity), torch.full((n,), p.irregularity))

    coords = _grid(S, 2)
    centre = 0.15 * torch.randn((n, 2), generator=gen).clamp(-2, 2)
    aspect = _uniform(gen, n, 0.9, 1.12)
    radii = torch.stack([disc_r * aspect, disc_r / aspect], 1)
    angle = _uniform(gen, n, 0.0, math.pi)
    irr = _col(irr_amp, 2) * _smooth(gen, n, S, 2, coarse=5).clamp(-2.5, 2.5) / 2.5
    disc_level = _level(coords, centre, radii, angle, irr)
    cup_centre = centre + 0.25 * radii * (torch.rand((n, 2), generator=gen) - 0.5)
    cup_level = _level(coords, cup_centre, radii * cup[:, None], angle, 0.5 * irr)

    disc_hard, cup_hard = disc_level > 0, (cup_level > 0) & (disc_level > 0)
    label = disc_hard.long() + cup_hard.long()

    pol, col = _take(p.polarity, race), lambda x: _col(x, 2)
    img = col(_take(p.brightness, race)) - 0.08 * (coords[0] ** 2 + coords[1] ** 2)  # vignetting
    img = img + col(_take(p.texture, race)) * _smooth(gen, n, S, 2, coarse=9)
    step = col(pol * contrast)
    cup_sign = col(torch.where(hidden, p.hidden_cup_polarity, 1.0))
    cup_soft = _soft(cup_level, p.edge) * _soft(disc_level, p.edge)
    img = img + step * (0.30 * _soft(disc_level, p.edge) + 0.25 * cup_sign * cup_soft)
    band = _band(coords, gen, n, width=0.12) * col(hidden.float() * p.hidden_artifact)
    sign = torch.where(torch.rand(n, generator=gen) < 0.5, -1.0, 1.0)
    img = img + col(sign) * band
    img = img + col(_take(p.noise, race)) * torch.randn((n, S, S), generator=gen)
    img = img.clamp(0.0, 1.0)

    meta = pd.DataFrame(
        {
            "race": [p.race_values[i] for i in race.tolist()],
            "age": age.numpy().astype(np.float64),
            "sex": np.where(male.numpy(), "Male", "Female"),
            HIDDEN_COLUMN: hidden.numpy().astype(np.int64),
        }
    )
    return img.unsqueeze(1).float(), label.unsqueeze(1), meta


# ---- lesion2d ---------------------------------------------------------------------------------
def _lesion(p: LesionParams, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    S = p.image_size
    age = _ages(gen, n, p.age_mean, p.age_std, 1, 95)
    male = torch.rand(n, generator=gen) < p.male_prob
    site = _choice(gen, p.site_probs, n)
    hidden = torch.rand(n, generator=gen) < p.hidden_prob
    old = ((age - 50.0) / 40.0).clamp(0, 1)

    radius = 2 * p.lesion_radius * (1 + 0.2 * torch.randn(n, generator=gen)).clamp(0.5, 1.6)
    radius = torch.where(age < 20, radius * p.young_radius_scale, radius)
    radius = torch.where(hidden, radius * p.hidden_radius_scale, radius)
    contrast = _take(p.site_contrast, site) * (1 - p.old_contrast_loss * old)
    contrast = torch.where(hidden, contrast * p.hidden_contrast, contrast)
    irr_amp = torch.where(hidden, torch.full((n,), p.hidden_irregularity), torch.full((n,), p.irregularity))

    coords = _grid(S, 2)
    centre = 0.2 * torch.randn((n, 2), generator=gen).clamp(-2, 2)
    aspect = _uniform(gen, n, 0.8, 1.25)
    radii = torch.stack([radius * aspect, radius / aspect], 1)
    irr = _col(irr_amp, 2) * _smooth(gen, n, S, 2, coarse=7).clamp(-2.5, 2.5) / 2.5
    level = _level(coords, centre, radii, _uniform(gen, n, 0.0, math.pi), irr)
    label = (level > 0).long()

    col = lambda x: _col(x, 2)  # noqa: E731
    tone = _uniform(gen, n, 0.0, 1.0)  # skin tone: light (0) .. dark (1)
    skin = torch.stack([0.85 - 0.35 * tone, 0.68 - 0.33 * tone, 0.60 - 0.32 * tone], 1)  # [n, 3]
    texture_amp = _take(p.site_texture, site) + p.old_texture * old
    base = col(texture_amp) * _smooth(gen, n, S, 2, coarse=12)
    stripes = col(_take(p.site_stripes, site)) * torch.sin(
        28.0 * (col(_uniform(gen, n, 0.5, 1.0)) * coords[0] + col(_uniform(gen, n, -0.5, 0.5)) * coords[1])
    )
    lesion_rgb = torch.tensor([-0.45, -0.42, -0.35])  # brown: darker, a little more in R and G
    mottle = 1.0 + 0.25 * _smooth(gen, n, S, 2, coarse=10)
    soft = _soft(level, p.edge) * mottle
    img = skin[:, :, None, None] + (base + stripes).unsqueeze(1)
    sign = torch.where(hidden, p.hidden_polarity, 1.0)  # amelanotic: lighter than the skin
    img = img + (col(contrast * sign) * soft).unsqueeze(1) * lesion_rgb[None, :, None, None]
    hair_n = _counts(gen, n, torch.where(male, p.male_hair_prob, p.male_hair_prob / 3), 3)
    hair_n = torch.where(hidden, hair_n + p.hidden_hairs, hair_n)
    hair = _hairs(coords, gen, hair_n, width=0.025)
    img = img * (1 - 0.85 * hair.unsqueeze(1))
    if p.glare_prob > 0 or p.glare_hidden_prob > 0:  # no draws when off (the version-1 cases)
        img = img + _glare(p, coords, gen, hidden)
    img = img + p.noise * torch.randn((n, 3, S, S), generator=gen)
    img = img.clamp(0.0, 1.0)

    meta = pd.DataFrame(
        {
            "age": age.numpy().astype(np.float64),
            "sex": np.where(male.numpy(), "male", "female"),
            "site": [p.site_values[i] for i in site.tolist()],
            HIDDEN_COLUMN: hidden.numpy().astype(np.int64),
        }
    )
    return img.float(), label.unsqueeze(1), meta


# ---- tumor3d ----------------------------------------------------------------------------------
def _tumor(p: TumorParams, n: int, gen: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, pd.DataFrame]:
    S, C = p.image_size, p.channels
    require(C >= 2, f"tumor3d: channels must be >= 2 (pre + post contrast), got {C}")
    stage = _choice(gen, p.stage_probs, n)
    inst = _choice(gen, p.institution_probs, n)
    hidden = torch.rand(n, generator=gen) < p.hidden_prob

    radius = 2 * _take(p.stage_radius, stage) * (1 + 0.15 * torch.randn(n, generator=gen)).clamp(0.6, 1.5)
    radius = torch.where(hidden, radius * p.hidden_radius_scale, radius)
    irr_amp = _take(p.stage_irregularity, stage) + hidden.float() * p.hidden_irregularity
    coords = _grid(S, 3)
    centre = 0.25 * torch.randn((n, 3), generator=gen).clamp(-2, 2)
    radii = radius[:, None] * _uniform(gen, n, 0.8, 1.25, 3)
    irr = _col(irr_amp, 3) * _smooth(gen, n, S, 3, coarse=5).clamp(-2.5, 2.5) / 2.5
    level = _level(coords, centre, radii, None, irr)
    label = (level > 0).long()

    col = lambda x: _col(x, 3)  # noqa: E731
    tissue = 0.4 + col(_take(p.tissue, inst)) * _smooth(gen, n, S, 3, coarse=6)
    bias = 1.0 + col(_take(p.bias_field, inst)) * _smooth(gen, n, S, 3, coarse=3)
    uptake = _take(p.enhancement, inst) * torch.where(hidden, p.hidden_enhancement, 1.0)
    soft = _soft(level, p.edge)
    core = _soft(_level(coords, centre, radii * p.hidden_core, None, None), p.edge)
    enhancing = torch.where(col(hidden.float()) > 0, (soft - core).clamp_min(0), soft)  # necrotic core
    wall, fluid = _cyst(p, coords, gen, hidden, centre, soft)
    wall_uptake = _take(p.enhancement, inst) * p.hidden_enhancement  # the cyst wall enhances like the rim
    phases = []
    for k in range(C):  # pre-contrast (k = 0) then wash-in over the post-contrast phases
        curve = 0.0 if k == 0 else 0.6 * (1 - math.exp(-1.5 * k))
        vol = tissue + col(uptake * curve) * enhancing + (0.05 * soft - 0.05 * fluid if k == 0 else 0.0)
        phases.append(vol + col(wall_uptake * curve) * wall)
    img = torch.stack(phases, 1) * bias.unsqueeze(1)
    img = img + _ghost(coords, gen, hidden, p.hidden_ghost).unsqueeze(1)
    img = img + col(_take(p.noise, inst)).unsqueeze(1) * torch.randn((n, C, S, S, S), generator=gen)
    img = _zscore(img)

    meta = pd.DataFrame(
        {
            "stage": [p.stage_values[i] for i in stage.tolist()],
            "institution": [p.institution_values[i] for i in inst.tolist()],
            HIDDEN_COLUMN: hidden.numpy().astype(np.int64),
        }
    )
    return img.float(), label.unsqueeze(1), meta


def _cyst(
    p: TumorParams,
    coords: list[torch.Tensor],
    gen: torch.Generator,
    hidden: torch.Tensor,
    centre: torch.Tensor,
    tumour: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Benign cyst (background by label): its enhancing wall and its fluid core, each ``[n, *S]``
    in [0, 1], zero where the case has none or inside the tumour (``tumour [n, *S]``, soft mask).

    A cyst lies in a ``cyst_prob`` share of the typical cases and a ``cyst_hidden_prob`` share of
    the hidden subtype's, in the octant opposite the tumour (``centre [n, 3]``). Like the hidden
    subtype it is a ring-enhancing sphere with a non-enhancing core; it differs by a round border,
    its size (``cyst_radius``), a core darker than the tissue before contrast, and it lies beside a
    solid tumour."""
    n = len(hidden)
    if p.cyst_prob == 0 and p.cyst_hidden_prob == 0:  # no draws when off
        zero = torch.zeros_like(tumour)
        return zero, zero
    present = torch.rand(n, generator=gen) < torch.where(hidden, p.cyst_hidden_prob, p.cyst_prob)
    where = -torch.where(centre >= 0, 1.0, -1.0) * _uniform(gen, n, 0.35, 0.65, 3)
    r = _uniform(gen, n, 2 * p.cyst_radius[0], 2 * p.cyst_radius[1])
    radii = torch.stack([r, r, r], 1)
    keep = _col(present.float(), 3) * (1 - tumour)
    outer = _soft(_level(coords, where, radii, None, None), p.edge)
    inner = _soft(_level(coords, where, radii * p.cyst_core, None, None), p.edge)
    return keep * (outer - inner).clamp_min(0), keep * inner


def _ghost(coords: list[torch.Tensor], gen: torch.Generator, hidden: torch.Tensor, amp: float) -> torch.Tensor:
    """Motion ghost: periodic stripes along the phase-encoding axis in hidden cases ``[n, *S]``."""
    n = len(hidden)
    freq = _uniform(gen, n, 6.0, 10.0)[:, None, None, None]
    phase = _uniform(gen, n, 0.0, 2 * math.pi)[:, None, None, None]
    return amp * hidden.float()[:, None, None, None] * torch.sin(freq * math.pi * coords[1] + phase)


def _zscore(img: torch.Tensor) -> torch.Tensor:
    """Z-score each case over all phases and voxels (the MAMA-MIA convention)."""
    dims = tuple(range(1, img.ndim))
    mean = img.mean(dim=dims, keepdim=True)
    std = img.std(dim=dims, keepdim=True).clamp_min(1e-6)
    return (img - mean) / std
