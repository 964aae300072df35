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
"""

from __future__ import annotations

import html
import re
from typing import Any

_SPACE = re.compile(r"[\s\x00-\x1f\x7f\u2028\u2029]+")
_PUNCT = re.compile(r"([\\`*_|])")
_LINK = re.compile(r"\]\(")


def md_text(value: Any) -> str:
    """``value`` as Markdown text that renders as itself (module doc), on one line."""
    text = _SPACE.sub(" ", str(value)).strip()
    return _LINK.sub("]\\(", _PUNCT.sub(r"\\\1", html.escape(text, quote=False)))
