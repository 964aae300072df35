"""Commands of a training run: ``duetfair train``, ``evaluate`` and ``predict``."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Optional

import typer

from duetfair.cli.app import app, console, err_console, say
from duetfair.errors import DuetfairError
from duetfair.options import Checkpoint, NormalizeMode

if TYPE_CHECKING:
    import pandas as pd

RunDirArg = Annotated[str, typer.Argument(help="Run folder written by 'duetfair train'.")]
ThreadsOpt = Annotated[
    Optional[int],
    typer.Option(
        "--threads",
        min=1,
        help="CPU threads (default: one per core, at most 8; lower it when jobs share the machine).",
    ),
]


# ---- train -------------------------------------------------------------------------------------
ConfigArg = Annotated[
    str,
    typer.Argument(
        help="Experiment YAML, a packaged config name (e.g. fundus2d_dmoe), or a run folder (with --resume)."
    ),
]
SetOpt = Annotated[
    Optional[list[str]],
    typer.Option("--set", help="Override a config value, e.g. --set train.epochs=5 (repeatable)."),
]
TrainOutOpt = Annotated[Optional[str], typer.Option("--out", help="Run folder (default: output_dir of the config).")]
ResumeOpt = Annotated[
    bool, typer.Option("--resume", help="Continue the run in the run folder from checkpoints/last.pt.")
]


@app.command("train")
def train_cmd(config: ConfigArg, set_: SetOpt = None, out: TrainOutOpt = None, resume: ResumeOpt = False) -> None:
    """Train a segmentation model with a fairness objective; validate, select and checkpoint every epoch.

    Writes config.yaml, history.csv, checkpoints/{last,best}.pt, run.json and TensorBoard logs.
    Ctrl-C stops at the next step with a resumable checkpoint. Multi-GPU / multi-process:
    torchrun --nproc_per_node 2 -m duetfair train CONFIG

    Examples:
      duetfair train fundus2d_fair_dro --set train.epochs=5 --out runs/fair_dro
      duetfair train runs/fair_dro --resume
    """
    from duetfair.engine.config import load_config
    from duetfair.engine.distributed import cleanup, env_info
    from duetfair.engine.trainer import train

    source, out = _config_source(config, out)
    cfg = load_config(source, list(set_ or []))
    run_dir = out or cfg.output_dir
    try:
        result = train(cfg, run_dir, resume=resume)
    finally:
        cleanup()
    if env_info().rank != 0:  # torchrun: only rank 0 reports
        return
    if result.status == "interrupted":
        err_console.print(
            f"interrupted at epoch {result.epochs_done + 1}; checkpoint kept. "
            f"Resume with: duetfair train {run_dir} --resume",
            highlight=False,
        )
        raise typer.Exit(130)
    console.print(
        f"done: {result.epochs_done} epochs, best epoch {result.best_epoch} "
        f"({cfg.select_rule} Dice {result.best_score:.4f}); run folder {run_dir}",
        highlight=False,
    )
    console.print(f"next: duetfair evaluate {run_dir}", highlight=False)


def _config_source(config: str, out: Optional[str]) -> tuple[Any, Optional[str]]:
    """The config to load (a file, a packaged name, or a run folder's config.yaml) and the run
    folder (a run folder is its own, unless --out names another)."""
    from pathlib import Path

    source = Path(config)
    if source.is_dir():
        if not (source / "config.yaml").is_file():
            raise DuetfairError(f"{source} is a folder without config.yaml; expected a config file or a run folder")
        return source / "config.yaml", out or str(source)
    return (source if source.exists() else config), out


# ---- evaluate ----------------------------------------------------------------------------------
SplitOpt = Annotated[
    Optional[str], typer.Option("--split", help="Split to evaluate (default: eval.split of the run, 'test').")
]
DataOpt = Annotated[
    Optional[str],
    typer.Option("--data", help="Evaluate on the data section of this config instead (external test set)."),
]
CheckpointOpt = Annotated[Checkpoint, typer.Option("--checkpoint", help="'best' (selected on validation) or 'last'.")]
BootstrapOpt = Annotated[
    Optional[int],
    typer.Option("--bootstrap", help="Bootstrap resamples for the intervals (default eval.n_boot, 1000)."),
]
NoReportOpt = Annotated[bool, typer.Option("--no-report", help="Skip report.html.")]
EvalOutOpt = Annotated[
    Optional[str],
    typer.Option(
        "--out", help="Folder of the outputs (default: RUN_DIR), e.g. RUN_DIR/eval-val for a validation audit."
    ),
]


@app.command("evaluate")
def evaluate_cmd(
    run_dir: RunDirArg,
    split: SplitOpt = None,
    data: DataOpt = None,
    checkpoint: CheckpointOpt = Checkpoint.BEST,
    bootstrap: BootstrapOpt = None,
    no_report: NoReportOpt = False,
    threads: ThreadsOpt = None,
    out: EvalOutOpt = None,
) -> None:
    """Predict a split and audit it: cases.csv, summary.json, audit.json and report.html in RUN_DIR.

    cases.csv has one row per case and class (case_id, class, dice, iou, hd95, nsd, n_ref, n_pred,
    attribute columns, hidden_subtype when the data knows it); 'duetfair audit RUN_DIR/cases.csv'
    reproduces audit.json.

    Examples:
      duetfair evaluate runs/fair_dro
      duetfair evaluate runs/fair_dro --split val --bootstrap 200 --out runs/fair_dro/eval-val
    """
    from duetfair.engine.evaluate import evaluate_run

    summary = evaluate_run(
        run_dir,
        split=split,
        data_config=data,
        checkpoint=str(checkpoint),
        n_boot=bootstrap,
        report=not no_report,
        threads=threads,
        out_dir=out,
        log=say,
    )
    console.print(_evaluation_line(summary), highlight=False, markup=False)
    console.print(
        f"wrote cases.csv, summary.json, audit.json{'' if no_report else ', report.html'} in {out or run_dir}",
        highlight=False,
    )


def _evaluation_line(summary: dict[str, Any]) -> str:
    """One line of an evaluation: Dice, and the ES-Dice and worst group of the training attribute."""
    attr = summary.get("group_attribute")
    line = f"{summary['name']} [{summary['split']}, {summary['n_cases']} cases]: Dice {summary['dice']:.4f}"
    dice = summary["audit"]["metrics"]["dice"]["attributes"]
    if attr in dice:
        a = dice[attr]
        line += f", ES-Dice ({attr}) {a['es']:.4f}, worst group {a['worst_group']} {a['worst_mean']:.4f}"
    return line


# ---- predict -----------------------------------------------------------------------------------
InputsArg = Annotated[
    Optional[list[str]],
    typer.Argument(
        help="Cases to segment: an image file (PNG/JPG/NPY/NPZ 2D, NIfTI 3D), or a case's files joined with "
        "';' (stacked as channels, e.g. MRI phases).",
    ),
]
PredictOutOpt = Annotated[str, typer.Option("--out", help="Output folder for the masks and predictions.csv.")]
ManifestOpt = Annotated[
    Optional[str],
    typer.Option(
        "--manifest",
        help="Table of cases to segment (CSV/TSV/XLSX/Parquet): an image column (';'-joined files), optional "
        "case_id, attribute columns; every case gets its own attributes.",
    ),
]
AttrOpt = Annotated[
    Optional[list[str]],
    typer.Option(
        "--attr",
        help="Patient attribute NAME=VALUE of every input, for attribute-aware models (repeatable, one value "
        "per name).",
    ),
]
PredictCheckpointOpt = Annotated[Checkpoint, typer.Option("--checkpoint", help="'best' or 'last'.")]
NormalizeOpt = Annotated[
    NormalizeMode,
    typer.Option("--normalize", help="auto (as the training data), scale, zscore, zscore_global or none."),
]
PredictThreadsOpt = Annotated[
    Optional[int], typer.Option("--threads", min=1, help="CPU threads (default: one per core, at most 8).")
]


@app.command("predict")
def predict_cmd(
    run_dir: RunDirArg,
    inputs: InputsArg = None,
    *,
    out: PredictOutOpt,
    manifest: ManifestOpt = None,
    attr: AttrOpt = None,
    checkpoint: PredictCheckpointOpt = Checkpoint.BEST,
    normalize: NormalizeOpt = NormalizeMode.AUTO,
    threads: PredictThreadsOpt = None,
) -> None:
    """Segment images with a trained run; masks keep the input's size (PNG) or geometry (NIfTI affine).

    A run trained on several files per case (MRI phases) needs all of them, joined with ';' in the
    training order; a single file is repeated to fill the channels only when the run was trained on
    repeated grayscale images. --manifest segments each case with its own attributes (its row);
    --attr gives every input the same ones. Without attributes, attribute-aware models (dMoE) use
    their attribute-free fallback, and say so.

    Examples:
      duetfair predict runs/fair_dro scan1.png scan2.png --out masks --attr race=Black
      duetfair predict runs/tumour "pre.nii.gz;post1.nii.gz;post2.nii.gz" --out masks
      duetfair predict runs/tumour --manifest cases.csv --out masks
    """
    from duetfair.engine.predict import parse_attrs, predict_files

    attrs = parse_attrs(list(attr or []))
    if not inputs and manifest is None:
        raise DuetfairError("expected input images or --manifest FILE: duetfair predict RUN IMAGE... --out DIR")
    table = predict_files(
        run_dir,
        list(inputs or []),
        out,
        attrs=attrs,
        manifest=manifest,
        checkpoint=str(checkpoint),
        normalize=str(normalize),
        threads=threads,
    )
    _report_predictions(table)


def _report_predictions(table: pd.DataFrame) -> None:
    """A note on the cases segmented without attributes, and one line per case."""
    fallback = table["group_source"].astype(str).str.startswith("none given")
    if fallback.any():
        err_console.print(
            f"note: {int(fallback.sum())} of {len(table)} cases without attributes; attribute-aware "
            f"models used their attribute-free fallback (group unknown)",
            highlight=False,
        )
    for _, row in table.iterrows():
        console.print(f"{row['input']} -> {row['mask']} (group: {row['group']})", highlight=False, markup=False)
