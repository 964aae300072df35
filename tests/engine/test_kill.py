"""kill -9 during training: resuming gives exactly the run an uninterrupted process gives, the
killed process's temporary files are cleaned up and its run.json reads as interrupted."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from duetfair.engine.checkpoint import load_checkpoint
from duetfair.rundir import RunDir
from helpers import TINY_MODEL, sets

TINY = [
    *TINY_MODEL,
    "data.args.n_train=48",
    "data.args.n_val=8",
    "data.args.n_test=8",
    "data.args.image_size=32",
    "train.epochs=6",
    "train.threads=1",
]


def _train(out: Path, *extra: str) -> subprocess.Popen:
    args = [sys.executable, "-m", "duetfair", "train", "fundus2d_group_dro", "--out", str(out), *extra]
    return subprocess.Popen(
        args + sets(*TINY),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )


def test_kill_9_then_resume_equals_an_uninterrupted_run(tmp_path: Path) -> None:
    whole = _train(tmp_path / "whole")
    killed = _train(tmp_path / "killed")
    last = tmp_path / "killed" / "checkpoints" / "last.pt"
    deadline = time.time() + 300
    while not last.exists() and time.time() < deadline and killed.poll() is None:
        time.sleep(0.05)
    time.sleep(0.3)  # somewhere in the next epoch or checkpoint write
    assert killed.poll() is None, "training ended before it could be killed"
    killed.send_signal(signal.SIGKILL)
    killed.wait()
    run = RunDir(tmp_path / "killed")
    assert run.read_record().status == "interrupted"  # run.json said "running"; its process is gone
    resumed = subprocess.run(
        [sys.executable, "-m", "duetfair", "train", str(tmp_path / "killed"), "--resume"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert resumed.returncode == 0, resumed.stderr
    assert whole.wait(timeout=600) == 0
    assert not list(run.checkpoints.glob(".*.tmp")) and not list(run.root.glob(".partial-*"))
    a = load_checkpoint(tmp_path / "whole" / "checkpoints" / "last.pt")
    b = load_checkpoint(last)
    for k, v in a["model"].items():
        assert torch.equal(v, b["model"][k]), k
    assert torch.equal(a["objective"]["q"], b["objective"]["q"])
    h_a = (tmp_path / "whole" / "history.csv").read_text().splitlines()
    h_b = (tmp_path / "killed" / "history.csv").read_text().splitlines()
    drop = h_a[0].split(",").index("epoch_seconds")
    strip = lambda rows: [",".join(c for i, c in enumerate(r.split(",")) if i != drop) for r in rows]  # noqa: E731
    assert strip(h_a) == strip(h_b)
    assert json.loads(run.record.read_text())["status"] == "completed"
