"""Commands that put runs side by side: ``duetfair compare`` (evaluated runs) and ``duetfair
benchmark`` (methods over seeds)."""

from __future__ import annotations

from typing import Annotated, Optional

import typer

from duetfair.cli.app import app, console, say
from duetfair.errors import DuetfairError
from duetfair.options import TableFormat

# ---- compare -----------------------------------------------------------------------------------
RunDirsArg = Annotated[list[str], typer.Argument(help="Evaluated run folders (one per method).")]
TableFormatOpt = Annotated[
    TableFormat, typer.Option("--format", help="md, csv, json, latex or html (a report; needs --out).")
]
CompareByOpt = Annotated[
    Optional[str], typer.Option("--by", help="Attribute of the groups (default: the runs' training attribute).")
]
NameOpt = Annotated[Optional[list[str]], typer.Option("--name", help="Display name per run, in order (repeatable).")]
CompareOutOpt = Annotated[Optional[str], typer.Option("--out", help="Also write the table to this file.")]


@app.command("compare")
def compare_cmd(
    run_dirs: RunDirsArg,
    fmt: TableFormatOpt = TableFormat.MD,
    by: CompareByOpt = None,
    name: NameOpt = None,
    out: CompareOutOpt = None,
) -> None:
    """Compare evaluated runs in the papers' table format; best value per column marked.

    Columns: ES-Dice, Dice, ES-IoU, IoU with bootstrap intervals, per-group Dice / IoU, worst group,
    worst-group CVaR10 (hidden failures) and the hidden-subtype Dice when the data knows it.
    --format html writes a report: the methods side by side with intervals, paired differences to
    the first run (same test cases) with verdicts, and the table.

    Examples:
      duetfair compare runs/erm runs/dmoe runs/fair_dro
      duetfair compare runs/* --format latex --out table.tex
      duetfair compare runs/erm runs/fair_dro --format html --out comparison.html
    """
    from duetfair.audit.compare import compare_runs, comparison_report, format_table
    from duetfair.io import write_text

    if fmt is TableFormat.HTML:
        if not out:
            raise DuetfairError("--format html writes a report file; give --out FILE.html")
        console.print(
            f"wrote {comparison_report(run_dirs, out, names=name or None, attribute=by)}", highlight=False, markup=False
        )
        return
    table = format_table(compare_runs(run_dirs, attribute=by, names=name or None), str(fmt))
    if out:
        write_text(out, table)
    typer.echo(table, nl=False)


# ---- benchmark ---------------------------------------------------------------------------------
BenchConfigArg = Annotated[
    Optional[str],
    typer.Argument(
        help="Experiment config to benchmark (your own data, e.g. made by 'duetfair init-config'); default: "
        "the synthetic --task.",
    ),
]
ConfigOpt = Annotated[Optional[str], typer.Option("--config", help="Same as the CONFIG argument.")]
BenchOutOpt = Annotated[str, typer.Option("--out", help="Output folder (one sub-folder per seed and method).")]
TaskOpt = Annotated[
    Optional[str],
    typer.Option("--task", help="Synthetic task: fundus2d (default), lesion2d or tumor3d; not with CONFIG."),
]
MethodOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--method",
        help="Method to include (repeatable; default: the demo's six; 'all': the published benchmark's twelve, "
        "oracle included).",
    ),
]
SeedsOpt = Annotated[
    int,
    typer.Option(
        "--seeds",
        help="Number of seeds (0..N-1): training, and the data / split where the config's data.args has a seed.",
    ),
]
SizeOpt = Annotated[
    Optional[str],
    typer.Option(
        "--size",
        help="--task only: quick (default), default, bench (the published benchmark) or paper (GPU); see "
        "duetfair.experiments.methods.SIZES.",
    ),
]
SplitOpt = Annotated[
    str,
    typer.Option(
        "--split",
        help="Split the table reports: test, or val to choose defaults and hyper-parameters without touching test.",
    ),
]
BenchSetOpt = Annotated[
    Optional[list[str]], typer.Option("--set", help="Extra config override for every run (repeatable).")
]


@app.command("benchmark")
def benchmark_cmd(
    config: BenchConfigArg = None,
    config_opt: ConfigOpt = None,
    out: BenchOutOpt = "runs/benchmark",
    task: TaskOpt = None,
    method: MethodOpt = None,
    seeds: SeedsOpt = 3,
    size: SizeOpt = None,
    split: SplitOpt = "test",
    set_: BenchSetOpt = None,
) -> None:
    """Compare fairness methods over several seeds, on a synthetic task or on any config (your data).

    Per method: mean and bootstrap interval across seeds, paired difference to ERM and a verdict
    (better / worse / no clear difference; none from fewer than 5 seeds: too thin); writes methods.md and
    methods.json. On a CONFIG each
    method is the config with the method shortcut applied (its model variant and objective), all
    else identical. Re-running the same command reuses finished runs and resumes interrupted ones.

    Examples:
      duetfair benchmark --seeds 3
      duetfair benchmark --task lesion2d --method erm --method fair_dro --seeds 5 --size default
      duetfair benchmark my_data.yaml --method erm --method fair_dro --seeds 5 --out runs/my_bench
      duetfair benchmark --task tumor3d --method all --size bench --seeds 5 --out runs/bench/tumor3d
    """
    from duetfair.experiments.methods import BENCH_METHODS, DEMO_METHODS, run_benchmark

    source = _benchmark_source(config, config_opt, task, seeds)
    result = run_benchmark(
        out,
        task=task or "fundus2d",
        config=source,
        methods=list(BENCH_METHODS) if method == ["all"] else method or list(DEMO_METHODS),
        seeds=list(range(seeds)),
        size=size if source is not None else (size or "quick"),
        extra=list(set_ or []),
        split=split,
        log=say,
    )
    typer.echo(result["markdown"], nl=False)
    stem = "methods" if split == "test" else f"methods-{split}"
    console.print(f"wrote {out}/{stem}.md and {out}/{stem}.json", highlight=False, markup=False)


def _benchmark_source(
    config: Optional[str], config_opt: Optional[str], task: Optional[str], seeds: int
) -> Optional[str]:
    """The config benchmarked (the argument or ``--config``), None for a synthetic task."""
    if seeds < 1:
        raise DuetfairError(f"--seeds {seeds}: expected at least 1")
    if config is not None and config_opt is not None and config != config_opt:
        raise DuetfairError(f"config given twice ({config} and --config {config_opt}); give one")
    source = config or config_opt
    if source is not None and task is not None:
        raise DuetfairError(f"--task {task}: a synthetic task or a CONFIG ({source}), not both")
    return source
