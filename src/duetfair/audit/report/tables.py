"""Tables for people: typed cells that every report form renders itself.

A :class:`Table` is a caption, a header, rows of :class:`Cell` (text, and whether it is the best
value of its column) and a note. Its producers (the comparison table of
:func:`duetfair.audit.compare.paper_table`, the benchmark's tables of
:func:`duetfair.experiments.methods.benchmark_tables`) build the cells once; the Markdown form
(:meth:`Table.markdown`, every text escaped by :func:`~duetfair.audit.markdown.md_text`) and the
HTML report (one ``<table>`` with its ``<caption>`` per table) render the same cells, so no form is
parsed back from another.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

from duetfair.audit.markdown import md_text

__all__ = ["Cell", "Table", "markdown_table", "tables_markdown"]


@dataclass(frozen=True)
class Cell:
    """One cell: its text as shown, and ``best`` for the best value of its column (bold)."""

    text: str
    best: bool = False


@dataclass(frozen=True)
class Table:
    """A table for people.

    Attributes:
        header: the column names.
        rows: one tuple of cells per row, as many as ``header``.
        caption: what the table is, shown above it (empty: none).
        note: how to read it, shown below it (empty: none).
    """

    header: tuple[str, ...]
    rows: tuple[tuple[Cell, ...], ...]
    caption: str = ""
    note: str = ""

    @classmethod
    def of(
        cls,
        header: Sequence[str],
        rows: Sequence[Sequence[str | Cell]],
        *,
        caption: str = "",
        note: str = "",
    ) -> "Table":
        """A table from plain texts (or cells); every row as wide as the header."""
        cells = tuple(tuple(c if isinstance(c, Cell) else Cell(str(c)) for c in row) for row in rows)
        if any(len(row) != len(header) for row in cells):
            raise ValueError(f"table '{caption}': every row needs {len(header)} cells")
        return cls(tuple(map(str, header)), cells, caption=caption, note=note)

    def render(self, text: Callable[[str], str], bold: Callable[[str], str]) -> list[list[str]]:
        """Header and rows as texts: ``text`` escapes a text, ``bold`` marks a best cell."""
        rows = [[bold(text(c.text)) if c.best else text(c.text) for c in row] for row in self.rows]
        return [[text(h) for h in self.header], *rows]

    def markdown(self) -> str:
        """The table in Markdown: caption, a blank line, the table, a blank line and the note."""
        header, *rows = self.render(md_text, lambda t: f"**{t}**")
        lines = [md_text(self.caption), ""] if self.caption else []
        lines += markdown_table(header, rows, escape=False)
        lines += ["", md_text(self.note)] if self.note else []
        return "\n".join(lines) + "\n"


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]], *, escape: bool = True) -> list[str]:
    """The lines of a Markdown table; ``escape``: its cells are plain text (escaped, so that a value
    cannot add markup or cells), else Markdown already."""
    esc: Callable[[Any], str] = md_text if escape else str
    lines = ["| " + " | ".join(map(esc, header)) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(map(esc, r)) + " |" for r in rows]


def tables_markdown(tables: Sequence[Table]) -> str:
    """Several tables in one Markdown text, a blank line between them."""
    return "\n".join(t.markdown() for t in tables)
