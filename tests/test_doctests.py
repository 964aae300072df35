"""The examples in docstrings run: every module with a ``>>>`` example is doctested here.

Examples are written as doctests (``Example:`` followed by ``>>>`` lines), never as untested
``Example::`` blocks, so an example that stops matching the code fails the suite.
"""

from __future__ import annotations

import doctest
import importlib
from pathlib import Path

import pytest

import duetfair

SRC = Path(duetfair.__file__).parent
FILES = sorted(p for p in SRC.rglob("*.py") if ">>>" in p.read_text(encoding="utf-8"))
MODULES = [".".join(("duetfair", *p.relative_to(SRC).with_suffix("").parts)).removesuffix(".__init__") for p in FILES]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name: str) -> None:
    module = importlib.import_module(name)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testmod(module, optionflags=flags, report=True)
    assert result.attempted > 0
    assert result.failed == 0, f"{name}: {result.failed} of {result.attempted} example lines failed (see stdout)"


def test_examples_are_doctests() -> None:
    untested = [str(p.relative_to(SRC)) for p in SRC.rglob("*.py") if "Example::" in p.read_text(encoding="utf-8")]
    assert not untested, f"'Example::' blocks are not run; write them as '>>>' doctests: {untested}"
    assert len(MODULES) >= 15
