"""One rule for a report that fails to render: the numbers already written stay, the report is
left out with a warning, but an input error is never turned into a warning."""

from __future__ import annotations

import warnings
from typing import Callable

from duetfair.errors import DuetfairError

__all__ = ["render_or_warn"]


def render_or_warn(render: Callable[[], object], *, complete: str) -> bool:
    """Call ``render``; True when it wrote the report. A plotting problem (a ``ValueError`` from
    matplotlib or the data's shape) warns ``report.html not written (...); <complete> are complete``
    and returns False; a :class:`~duetfair.errors.DuetfairError` (bad input, named in one line) is
    raised as it is."""
    try:
        render()
    except DuetfairError:
        raise
    except ValueError as exc:
        warnings.warn(f"report.html not written ({exc}); {complete} are complete", RuntimeWarning, stacklevel=3)
        return False
    return True
