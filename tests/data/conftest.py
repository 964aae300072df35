"""Fixtures of the data tests: tiny files in each exact format, built on the fly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image


@pytest.fixture
def png_manifest(tmp_path: Path) -> Path:
    """Six 2D cases: grayscale PNG images, 0/1 PNG masks, a CSV with race / age / patient."""
    rows = ["image,label,case_id,race,age,patient"]
    rng = np.random.default_rng(0)
    (tmp_path / "img").mkdir()
    (tmp_path / "lab").mkdir()
    for i in range(6):
        img = rng.integers(0, 255, size=(12, 16), dtype=np.uint8)
        lab = np.zeros((12, 16), dtype=np.uint8)
        lab[3:7, 4:9] = 1
        Image.fromarray(img).save(tmp_path / "img" / f"c{i}.png")
        Image.fromarray(lab).save(tmp_path / "lab" / f"c{i}.png")
        rows.append(f"img/c{i}.png,lab/c{i}.png,c{i},{['A', 'B'][i % 2]},{30 + 10 * i},p{i // 2}")
    (tmp_path / "manifest.csv").write_text("\n".join(rows) + "\n")
    return tmp_path / "manifest.csv"
