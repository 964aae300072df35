"""The shape rules of docs/architecture.md that a machine can check: no source file over 600 lines,
no function over 60 lines (signature, decorators and docstring included) in the CLI, audit and
engine packages."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).parents[1] / "src" / "duetfair"
MAX_FILE_LINES = 600
MAX_FUNCTION_LINES = 60


def test_no_source_file_is_over_600_lines() -> None:
    long = [
        f"{p.relative_to(SRC)} ({n} lines)"
        for p in sorted(SRC.rglob("*.py"))
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_FILE_LINES
    ]
    assert not long, long


@pytest.mark.parametrize("package", ["cli", "audit", "engine"])
def test_functions_are_short(package: str) -> None:
    long = []
    for path in sorted((SRC / package).rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                start = min([node.lineno, *(d.lineno for d in node.decorator_list)])
                if node.end_lineno is not None and node.end_lineno - start + 1 > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(SRC)}:{node.name} ({node.end_lineno - start + 1} lines)")
    assert not long, long
