"""Command-line interface: ``duetfair train|evaluate|predict|audit|score|compare|benchmark|init-config|synth|demo``.

Commands are grouped by job: :mod:`~duetfair.cli.runs` (train, evaluate, predict),
:mod:`~duetfair.cli.audit` (audit, score; scoring in :mod:`~duetfair.cli.score` and
:mod:`~duetfair.cli.scoring`), :mod:`~duetfair.cli.compare` (compare, benchmark) and
:mod:`~duetfair.cli.starter` (demo, init-config, synth); options shared by several commands are
declared once in :mod:`~duetfair.cli.options`. Every command turns
:class:`~duetfair.errors.DuetfairError` (bad input) into a one-line message on stderr and exit
code 2, never a traceback (:mod:`~duetfair.cli.main`).
"""

from __future__ import annotations

from duetfair.cli import audit, compare, runs, starter  # noqa: F401 - each module registers its commands
from duetfair.cli.app import app, console, err_console
from duetfair.cli.main import main, os_error_message


@app.command("version")
def version() -> None:
    """Print the duetfair version."""
    from duetfair import __version__

    console.print(f"duetfair {__version__}")


__all__ = ["app", "console", "err_console", "main", "os_error_message"]
