"""File input and output: tables in, atomic files out, safe path resolution.

Nothing duetfair writes is ever left half-written: content goes to a temporary file in the
destination folder and is renamed over the target (atomic on POSIX and Windows), with the ordinary
permissions of a new file (``0666`` less the umask), so reports can be served and shared as is.
:func:`read_table` is the one reader of user tables (manifests, metadata, per-case tables).
"""

from __future__ import annotations

import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator

from duetfair.errors import DuetfairError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    Example::

        with atomic_path("out/table.parquet") as tmp:
            df.to_parquet(tmp)
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    os.chmod(tmp, 0o666 & ~_umask())
    try:
        yield tmp
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()


@contextmanager
def staged_outputs(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a command's outputs together or not at all.

    Yields a hidden staging folder inside ``out_dir``; when the block succeeds every file in it is
    moved into ``out_dir`` (each by an atomic rename, replacing older versions), and when it fails
    the staging folder is removed, and ``out_dir`` too if this call created it and it is empty.
    A reader never sees new outputs mixed with the old ones of a failed run.
    """
    import shutil

    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    stage = Path(tempfile.mkdtemp(prefix=".partial-", dir=out))
    try:
        yield stage
        for item in sorted(stage.rglob("*")):
            if item.is_file():
                target = out / item.relative_to(stage)
                target.parent.mkdir(parents=True, exist_ok=True)
                os.replace(item, target)
    finally:
        shutil.rmtree(stage, ignore_errors=True)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def read_table(path: str | os.PathLike[str], *, sheet: str | int | None = None) -> pd.DataFrame:
    """Read a table: CSV (comma- or tab-separated, sniffed from the header), ``.tsv``/``.tab``
    (tab-separated, e.g. the Dataverse export), ``.xlsx``/``.xls`` (``sheet``, default the first)
    or ``.parquet``/``.pq``. Header names are stripped of spaces and quotes. One-line errors for a
    missing, empty or unreadable file."""
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DuetfairError(f"table '{p}' does not exist")
    if not p.is_file():
        raise DuetfairError(f"table '{p}' is not a file")
    suffix = p.suffix.lower()
    try:
        if suffix in (".xlsx", ".xls"):
            table = pd.read_excel(p, sheet_name=sheet if sheet is not None else 0, engine="openpyxl")
        elif suffix in (".parquet", ".pq"):
            table = pd.read_parquet(p)
        else:
            table = pd.read_csv(p, sep="\t" if suffix in (".tsv", ".tab") or _tab_header(p) else ",")
    except pd.errors.EmptyDataError:
        raise DuetfairError(f"table '{p}' is empty; expected a header and one row per case") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise DuetfairError(f"table '{p}' cannot be read: {' '.join(str(exc).split())[:300]}") from None
    table.columns = [str(c).strip().strip('"') for c in table.columns]
    return table


def _tab_header(path: Path) -> bool:
    """True when the first line has tabs and no commas (a tab-separated file named .csv)."""
    with path.open(encoding="utf-8", errors="replace") as f:
        head = f.readline()
    return "\t" in head and "," not in head


def write_text(path: str | os.PathLike[str], text: str) -> Path:
    """Atomically write ``text`` (UTF-8) to ``path``; return the path."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return Path(path)


def to_json_text(obj: Any) -> str:
    """``obj`` as indented, strict JSON text (NaN/inf -> null, NumPy scalars -> numbers)."""
    return json.dumps(_json_safe(obj), indent=2) + "\n"


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Atomically write ``obj`` as indented JSON (NaN/inf written as null)."""
    return write_text(path, to_json_text(obj))


def _json_safe(obj: Any) -> Any:
    """Replace non-finite floats by ``None`` so the output is strict JSON."""
    if isinstance(obj, float):
        return obj if obj == obj and obj not in (float("inf"), float("-inf")) else None
    if isinstance(obj, dict):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        return _json_safe(obj.item())
    return obj


def resolve_inside(root: str | os.PathLike[str], relative: str | os.PathLike[str], what: str) -> Path:
    """Resolve ``relative`` against ``root`` and refuse paths that escape ``root``.

    Absolute paths are refused as well, so a manifest or config cannot point anywhere on the
    machine. ``what`` names the source of the path in the error (e.g. ``"manifest.csv row 3"``).
    """
    base = Path(root).resolve()
    rel = Path(relative)
    if rel.is_absolute():
        raise DuetfairError(f"{what}: path '{relative}' is absolute; expected a path relative to {base}")
    full = (base / rel).resolve()
    if full != base and base not in full.parents:
        raise DuetfairError(f"{what}: path '{relative}' escapes {base}; expected a path inside it")
    return full
