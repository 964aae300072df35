"""``duetfair score`` killed while it scores: no orphan worker, and its outputs are all old or all new.

The outputs (cases.csv, audit.json, audit.md, report.html) are written as one staged set; a kill -9
or Ctrl-C of the command kills its worker processes with it (duetfair.procs) and leaves the previous
outputs as they were.
"""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest

from duetfair.cli import main

OUTPUTS = ("cases.csv", "audit.json", "audit.md", "report.html")
N_CASES = 32


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def children(pid: int) -> list[int]:
    """Live child processes of ``pid`` (Linux /proc)."""
    out = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            pass
    return [c for c in out if alive(c)]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scorekill")
    rng = np.random.default_rng(0)
    affine = np.diag([0.9, 0.9, 2.0, 1.0])
    for d in ("preds", "refs"):
        (root / d).mkdir()
    for i in range(N_CASES):
        ref = np.zeros((48, 48, 24), np.uint8)
        c = rng.integers(12, 36, 3)
        ref[c[0] - 8 : c[0] + 8, c[1] - 7 : c[1] + 7, max(c[2] - 6, 0) : c[2] + 4] = 1
        ref[c[0] - 3 : c[0] + 3, c[1] - 3 : c[1] + 3, max(c[2] - 2, 0) : c[2] + 2] = 2
        pred = np.roll(ref, tuple(rng.integers(-2, 3, 3)), axis=(0, 1, 2))
        nib.save(nib.Nifti1Image(ref, affine), str(root / "refs" / f"case{i:03d}.nii.gz"))
        nib.save(nib.Nifti1Image(pred, affine), str(root / "preds" / f"case{i:03d}.nii.gz"))
    ids = [f"case{i:03d}" for i in range(N_CASES)]
    (root / "old.csv").write_text("case_id,site\n" + "".join(f"{c},{'AB'[k % 2]}\n" for k, c in enumerate(ids)))
    (root / "new.csv").write_text("case_id,site\n" + "".join(f"{c},{'XYZ'[k % 3]}\n" for k, c in enumerate(ids)))
    return root


def score(data: Path, meta: str, out: Path) -> subprocess.Popen:
    args = [sys.executable, "-m", "duetfair", "score", str(data / "preds"), str(data / "refs")]
    args += ["--meta", str(data / meta), "--out", str(out), "--workers", "2", "--bootstrap", "20"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    return subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, env=env, start_new_session=True
    )


def score_here(data: Path, meta: str, out: Path) -> None:
    """The same command in this process (no interpreter start-up)."""
    args = ["score", str(data / "preds"), str(data / "refs"), "--meta", str(data / meta), "--out", str(out)]
    with pytest.raises(SystemExit) as info:
        main([*args, "--workers", "2", "--bootstrap", "20"])
        raise SystemExit(0)
    assert info.value.code in (0, None)


def digest(out: Path) -> dict[str, str]:
    return {n: hashlib.sha256((out / n).read_bytes()).hexdigest() for n in OUTPUTS if (out / n).is_file()}


def while_scoring(proc: subprocess.Popen, timeout: float = 300) -> list[int]:
    """Wait until the command's 2 workers run; their PIDs."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        workers = children(proc.pid)
        if len(workers) >= 2:
            time.sleep(0.5)  # a few cases into the work
            return children(proc.pid)
        time.sleep(0.02)
    pytest.fail(f"score ended before its workers could be seen: {proc.stderr.read() if proc.stderr else ''}")


def test_kill_9_and_ctrl_c_leave_no_orphan_and_the_old_outputs(data: Path, tmp_path: Path) -> None:
    out = tmp_path / "audit"
    score_here(data, "old.csv", out)
    old = digest(out)
    assert set(old) == set(OUTPUTS)

    for how in (signal.SIGKILL, signal.SIGINT):
        proc = score(data, "new.csv", out)
        try:
            workers = while_scoring(proc)
            assert workers and all(alive(p) for p in workers)
            start = time.monotonic()
            if how == signal.SIGINT:
                os.killpg(proc.pid, signal.SIGINT)  # Ctrl-C in a terminal: the whole process group
            else:
                proc.send_signal(signal.SIGKILL)
            proc.wait(timeout=30)
            took = time.monotonic() - start
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        deadline = time.monotonic() + 10
        while any(alive(p) for p in workers) and time.monotonic() < deadline:
            time.sleep(0.05)
        assert not [p for p in workers if alive(p)], f"orphan workers after {how.name}"
        assert digest(out) == old, f"outputs changed after {how.name}"  # all old
        if how == signal.SIGINT:
            err = proc.stderr.read().strip() if proc.stderr else ""
            assert proc.returncode == 130 and "Traceback" not in err, err
            assert took < 10, f"Ctrl-C took {took:.1f} s"

    score_here(data, "new.csv", out)
    new = digest(out)
    assert set(new) == set(OUTPUTS) and all(new[n] != old[n] for n in OUTPUTS)  # all new
    assert not list(out.glob(".partial-*")) and not list(out.glob(".commit-*"))
    assert "X" in (out / "cases.csv").read_text() and "Z" in (out / "audit.md").read_text()
