"""Worker processes that live and die with the command that started them, and how many to start.

A command that fans work out to processes (``duetfair score``) must not leave them behind: after
``kill -9`` of the command its workers would keep their memory for good, and after Ctrl-C a pool
that waits for its running tasks takes as long as they do. :func:`worker_pool` gives a process pool
whose workers

* die with the command: each asks the kernel for ``SIGKILL`` when its parent dies
  (``prctl(PR_SET_PDEATHSIG)`` on Linux) and exits at once if the parent is already gone;
* leave Ctrl-C to the command: they ignore ``SIGINT`` (the terminal sends it to the whole process
  group); the command, on any exception (``KeyboardInterrupt`` included), kills them and returns
  without waiting for their tasks.

:func:`cap_workers` bounds a requested number of workers by the CPU cores the process may use and
by the memory available (:data:`WORKER_BYTES` per worker), and says so when it lowers the request.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from typing import Any

from duetfair.errors import require

DEFAULT_MAX_WORKERS = 8
"""Default number of workers: one per core, at most this many."""

WORKER_BYTES = 512 << 20
"""Memory budgeted per worker process (bytes): the interpreter with torch and MONAI loaded and the
arrays of the case it scores (measured: about 380 MB for 3D cases of 128^3 voxels)."""

_PR_SET_PDEATHSIG = 1


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask), at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def available_memory() -> int | None:
    """Bytes of memory available to new processes (Linux ``MemAvailable``), None where unknown."""
    try:
        with open("/proc/meminfo", encoding="ascii") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None


def cap_workers(
    requested: int | None, *, n_tasks: int | None = None, per_worker: int = WORKER_BYTES
) -> tuple[int, str | None]:
    """Number of worker processes to start, and a note when it is lower than ``requested``.

    Args:
        requested: ``--workers`` (None: one per core, at most :data:`DEFAULT_MAX_WORKERS`); must be >= 1.
        n_tasks: no more workers than tasks.
        per_worker: memory budget of one worker (bytes).

    Returns:
        ``(workers, note)``: at most the cores this process may use and ``available memory //
        per_worker`` (at least 1); ``note`` names the limit that lowered an explicit request.
    """
    require(requested is None or requested >= 1, f"--workers {requested}: expected a number >= 1")
    cores = available_cores()
    memory = available_memory()
    limits = {"CPU cores": cores}
    if memory is not None:
        limits["memory"] = max(1, memory // per_worker)
    want = min(cores, DEFAULT_MAX_WORKERS) if requested is None else int(requested)
    cap = min(limits.values())
    workers = max(1, min(want, cap, n_tasks if n_tasks else want))
    note = None
    if requested is not None and workers < requested and want > cap:
        why = " and ".join(
            f"{cores} CPU cores"
            if k == "CPU cores"
            else f"{(memory or 0) / 2**30:.1f} GiB of available memory at {per_worker >> 20} MiB per worker"
            for k, v in limits.items()
            if v == cap
        )
        note = f"--workers {requested}: using {workers} worker processes ({why})"
    return workers, note


def _die_with_parent(parent: int) -> None:
    """In a worker: SIGKILL when the parent dies (Linux); exit now if it is already gone."""
    if sys.platform.startswith("linux"):
        import ctypes

        try:
            libc = ctypes.CDLL(None, use_errno=True)
            libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):  # no prctl: the parent still kills the pool on exit
            pass
    if os.getppid() != parent:
        os._exit(1)


def _start_worker(parent: int, initializer: Callable[[], None] | None) -> None:
    _die_with_parent(parent)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    if initializer is not None:
        initializer()


def kill_workers(pool: ProcessPoolExecutor, timeout: float = 2.0) -> None:
    """SIGKILL every worker process of ``pool`` and reap them (waiting at most ``timeout`` s each)."""
    procs: dict[Any, Any] = getattr(pool, "_processes", None) or {}
    for proc in list(procs.values()):
        try:
            proc.kill()
        except (OSError, AttributeError, ValueError):
            pass
    for proc in list(procs.values()):
        try:
            proc.join(timeout)
        except (OSError, AttributeError, ValueError, AssertionError):
            pass


@contextmanager
def worker_pool(workers: int, *, initializer: Callable[[], None] | None = None) -> Iterator[ProcessPoolExecutor]:
    """A process pool whose workers die with this process (module doc).

    On leaving the block normally the pool is shut down and waited for; on any exception
    (``KeyboardInterrupt`` from Ctrl-C included) its workers are killed and the exception goes on
    at once, without waiting for running tasks.
    """
    import multiprocessing as mp

    ctx = mp.get_context("fork" if sys.platform.startswith("linux") else "spawn")
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=ctx, initializer=_start_worker, initargs=(os.getpid(), initializer)
    )
    try:
        yield pool
    except BaseException:
        kill_workers(pool)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown(wait=True)
