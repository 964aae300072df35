"""Plain progress lines for long commands, readable in a log file, CI or a cluster job.

A terminal gets rich's bars; output that is not a terminal gets no bars, so long commands
(``demo``, ``benchmark``, ``train``, ``score``, ``evaluate``) print one plain line now and then
instead: what is done out of what, the time elapsed and an estimate of the time left (the mean
time per unit so far times the units left; ``about`` because units differ)::

    scoring: 1200/5000 cases, 1 min 05 s elapsed, about 3 min 26 s left
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field


def fmt_duration(seconds: float) -> str:
    """``7 s``, ``3 min 05 s``, ``1 h 02 min`` (``?`` when not finite)."""
    if not math.isfinite(seconds):
        return "?"
    s = max(0, int(round(seconds)))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min {s % 60:02d} s"
    return f"{s // 3600} h {(s % 3600) // 60:02d} min"


def time_text(done: float, total: float, elapsed: float) -> str:
    """``42 s elapsed, about 1 min 10 s left`` (``done`` of ``total`` units in ``elapsed`` seconds)."""
    text = f"{fmt_duration(elapsed)} elapsed"
    if done <= 0 or total <= 0:
        return text
    if done >= total:
        return text + ", done"
    return text + f", about {fmt_duration(elapsed / done * (total - done))} left"


@dataclass
class ProgressLine:
    """Counts finished units and prints a line at most every ``every`` seconds (and the last one
    when any was printed, or when the work took longer than ``every``).

    Args:
        what: what is counted, e.g. ``"cases"`` or ``"epochs"``.
        total: units expected (may grow with :meth:`add`).
        log: where a line goes (``print``, a console's print).
        label: start of every line, e.g. ``"scoring"``.
        every: seconds between lines; 0 prints a line per :meth:`advance`.
    """

    what: str
    total: int
    log: Callable[[str], None]
    label: str = ""
    every: float = 10.0
    done: int = 0
    start: float = field(default_factory=time.perf_counter)
    _last: float = field(default=-math.inf, repr=False)
    _printed: bool = field(default=False, repr=False)

    def add(self, units: int) -> None:
        """Expect ``units`` more (a later part of the work becomes known)."""
        self.total += int(units)

    def skip(self, units: int) -> None:
        """``units`` of the total need no work (reused): they leave the total, not the estimate."""
        self.total = max(self.done, self.total - int(units))

    def elapsed(self) -> float:
        """Seconds since the start."""
        return time.perf_counter() - self.start

    def text(self, detail: str = "") -> str:
        """The line as it stands now."""
        head = f"{self.label}: " if self.label else ""
        extra = f" ({detail})" if detail else ""
        return f"{head}{self.done}/{self.total} {self.what}{extra}, {time_text(self.done, self.total, self.elapsed())}"

    def advance(self, units: int = 1, detail: str = "") -> None:
        """Count ``units`` finished; print a line when ``every`` seconds have passed since the last
        one, and at the end when a line was printed before or the work took longer than ``every``."""
        self.done += int(units)
        now = time.perf_counter()
        last = self.done >= self.total
        due = now - self._last >= self.every and (self.every <= 0 or now - self.start >= self.every)
        if due or (last and (self._printed or now - self.start >= self.every)):
            self.log(self.text(detail))
            self._last, self._printed = now, True
