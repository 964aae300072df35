"""How the nnU-Net v2 fixture of ``tests/audit/test_nnunet_parity.py`` was made (not run by the tests).

Writes 40 small 3D cases (16 x 16 x 8 voxels, spacing 0.8 x 0.8 x 2.5 mm, labels 1-3 nested like
BraTS: 1 outer, 2 inside it, 3 inside 2) as NIfTI masks in ``labelsTs/`` and ``preds/``, with
healthy cases (empty reference) of which some have false-positive predictions, total misses (empty
prediction) and cases where both masks are empty, plus ``patients.csv`` (site, sex). Then it runs
nnU-Net v2's own evaluator on them (``compute_metrics_on_folder`` with SimpleITK, the code behind
``nnUNetv2_evaluate_folder``), once per label (``summary.json``) and once with BraTS-style regions
(``summary_regions.json``: ``(1, 2, 3)``, ``(2, 3)`` and ``3``). Run from this folder with nnunetv2
2.8.1 installed::

    python make_fixture.py
"""

from __future__ import annotations

from pathlib import Path

import nibabel as nib
import numpy as np

SPACING = (0.8, 0.8, 2.5)
N = 40


def blob(shape: tuple[int, ...], rng: np.random.Generator, scale: float) -> np.ndarray:
    grid = np.indices(shape).astype(float)
    center = np.array([rng.uniform(0.35 * s, 0.65 * s) for s in shape])
    radii = np.array([rng.uniform(2.5, 4.5), rng.uniform(2.5, 4.5), rng.uniform(1.5, 2.5)]) * scale
    return (((grid - center[:, None, None, None]) / radii[:, None, None, None]) ** 2).sum(0) <= 1.0


def nested(shape: tuple[int, ...], rng: np.random.Generator) -> np.ndarray:
    out = np.zeros(shape, dtype=np.uint8)
    outer = blob(shape, rng, 1.0)
    out[outer] = 1
    out[outer & blob(shape, rng, 0.8)] = 2
    out[(out == 2) & blob(shape, rng, 0.7)] = 3
    return out


def main() -> None:
    import pandas as pd

    rng = np.random.default_rng(28)
    shape = (16, 16, 8)
    affine = np.diag([*SPACING, 1.0])
    for sub in ("labelsTs", "preds"):
        Path(sub).mkdir(exist_ok=True)
    rows = []
    for i in range(N):
        site = "ABC"[i % 3]
        kind = "healthy_fp" if i % 7 == 3 else "healthy" if i % 11 == 5 else "miss" if i % 13 == 6 else "lesion"
        ref = np.zeros(shape, dtype=np.uint8) if kind.startswith("healthy") else nested(shape, rng)
        if kind == "lesion":
            pred = nested(shape, rng) if rng.random() < 0.3 else ref.copy()
            pred[np.roll(ref, int(rng.integers(-2, 3)), axis=0) == 0] = 0  # a shifted, clipped copy
            pred[tuple(rng.integers(0, 8, 3))] = 1
        elif kind == "healthy_fp":
            pred = nested(shape, rng) * (rng.random(shape) < 0.6)
        else:
            pred = np.zeros(shape, dtype=np.uint8)
        name = f"case_{i:03d}.nii.gz"
        nib.save(nib.Nifti1Image(ref, affine), f"labelsTs/{name}")
        nib.save(nib.Nifti1Image(pred.astype(np.uint8), affine), f"preds/{name}")
        rows.append({"case_id": f"case_{i:03d}", "site": site, "sex": "FM"[int(rng.integers(0, 2))]})
    pd.DataFrame(rows).to_csv("patients.csv", index=False)

    from nnunetv2.evaluation.evaluate_predictions import compute_metrics_on_folder
    from nnunetv2.imageio.simpleitk_reader_writer import SimpleITKIO

    compute_metrics_on_folder("labelsTs", "preds", "summary.json", SimpleITKIO(), ".nii.gz", [1, 2, 3], None, 2)
    regions = [(1, 2, 3), (2, 3), 3]
    compute_metrics_on_folder("labelsTs", "preds", "summary_regions.json", SimpleITKIO(), ".nii.gz", regions, None, 2)


if __name__ == "__main__":
    main()
