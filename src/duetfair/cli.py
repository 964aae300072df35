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
@app.command("synth")
def synth(
    kind: str = typer.Argument(..., help="Synthetic task: fundus2d, lesion2d or tumor3d."),
    n: int = typer.Option(200, "--n", help="Number of cases."),
    out: str = typer.Option(..., "--out", help="Output folder (manifest.csv, images/, labels/)."),
    seed: int = typer.Option(0, "--seed", help="Random seed (same seed -> same files)."),
    size: Optional[int] = typer.Option(None, "--size", help="Image side in pixels/voxels (default 64 2D, 32 3D)."),
    hidden_prob: Optional[float] = typer.Option(None, "--hidden-prob", help="Hidden hard subtype share (default 0.15)."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing manifest in --out."),
) -> None:
    """Write a synthetic fairness benchmark as a CSV manifest with PNG / NIfTI files.

    The result loads like a user's own data (build_datasets("manifest", path=OUT/manifest.csv)).

    Example: duetfair synth fundus2d --n 500 --out data/fundus --seed 0 --size 96
    """
    from duetfair.data.synthetic import TASKS, write_synthetic

    if kind not in TASKS:
        raise DuetfairError(f"unknown synthetic task '{kind}'; expected one of {list(TASKS)}")
    params = {} if hidden_prob is None else {"hidden_prob": hidden_prob}
    path = write_synthetic(kind, n, out, seed=seed, image_size=size, overwrite=overwrite, **params)
    console.print(f"wrote {n} {kind} cases: {path}")


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
