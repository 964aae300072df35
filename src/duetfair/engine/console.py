"""What a training run shows while it runs, and its learning-rate schedule.

* :func:`progress_display`: progress bars on a terminal only (a log file, CI or a cluster job gets
  the plain per-epoch lines the trainer prints, never bars).
* :func:`tensorboard_writer`: TensorBoard scalars when ``train.tensorboard`` and TensorBoard is
  installed (otherwise the CSV history only).
* :func:`install_stop_handler`: the first Ctrl-C asks the run to stop at the next step with a
  checkpoint, the second aborts at once.
* :func:`lr_factor`: the multiplier of the base learning rate at every iteration.
"""

from __future__ import annotations

import math
import signal
import threading
from pathlib import Path
from typing import Any


def progress_display(*, bars: bool) -> Any:
    """A ``rich`` progress display (its console prints the epoch lines); bars only when ``bars``
    and the output is a terminal."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    console = Console()
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
        disable=not (bars and console.is_terminal),
        transient=True,
    )


def tensorboard_writer(log_dir: Path, *, enabled: bool) -> Any:
    """A TensorBoard ``SummaryWriter`` on ``log_dir``, or ``None`` (off, or not installed)."""
    if not enabled:
        return None
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:  # tensorboard not installed: CSV history only
        return None
    return SummaryWriter(log_dir=str(log_dir))


def lr_factor(step: int, total: int, warmup: int, name: str, power: float, min_ratio: float) -> float:
    """Multiplier of the base lr at iteration ``step`` (linear warm-up, then poly/cosine/constant)."""
    if warmup > 0 and step < warmup:
        return (step + 1) / warmup
    if name == "constant":
        return 1.0
    progress = min(max(step - warmup, 0) / max(total - warmup, 1), 1.0)
    if name == "poly":
        value = (1.0 - progress) ** power
    else:
        value = 0.5 * (1.0 + math.cos(math.pi * progress))
    return min_ratio + (1.0 - min_ratio) * value


def install_stop_handler(run: Any) -> Any:
    """SIGINT handler for ``run`` (anything with a ``_stop`` flag and ``request_stop()``): the
    first Ctrl-C requests a stop, the second raises ``KeyboardInterrupt``. Returns the previous
    handler (``None`` outside the main thread, where signals cannot be handled)."""
    if threading.current_thread() is not threading.main_thread():
        return None

    def handler(signum: int, frame: Any) -> None:
        if run._stop:
            raise KeyboardInterrupt
        run.request_stop()

    return signal.signal(signal.SIGINT, handler)
