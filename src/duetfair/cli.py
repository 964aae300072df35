"""Command-line interface: ``duetfair train|evaluate|predict|audit|compare|benchmark|synth|demo``.

Every command turns :class:`~duetfair.errors.DuetfairError` (bad user input) into a one-line
message on stderr and exit code 2, never a traceback.
"""

from __future__ import annotations

import sys
from typing import Optional

import typer
from rich.console import Console

from duetfair.errors import DuetfairError

app = typer.Typer(
    name="duetfair",
    help="Fair medical image segmentation: audit subgroup performance, train fair models.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
console = Console()
err_console = Console(stderr=True)


@app.callback()
def _root() -> None:
    """Fair medical image segmentation: audit subgroup performance, train fair models."""


# ---- commands -------------------------------------------------------------------------------
# Each command lives in its own section below; keep sections independent.

# @@ audit @@

# @@ synth @@

# @@ train @@

# @@ evaluate @@

# @@ predict @@

# @@ compare @@

# @@ benchmark @@

# @@ demo @@


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``duetfair`` console script (usage errors exit 2, as do input errors)."""
    try:
        app(args=argv)
    except DuetfairError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True, markup=True)
        sys.exit(2)


@app.command("version")
def version() -> None:
    """Print the duetfair version."""
    from duetfair import __version__

    console.print(f"duetfair {__version__}")
