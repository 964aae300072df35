"""Commands that get a user started: ``duetfair demo``, ``init-config`` (a config for one's own
data) and ``synth`` (a synthetic benchmark written as files)."""

from __future__ import annotations

from typing import Annotated, Any, Optional

import typer

from duetfair.cli.app import app, console, say
from duetfair.errors import DuetfairError

# ---- demo --------------------------------------------------------------------------------------
DemoOutOpt = Annotated[
    str, typer.Option("--out", help="Output folder (one run per method, comparison.md/json/csv, report.html).")
]
QuickOpt = Annotated[
    bool,
    typer.Option(
        "--quick",
        help="Small sizes (what make demo runs): about 2 minutes on 2 CPU cores (default size: 8 to 10).",
    ),
]
TableOnlyOpt = Annotated[
    bool,
    typer.Option("--table-only", help="No training: simulate a per-case results table and audit it (seconds)."),
]
DemoNOpt = Annotated[
    Optional[int],
    typer.Option("--n", help="Number of simulated cases of the table demo (implies --table-only; default 2000)."),
]
SeedOpt = Annotated[int, typer.Option("--seed", help="Random seed.")]
DemoBootstrapOpt = Annotated[
    int, typer.Option("--bootstrap", help="--table-only: bootstrap resamples for the intervals.")
]


@app.command("demo")
def demo_cmd(
    out: DemoOutOpt = "runs/demo",
    quick: QuickOpt = False,
    table_only: TableOnlyOpt = False,
    n: DemoNOpt = None,
    seed: SeedOpt = 0,
    bootstrap: DemoBootstrapOpt = 1000,
) -> None:
    """Train six methods on the synthetic benchmark, compare them and write the report.

    ERM, GroupDRO, FEBS, MoE, dMoE and FairDRO (dMoE + subgroup-conditioned DRO) on the synthetic
    fundus task (race groups, hidden hard subtype), CPU-sized; prints the comparison table.

    Examples:
      duetfair demo --quick
      duetfair demo --out runs/demo
      duetfair demo --table-only --out demo_table
    """
    if table_only or n is not None:
        _table_demo(out, 2000 if n is None else n, seed, bootstrap)
        return
    from duetfair.experiments.methods import run_demo

    typer.echo(run_demo(out, quick=quick, seed=seed, log=say), nl=False)
    say(
        f"wrote {out}/comparison.md, comparison.json, comparison.csv and report.html "
        f"(per-method runs in {out}/<method>/)"
    )
    if quick:
        say(
            "This was the quick size (8 epochs). The full comparison: make demo-full, or duetfair demo "
            "--out runs/demo-full (20 epochs, HD95/NSD; about 8 to 10 minutes on 2 cores)."
        )


def _table_demo(out: str, n: int, seed: int, bootstrap: int) -> None:
    """``duetfair demo --table-only``: simulate a per-case table of ``n`` cases, audit it, print the summary."""
    from duetfair.audit.report import render_summary
    from duetfair.audit.simulate import run_table_demo

    if n < 10:
        raise DuetfairError(f"--n {n}: expected at least 10 cases")
    result = run_table_demo(out, n=n, seed=seed, n_boot=bootstrap)
    typer.echo(render_summary(result["audit"]), nl=False)
    for name, path in result["paths"].items():
        console.print(f"wrote {name}: {path}")


# ---- synth -------------------------------------------------------------------------------------
KindArg = Annotated[str, typer.Argument(help="Synthetic task: fundus2d, lesion2d or tumor3d.")]
SynthNOpt = Annotated[int, typer.Option("--n", help="Number of cases.")]
SynthOutOpt = Annotated[str, typer.Option("--out", help="Output folder (manifest.csv, images/, labels/).")]
SynthSeedOpt = Annotated[int, typer.Option("--seed", help="Random seed (same seed -> same files).")]
SizeOpt = Annotated[Optional[int], typer.Option("--size", help="Image side in pixels/voxels (default 64 2D, 32 3D).")]
HiddenProbOpt = Annotated[
    Optional[float], typer.Option("--hidden-prob", help="Hidden hard subtype share (default 0.15).")
]
OverwriteOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing manifest in --out.")]


@app.command("synth")
def synth(
    kind: KindArg,
    n: SynthNOpt = 200,
    *,
    out: SynthOutOpt,
    seed: SynthSeedOpt = 0,
    size: SizeOpt = None,
    hidden_prob: HiddenProbOpt = None,
    overwrite: OverwriteOpt = False,
) -> None:
    """Write a synthetic fairness benchmark as a CSV manifest with PNG / NIfTI files.

    The result loads like a user's own data (build_datasets("manifest", path=OUT/manifest.csv)).

    Example: duetfair synth fundus2d --n 500 --out data/fundus --seed 0 --size 96
    """
    from duetfair.data.synthetic import TASKS, write_synthetic

    if kind not in TASKS:
        raise DuetfairError(f"unknown synthetic task '{kind}'; expected one of {list(TASKS)}")
    params: dict[str, Any] = {} if hidden_prob is None else {"hidden_prob": hidden_prob}
    path = write_synthetic(kind, n, out, seed=seed, image_size=size, overwrite=overwrite, **params)
    console.print(f"wrote {n} {kind} cases: {path}")


# ---- init-config -------------------------------------------------------------------------------
ManifestArg = Annotated[
    str,
    typer.Argument(
        help="Your manifest (CSV, TSV, XLSX, Parquet): one row per case, image / label / case-id columns, "
        "attribute columns.",
    ),
]
ConfigOutOpt = Annotated[str, typer.Option("--out", help="Config file to write (.yaml).")]
StarterHiddenOpt = Annotated[
    Optional[str],
    typer.Option(
        "--hidden",
        help="Analysis-only column of known hard cases: COLUMN (0/1, yes/no) or COLUMN=VALUE "
        "(default: hidden_subtype when present).",
    ),
]
ReplaceOpt = Annotated[bool, typer.Option("--overwrite", help="Replace an existing --out file.")]


@app.command("init-config")
def init_config_cmd(
    manifest: ManifestArg, *, out: ConfigOutOpt, hidden: StarterHiddenOpt = None, overwrite: ReplaceOpt = False
) -> None:
    """Write a commented experiment config for your own manifest, ready for train and benchmark.

    Detects the image, label and case-id columns (also under names such as mask or patient_id),
    lists the attribute columns, suggests bins for a continuous one (many distinct numbers, e.g.
    age), picks 2D or 3D from the image files, and trains on the groups of the first categorical
    attribute; every key is explained in the file's comment header. Start from it and edit.

    Examples:
      duetfair init-config data/my_data/manifest.csv --out my.yaml
      duetfair init-config lesions.csv --out lesions.yaml --hidden morphology=irregular
    """
    from duetfair.engine.starter import write_starter_config

    path, summary = write_starter_config(manifest, out, hidden=hidden, overwrite=overwrite)
    bins = ", ".join(f"{a} at {edges}" for a, edges in summary.continuous.items()) or "none"
    say(
        f"wrote {path}: {summary.n_rows} cases, {summary.spatial_dims}D, attributes "
        f"{', '.join(summary.attributes)} (bins: {bins}), group attribute {summary.attributes[0]}, "
        f"hidden column {summary.hidden or 'none'}"
    )
    for note in summary.notes:
        say(f"  left out {note}")
    say(f"next: duetfair train {path} --out runs/{path.stem}")
