r"""Markdown-safe text: values from user data (metadata values, column names, case ids, file names,
group names) printed in a Markdown report render as the same text, never as markup.

A metadata value may hold raw HTML (``<script>``), a ``|`` that splits a table cell, a newline that
ends a table row, or Markdown syntax (``[link](javascript:...)``, ``**``, backticks). :func:`md_text`
escapes all of it: whitespace runs (newlines included) become one space, ``&``, ``<``, ``>`` become
HTML entities and the Markdown punctuation ``\ ` * _ |`` is backslash-escaped, which CommonMark,
GitHub and python-markdown (with its tables extension) all read back as the character. A link or an
image needs ``](``: in a value that ``(`` is escaped too, and the reports' own text never opens a
parenthesis right after a ``]``, so no value can make a link (``[x](javascript:...)``); brackets
and parentheses stay readable (``dice[rim]``, ``0.81 (0.78-0.84)``). Reference links need a
definition at the start of a line, which no value reaches (line breaks are folded).
:func:`md_cells` splits a table row written with it back into its cells' text.
"""

from __future__ import annotations

import html
import re
from typing import Any

_SPACE = re.compile(r"[\s\x00-\x1f\x7f\u2028\u2029]+")
_PUNCT = re.compile(r"([\\`*_|])")
_LINK = re.compile(r"\]\(")
_ESCAPED = re.compile(r"\\([\\`*_\[\]|{}()#+\-.!>])")


def md_text(value: Any) -> str:
    """``value`` as Markdown text that renders as itself (module doc), on one line."""
    text = _SPACE.sub(" ", str(value)).strip()
    return _LINK.sub("]\\(", _PUNCT.sub(r"\\\1", html.escape(text, quote=False)))


def md_plain(text: str) -> str:
    """Inverse of :func:`md_text` for display outside Markdown (backslash escapes and entities
    removed)."""
    return html.unescape(_ESCAPED.sub(r"\1", text))


def md_cells(line: str) -> list[str]:
    r"""The cells of a Markdown table row (``| a | b\|c |`` -> ``["a", "b\|c"]``): split at the
    ``|`` that are not backslash-escaped, each stripped, still escaped."""
    body = line.strip()
    body = body[1:] if body.startswith("|") else body
    body = body[:-1] if body.endswith("|") and not body.endswith("\\|") else body
    cells, current, i = [], [], 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            current.append(body[i : i + 2])
            i += 2
            continue
        if ch == "|":
            cells.append("".join(current).strip())
            current = []
        else:
            current.append(ch)
        i += 1
    cells.append("".join(current).strip())
    return cells
