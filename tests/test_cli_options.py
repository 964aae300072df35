"""The command line as a whole: shared options, choices listed by --help, one-line usage errors,
and short command functions."""

from __future__ import annotations

from typing import get_type_hints

import pytest
import typer

from duetfair.cli import app
from duetfair.cli.options import AuditOptions, option_names
from helpers import run

OUTPUT_OPTIONS = {"--format", "--out"}
"""Options of ``duetfair audit`` that say where the report goes, not how to audit."""


def _commands() -> dict[str, object]:
    group = typer.main.get_command(app)
    return dict(group.commands)  # type: ignore[attr-defined]


def test_score_accepts_every_audit_setting() -> None:
    commands = _commands()
    audit, score = option_names(commands["audit"]), option_names(commands["score"])
    settings = audit - OUTPUT_OPTIONS - {"--help"}
    assert settings, audit
    assert not settings - score, f"audit settings missing from score: {sorted(settings - score)}"
    hints = get_type_hints(AuditOptions, include_extras=True)
    infos = [hint.__metadata__[0] for hint in hints.values()]  # typer.Option("--by", ...): the flag comes first
    declared = {opt for info in infos for opt in (info.default, *(info.param_decls or ()))}
    assert declared == settings  # every audit setting is declared once, in AuditOptions


@pytest.mark.parametrize(
    ("command", "flag", "choices"),
    [
        ("audit", "--es-variant", "sum_abs|std"),
        ("audit", "--cvar-method", "fractional|discrete"),
        ("audit", "--format", "json|md|html"),
        ("score", "--empty", "nnunet|nan|fairseg|mamamia"),
        ("score", "--cvar-method", "fractional|discrete"),
        ("score", "--hd95-unit", "mm|voxels|pixels|unknown"),
        ("evaluate", "--checkpoint", "best|last"),
        ("predict", "--normalize", "auto|scale|zscore|zscore_global|none"),
        ("compare", "--format", "md|csv|json|latex|html"),
    ],
)
def test_help_lists_the_choices(
    command: str, flag: str, choices: str, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "300")  # one line per option
    code, stdout, _ = run([command, "--help"], capsys)
    assert code == 0
    line = next(line for line in stdout.splitlines() if f"│ {flag} " in line or f"   {flag} " in line)
    assert choices in line, line


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["audit", "t.csv", "--cvar-method", "fractionl"], "--cvar-method: 'fractionl' is not one of 'fractional', "
         "'discrete' (did you mean 'fractional'?)"),
        (["score", "--out", "o", "--empty", "nnunt"], "--empty: 'nnunt' is not one of 'nnunet', 'nan', 'fairseg', "
         "'mamamia' (did you mean 'nnunet'?)"),
        (["evaluate", "run", "--checkpoint", "final"], "--checkpoint: 'final' is not one of 'best', 'last'"),
        (["audit", "t.csv", "--bogus"], "No such option: --bogus"),
        (["audit"], "Missing argument 'cases'"),
    ],
)  # fmt: skip
def test_usage_errors_are_one_line_exit_2(args: list[str], message: str, capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run(args, capsys)
    assert code == 2 and err.startswith("error: ") and message in err, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_no_command_prints_the_help(capsys: pytest.CaptureFixture[str]) -> None:
    code, stdout, _ = run([], capsys)
    assert code == 2 and "Commands" in stdout and "audit" in stdout
