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
    """Entry point of the ``duetfair`` console script."""
    try:
        app(args=argv, standalone_mode=False)
    except DuetfairError as exc:
        err_console.print(f"[bold red]error:[/] {exc}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except (typer.Abort, KeyboardInterrupt):
        err_console.print("aborted")
        sys.exit(130)
    except SystemExit:
        raise
    except Exception as exc:  # click usage errors
        import click

        if isinstance(exc, click.exceptions.ClickException):
            exc.show()
            sys.exit(2)
        if isinstance(exc, click.exceptions.Exit):
            sys.exit(exc.exit_code)
        raise
