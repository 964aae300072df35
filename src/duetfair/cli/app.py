"""The typer application every command registers with, and the consoles they print to."""

from __future__ import annotations

import typer
from rich.console import Console

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


def say(text: str) -> None:
    """Print a plain line on stdout (no markup, no highlighting, long lines kept whole)."""
    console.print(text, highlight=False, markup=False, soft_wrap=True)


def note(text: str) -> None:
    """Print a plain line on stderr (warnings and notes)."""
    err_console.print(text, highlight=False, markup=False, soft_wrap=True)
