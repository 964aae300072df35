"""Worker processes die with their command (kill -9, Ctrl-C) and their number is bounded."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from duetfair import procs
from duetfair.errors import DuetfairError

CHILD = """
import sys, time
from duetfair.procs import worker_pool

def nap(x):
    time.sleep(120)
    return x

with worker_pool(2) as pool:
    futures = [pool.submit(nap, i) for i in range(4)]
    while len(pool._processes) < 2:
        time.sleep(0.05)
    print(" ".join(str(p) for p in pool._processes), flush=True)
    for f in futures:
        f.result()
"""


def alive(pid: int) -> bool:
    """True while ``pid`` runs (a zombie waiting to be reaped holds no memory: not alive)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


@contextlib.contextmanager
def child_with_workers() -> Iterator[tuple[subprocess.Popen, list[int]]]:
    """A command running a pool of 2 workers busy for 2 minutes; its process group is killed at the end."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    child = subprocess.Popen(
        [sys.executable, "-c", CHILD], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=env, start_new_session=True,
    )  # fmt: skip
    workers: list[int] = []
    try:
        assert child.stdout is not None
        line = child.stdout.readline()
        workers = [int(p) for p in line.split()]
        assert len(workers) == 2 and all(alive(p) for p in workers), (line, child.stderr.read() if not line else "")
        yield child, workers
    finally:
        for pid in [child.pid, *workers]:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        child.wait(timeout=10)


def wait_gone(pids: list[int], timeout: float = 10.0) -> float:
    start = time.monotonic()
    while any(alive(p) for p in pids) and time.monotonic() - start < timeout:
        time.sleep(0.05)
    assert not any(alive(p) for p in pids), f"orphan workers {[p for p in pids if alive(p)]}"
    return time.monotonic() - start


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="PR_SET_PDEATHSIG is Linux's")
def test_workers_die_when_the_command_is_killed_9() -> None:
    with child_with_workers() as (child, workers):
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=10)
        wait_gone(workers)


def test_ctrl_c_stops_the_command_and_its_workers_at_once() -> None:
    with child_with_workers() as (child, workers):
        start = time.monotonic()
        os.killpg(child.pid, signal.SIGINT)  # what a terminal sends: the whole process group
        child.wait(timeout=20)  # the tasks sleep 120 s: the command does not wait for them
        took = time.monotonic() - start
        wait_gone(workers)
        assert child.returncode != 0 and "KeyboardInterrupt" in (child.stderr.read() if child.stderr else "")
        assert took < 10, f"Ctrl-C took {took:.1f} s"


def test_sigterm_stops_the_command_and_its_workers() -> None:
    with child_with_workers() as (child, workers):
        child.send_signal(signal.SIGTERM)
        child.wait(timeout=20)
        wait_gone(workers)


def test_cap_workers_by_cores_and_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(procs, "available_cores", lambda: 4)
    monkeypatch.setattr(procs, "available_memory", lambda: 64 << 30)
    assert procs.cap_workers(None) == (4, None)
    assert procs.cap_workers(2) == (2, None)
    n, note = procs.cap_workers(200)
    assert n == 4 and note is not None and "4 CPU cores" in note and "--workers 200" in note
    assert procs.cap_workers(3, n_tasks=1) == (1, None)  # no more workers than tasks, and no note
    monkeypatch.setattr(procs, "available_memory", lambda: 3 * procs.WORKER_BYTES + 1)
    n, note = procs.cap_workers(200)
    assert n == 3 and note is not None and "memory" in note
    monkeypatch.setattr(procs, "available_memory", lambda: 1)
    assert procs.cap_workers(8)[0] == 1  # always at least one
    monkeypatch.setattr(procs, "available_memory", lambda: None)  # unknown: cores only
    assert procs.cap_workers(8)[0] == 4
    with pytest.raises(DuetfairError, match="--workers 0"):
        procs.cap_workers(0)
