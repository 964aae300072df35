"""What a training run shows while it runs, and its learning-rate schedule.

* :func:`progress_display`: progress bars on a terminal only (a log file, CI or a cluster job gets
  the plain per-epoch lines of :class:`EpochLines`, never bars).
* :class:`EpochLines`: one plain line per epoch (``train.log_every_epoch``, main process);
  :class:`EpochProgress`: finished epochs counted in a :class:`~duetfair.progress.ProgressLine`
  (the demo and the benchmark).
* :func:`tensorboard_writer`, :class:`TensorBoardScalars`: TensorBoard scalars when
  ``train.tensorboard`` and TensorBoard is installed (otherwise the CSV history only).
* :func:`install_stop_handler`: the first Ctrl-C asks the run to stop at the next step with a
  checkpoint, the second aborts at once.
* :func:`lr_factor`: the multiplier of the base learning rate at every iteration.
"""

from __future__ import annotations

import math
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from duetfair import history as H
from duetfair.engine.callbacks import Callback
from duetfair.engine.selection import epoch_line
from duetfair.progress import ProgressLine, time_text

if TYPE_CHECKING:
    from duetfair.engine.trainer import Trainer


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


class EpochLines(Callback):
    """One plain line per finished epoch on ``console`` (a ``rich`` console): loss, validation
    Dice, seconds, the selection, time elapsed and left (:func:`~duetfair.engine.selection.epoch_line`)."""

    def __init__(self, console: Any) -> None:
        self.console = console
        self._started = (time.perf_counter(), 0)

    def on_fit_start(self, trainer: Trainer) -> None:
        """Start the clock (a resumed run counts from where it resumed)."""
        self._started = (time.perf_counter(), trainer.epoch)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Print the epoch's line."""
        epochs = trainer.cfg.train.epochs
        line = epoch_line(
            row,
            epochs=epochs,
            rule=trainer.cfg.select_rule,
            improved=trainer.best_epoch == trainer.epoch,
            val_seconds=trainer.validation_seconds,
        )
        t0, e0 = self._started
        left = time_text(row[H.EPOCH] - e0, epochs - e0, time.perf_counter() - t0)
        self.console.print(line + "  " + left, highlight=False, markup=False, soft_wrap=True)


class TensorBoardScalars(Callback):
    """Every finite number of an epoch's history row as a TensorBoard scalar (``val_dice`` as
    ``val/dice``, step = the epoch); nothing when TensorBoard is not installed."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.writer: Any = None

    def on_fit_start(self, trainer: Trainer) -> None:
        """Open the writer."""
        self.writer = tensorboard_writer(self.log_dir, enabled=True)

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Write the row's scalars."""
        if self.writer is None:
            return
        for k, v in row.items():
            if k != H.EPOCH and isinstance(v, (int, float)) and math.isfinite(v):
                self.writer.add_scalar(H.tensorboard_tag(k), v, trainer.epoch)
        self.writer.flush()

    def on_fit_end(self, trainer: Trainer) -> None:
        """Close the writer."""
        if self.writer is not None:
            self.writer.close()
            self.writer = None


class EpochProgress(Callback):
    """Count every finished epoch in ``progress``, with the method ``name``, the epoch and its
    validation Dice (the demo's and the benchmark's progress lines)."""

    def __init__(self, name: str, progress: ProgressLine) -> None:
        self.name = name
        self.progress = progress

    def on_epoch_end(self, trainer: Trainer, row: dict[str, Any]) -> None:
        """Advance the progress line by one epoch."""
        dice = row.get(H.VAL_DICE)
        val = f", val Dice {dice:.3f}" if isinstance(dice, float) else ""
        self.progress.advance(1, detail=f"{self.name} epoch {trainer.epoch}/{trainer.cfg.train.epochs}{val}")


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
