"""The failing cases themselves: a gallery of the worst cases of every group.

:func:`worst_cases` picks, for every audited attribute, the ``per_group`` worst cases of each group
(case-level metric, lowest first for Dice, highest for distances). :func:`thumbnail` draws one case
as a small JPEG (``size`` pixels, base64 data URI): the image (a 2D image, or for 3D the slice with
the most reference voxels, else the most predicted voxels, else the middle one), cropped around the
masks, with the reference contour (solid, green) and the prediction contour (dashed, magenta), so
the two read apart without colour too. A :class:`Gallery` holds the entries a report shows.

Images come from where the caller has them: ``duetfair evaluate`` passes the arrays of its
dataset and predictions (:mod:`duetfair.engine.evaluate`); ``duetfair score --images DIR`` reads
them with :class:`FolderGallery` (images through the data layer's MONAI reader, masks through
:func:`duetfair.metrics.folders.read_label_map`). A gallery never stops a report: a case that
cannot be drawn is left out with a note.
"""

from __future__ import annotations

import base64
import io
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import pandas as pd

from duetfair.metrics.hidden import higher_is_better

PER_GROUP = 4
"""Worst cases shown per group."""

MAX_CASES = 120
"""At most this many thumbnails in a report (a 1,000-case report stays small)."""

THUMB_SIZE = 96
"""Thumbnail side in pixels."""

IMAGE_SUFFIXES = (
    ".nii.gz",
    ".nii",
    ".nrrd",
    ".nhdr",
    ".mha",
    ".mhd",
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".npy",
    ".npz",
)
"""Image files :class:`FolderGallery` reads (longest suffix first where one ends another)."""


@dataclass
class Gallery:
    """Thumbnails of the worst cases: ``entries`` (``case_id``, ``attribute``, ``group``, ``score``,
    ``src`` data URI, ``slice`` for 3D), the ``metric`` they are ranked by, ``notes`` (cases left
    out and why) and ``draw`` (case ids -> thumbnails, for more cases, e.g. the hidden failure
    slices' worst; None when nothing can be drawn)."""

    entries: list[dict[str, Any]] = field(default_factory=list)
    metric: str = "dice"
    per_group: int = PER_GROUP
    notes: list[str] = field(default_factory=list)
    draw: Callable[[Sequence[str]], Mapping[str, tuple[str, str] | str]] | None = field(
        default=None, repr=False, compare=False
    )


# ---- selection -----------------------------------------------------------------------------------


def worst_cases(
    cases: pd.DataFrame,
    metric: str,
    attributes: Sequence[str],
    *,
    spec: Any = None,
    per_group: int = PER_GROUP,
    max_cases: int = MAX_CASES,
) -> pd.DataFrame:
    """The ``per_group`` worst cases of every group of every attribute.

    Args:
        cases: case-level table (one row per case: ``case_id``, ``metric``, raw attribute columns).
        metric: metric column; worst = lowest, highest for distances (NaN cases are skipped).
        attributes: audited attributes (``race``, ``race+sex``).
        spec: the audit's :class:`~duetfair.data.groups.GroupSpec` (labels exactly as the audit).
        per_group: cases per group.
        max_cases: cap on rows (groups of the first attributes first).

    Returns:
        ``case_id``, ``attribute``, ``group``, ``score`` (worst first within each group).
    """
    from duetfair.data.groups import GroupSpec

    cols = ["case_id", "attribute", "group", "score"]
    if metric not in cases.columns or "case_id" not in cases.columns:
        return pd.DataFrame(columns=cols)
    values = pd.to_numeric(cases[metric], errors="coerce")
    hb = higher_is_better(metric)
    groups = GroupSpec.for_table(cases, list(attributes), base=spec)
    rows: list[dict[str, Any]] = []
    for attr in attributes:
        labels = groups.labels(cases, attr)
        frame = pd.DataFrame(
            {"case_id": cases["case_id"].astype(str).to_numpy(), "group": labels.to_numpy(), "score": values.to_numpy()}
        )
        frame = frame[frame["group"].notna() & frame["score"].notna()]
        for g in labels.cat.categories:
            part = frame[frame["group"] == g].sort_values("score", ascending=hb, kind="stable").head(per_group)
            rows += [
                {"case_id": r.case_id, "attribute": attr, "group": str(g), "score": float(r.score)}
                for r in part.itertuples(index=False)
            ]
    return pd.DataFrame(rows[:max_cases], columns=cols)


# ---- drawing -------------------------------------------------------------------------------------


def _slice(image: np.ndarray, ref: np.ndarray, pred: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """2D views ``(image [C, H, W], ref [H, W], pred [H, W], where)`` of a 2D or 3D case."""
    if ref.ndim == 2:
        return image, ref, pred, ""
    depth = ref.shape[-1]
    counts = (ref > 0).reshape(-1, depth).sum(0)
    if not counts.any():
        counts = (pred > 0).reshape(-1, depth).sum(0)
    z = int(np.argmax(counts)) if counts.any() else depth // 2
    # NIfTI arrays are (x, y, z): turn the slice so that y runs up the screen, as viewers show it
    turn = np.rot90
    return (np.stack([turn(c[..., z]) for c in image]), turn(ref[..., z]), turn(pred[..., z]), f"slice {z + 1}/{depth}")


def _display(image: np.ndarray, rgb: bool | None) -> np.ndarray:
    """``[C, H, W]`` -> ``[H, W]`` grey or ``[H, W, 3]`` RGB in [0, 1] (1st-99th percentile window)."""
    img = np.asarray(image, dtype=np.float64)
    if img.ndim == 2:
        img = img[None]
    use_rgb = img.shape[0] in (3, 4) if rgb is None else rgb and img.shape[0] >= 3
    img = img[:3] if use_rgb else img[:1]
    out = np.empty_like(img)
    for c in range(img.shape[0]):
        ch = np.nan_to_num(img[c])
        lo, hi = np.percentile(ch, [1, 99]) if ch.size else (0.0, 1.0)
        out[c] = np.clip((ch - lo) / (hi - lo), 0, 1) if hi > lo else np.zeros_like(ch)
    return np.moveaxis(out, 0, -1) if use_rgb else out[0]


def _crop(ref: np.ndarray, pred: np.ndarray, min_fraction: float = 0.35) -> tuple[slice, slice]:
    """A square window around the masks (half their extent as margin, at least ``min_fraction`` of
    the image side), the whole image when both masks are empty."""
    h, w = ref.shape
    fg = (ref > 0) | (pred > 0)
    if not fg.any():
        return slice(0, h), slice(0, w)
    ys, xs = np.nonzero(fg)
    cy, cx = (ys.min() + ys.max()) / 2, (xs.min() + xs.max()) / 2
    side = max(ys.max() - ys.min() + 1, xs.max() - xs.min() + 1) * 2.0
    side = int(min(max(side, min_fraction * max(h, w)), max(h, w)))
    y0 = int(np.clip(round(cy - side / 2), 0, max(0, h - side)))
    x0 = int(np.clip(round(cx - side / 2), 0, max(0, w - side)))
    return slice(y0, min(h, y0 + side)), slice(x0, min(w, x0 + side))


def thumbnail(
    image: np.ndarray,
    ref: np.ndarray,
    pred: np.ndarray,
    *,
    size: int = THUMB_SIZE,
    rgb: bool | None = None,
    quality: int = 88,
) -> tuple[str, str]:
    """One case as a JPEG data URI and a note (``slice 34/80`` for 3D, else empty).

    Args:
        image: ``[C, *S]`` or ``[*S]`` (any range; shown in its 1st-99th percentile window).
        ref: reference label map ``[*S]`` (2D or 3D).
        pred: predicted label map ``[*S]``.
        size: thumbnail side in pixels.
        rgb: show 3 channels as colour (default: when the image has 3 or 4 channels).
        quality: JPEG quality.
    """
    from matplotlib.figure import Figure

    ref = np.asarray(ref)
    pred = np.asarray(pred)
    image = np.asarray(image)
    if image.ndim == ref.ndim:
        image = image[None]
    if image.shape[1:] != ref.shape or pred.shape != ref.shape:
        raise ValueError(
            f"image {tuple(image.shape[1:])}, reference {tuple(ref.shape)} and prediction "
            f"{tuple(pred.shape)} differ in shape"
        )
    img, r, p, where = _slice(image, ref, pred)
    ys, xs = _crop(r, p)
    view = _display(img[:, ys, xs], rgb)
    r, p = r[ys, xs], p[ys, xs]
    fig = Figure(figsize=(size / 100, size / 100), dpi=100)
    ax = fig.add_axes((0, 0, 1, 1))
    ax.imshow(view, cmap="gray", vmin=0, vmax=1, interpolation="antialiased")
    for mask, colour, style in ((r, "#00e000", "solid"), (p, "#ff00ff", "dashed")):
        labels = np.unique(mask[mask > 0])
        if labels.size:
            ax.contour(
                mask.astype(np.float32),
                levels=(labels[:-1] + labels[1:]) / 2 if labels.size > 1 else [0.5],
                colors=colour,
                linewidths=1.1,
                linestyles=style,
            )
            if labels.size > 1:  # the outer boundary of the union too (e.g. optic disc around the cup)
                ax.contour((mask > 0).astype(np.float32), levels=[0.5], colors=colour, linewidths=1.1, linestyles=style)
    ax.set_axis_off()
    ax.set_xlim(-0.5, view.shape[1] - 0.5)
    ax.set_ylim(view.shape[0] - 0.5, -0.5)
    buf = io.BytesIO()
    fig.savefig(buf, format="jpeg", pil_kwargs={"quality": quality, "subsampling": 0})
    return "data:image/jpeg;base64," + base64.b64encode(buf.getvalue()).decode("ascii"), where


def build_gallery(
    picks: pd.DataFrame,
    draw: Callable[[Sequence[str]], Mapping[str, tuple[str, str] | str]],
    *,
    metric: str,
    per_group: int = PER_GROUP,
) -> Gallery:
    """Gallery of the ``picks`` of :func:`worst_cases`; ``draw(case_ids)`` returns, per case id it
    could draw, ``(data URI, note)`` (or the text of why it could not: a string without ``data:``)."""
    ids = list(dict.fromkeys(picks["case_id"].astype(str)))
    drawn = draw(ids) if ids else {}
    gallery = Gallery(metric=metric, per_group=per_group, draw=draw)
    failed: dict[str, str] = {}
    for r in picks.itertuples(index=False):
        got = drawn.get(str(r.case_id))
        if isinstance(got, tuple):
            gallery.entries.append(
                {
                    "case_id": str(r.case_id),
                    "attribute": r.attribute,
                    "group": r.group,
                    "score": float(r.score),
                    "src": got[0],
                    "where": got[1],
                }
            )
        else:
            failed[str(r.case_id)] = got or "no image found"
    if failed:
        shown = "; ".join(f"{k}: {v}" for k, v in list(failed.items())[:5])
        gallery.notes.append(f"{len(failed)} case(s) not drawn ({shown}{'; ...' if len(failed) > 5 else ''})")
    return gallery


# ---- images from folders (duetfair score --images) ----------------------------------------------


def _image_id(name: str) -> str | None:
    lower = name.lower()
    for ext in IMAGE_SUFFIXES:
        if lower.endswith(ext) and len(name) > len(ext):
            return name[: -len(ext)]
    return None


def list_images(folder: str | Path) -> dict[str, Path]:
    """``{case_id: image file}`` of a folder: the name without its extension, or without an nnU-Net
    channel suffix (``case_0000.nii.gz`` -> ``case``, first channel)."""
    found: dict[str, Path] = {}
    for path in sorted(Path(folder).iterdir()):
        cid = _image_id(path.name) if path.is_file() and not path.name.startswith(".") else None
        if cid is None:
            continue
        found.setdefault(cid, path)
        channel = re.fullmatch(r"(.+)_(\d{4})", cid)
        if channel and channel.group(2) == "0000":
            found.setdefault(channel.group(1), path)
    return found


@dataclass(frozen=True)
class FolderGallery:
    """Gallery source of ``duetfair score PRED REF --images DIR``: images in ``images`` matched by
    case id (see :func:`list_images`), masks matched as the scoring matched them."""

    images: Path
    predictions: Path
    references: Path
    pred_pattern: str | None = None
    ref_pattern: str | None = None
    per_group: int = PER_GROUP
    size: int = THUMB_SIZE

    def build(self, cases: pd.DataFrame, audit: Mapping[str, Any]) -> Gallery:
        """The gallery of an audited per-case table (``cases``: the table the audit read)."""
        from duetfair.data.groups import GroupSpec
        from duetfair.metrics.cases import case_level

        key = next(iter(audit["metrics"]))
        metric = key.partition("[")[0]
        if not Path(self.images).is_dir():
            return Gallery(metric=metric, notes=[f"--images {self.images}: folder not found; no gallery"])
        table = case_level(cases, [metric]) if "class" in cases.columns else cases
        spec = GroupSpec.from_dict(audit["group_spec"]) if "group_spec" in audit else None
        picks = worst_cases(table, metric, audit.get("by", []), spec=spec, per_group=self.per_group)
        return build_gallery(picks, self._draw, metric=metric, per_group=self.per_group)

    def _draw(self, ids: Sequence[str]) -> dict[str, tuple[str, str] | str]:
        import warnings

        from duetfair.data.transforms import make_loader
        from duetfair.metrics.folders import match_folders, read_label_map

        images = list_images(self.images)
        pairs = {
            p.case_id: p
            for p in match_folders(
                self.predictions,
                self.references,
                pred_pattern=self.pred_pattern,
                ref_pattern=self.ref_pattern,
                allow_missing=True,
            )
        }
        loader = make_loader()
        out: dict[str, tuple[str, str] | str] = {}
        for cid in ids:
            if cid not in images or cid not in pairs:
                out[cid] = "no image" if cid not in images else "no masks"
                continue
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    img = loader(str(images[cid]))
                image = np.asarray(img.detach().cpu().numpy() if hasattr(img, "detach") else img)
                pair = pairs[cid]
                ref, _ = read_label_map(pair.ref)
                pred = read_label_map(pair.pred)[0] if pair.pred is not None else np.zeros_like(ref)
                out[cid] = thumbnail(image, ref, pred, size=self.size)
            except Exception as exc:  # noqa: BLE001 - a case that cannot be drawn is only left out
                out[cid] = " ".join(str(exc).split())[:120] or type(exc).__name__
        return out
