"""User-facing errors.

Every problem caused by the user's input (a missing file, a bad column, an invalid config value)
raises :class:`DuetfairError` with a one-line message that names the file / column / value and
what was expected. The CLI prints that line and exits with code 2, without a traceback.
"""

from __future__ import annotations


class DuetfairError(ValueError):
    """Bad user input; the message is one line naming what is wrong and what was expected."""


def require(condition: bool, message: str) -> None:
    """Raise :class:`DuetfairError` with ``message`` unless ``condition`` holds."""
    if not condition:
        raise DuetfairError(message)
