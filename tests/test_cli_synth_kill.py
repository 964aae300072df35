"""A ``duetfair synth`` killed while it writes leaves its staging folder; the next run into the same
folder removes it (and a killed ``predict`` or ``evaluate`` the same way: ``io.staged_outputs``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from duetfair.cli import main


def test_killed_synth_leaves_nothing_after_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "data"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    proc = subprocess.Popen(
        [sys.executable, "-m", "duetfair", "synth", "fundus2d", "--n", "200000", "--size", "16", "--out", str(out)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=env,
    )
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and not list(out.glob(".partial-*/images/*.png")):
            assert proc.poll() is None, "synth ended before it could be killed"
            time.sleep(0.05)
        proc.kill()
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert list(out.glob(".partial-*")) and not (out / "manifest.csv").exists()  # left by the kill
    with pytest.raises(SystemExit) as info:
        main(["synth", "fundus2d", "--n", "12", "--size", "16", "--out", str(out)])
        raise SystemExit(0)
    assert info.value.code in (0, None)
    assert not list(out.glob(".partial-*")) and not list(out.glob(".commit-*"))
    assert len(list((out / "images").glob("*.png"))) == 12 and (out / "manifest.csv").is_file()
