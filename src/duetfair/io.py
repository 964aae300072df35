"""File input and output: tables in, atomic files out, safe path resolution.

Nothing duetfair writes is ever left half-written: content goes to a temporary file in the
destination folder and is renamed over the target (atomic on POSIX and Windows), with the ordinary
permissions of a new file (``0666`` less the umask), so reports can be served and shared as is.
:func:`read_table` is the one reader of user tables (manifests, metadata, per-case tables).
"""

from __future__ import annotations

import fcntl
import json
import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterable, Iterator

from duetfair.errors import DuetfairError

if TYPE_CHECKING:
    import pandas as pd


@contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; rename it onto ``path`` if the block succeeds.

    Example:
        >>> import tempfile
        >>> folder = Path(tempfile.mkdtemp())
        >>> with atomic_path(folder / "out" / "table.csv") as tmp:
        ...     _ = tmp.write_text("case_id,dice")
        >>> [p.name for p in (folder / "out").iterdir()]  # no temporary file left
        ['table.csv']
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


STAGE_PREFIX = ".partial-"
"""Name prefix of the hidden folder a command stages its outputs in (:func:`staged_outputs`)."""

COMMIT_PREFIX = ".commit-"
"""Name prefix of a staging folder whose outputs are being moved in (completed by the next run)."""


@contextmanager
def staged_outputs(out_dir: str | os.PathLike[str]) -> Iterator[Path]:
    """Write a command's outputs together or not at all.

    Yields a hidden staging folder inside ``out_dir``; when the block succeeds every file in it is
    moved into ``out_dir`` (each by an atomic rename, replacing older versions; a folder that is
    new in ``out_dir`` moves in one rename), and when it fails the staging folder is removed, and
    ``out_dir`` too if this call created it and it is empty. A reader never sees new outputs mixed
    with the old ones of a failed run.

    A staging folder is locked (``flock``) by its writer while it lives. What a killed writer left
    is recovered by the next call on the same folder (:func:`recover_stages`): a staging folder
    still being written is removed; one whose files were being moved in (renamed ``.commit-*``
    first, so the set is complete) has the rest moved in, so the outputs end all old or all new.
    """
    import shutil

    out = Path(out_dir)
    created = not out.exists()
    out.mkdir(parents=True, exist_ok=True)
    recover_stages(out)
    stage = Path(tempfile.mkdtemp(prefix=STAGE_PREFIX, dir=out))
    fd = os.open(stage, os.O_RDONLY)
    current = stage
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        yield stage
        current = stage.with_name(COMMIT_PREFIX + stage.name[len(STAGE_PREFIX) :])
        os.rename(stage, current)  # from here on the new set wins, even if the process is killed
        _move_into(current, out)
    finally:
        shutil.rmtree(current, ignore_errors=True)
        os.close(fd)
        if created and out.is_dir() and not any(out.iterdir()):
            out.rmdir()


def recover_stages(out_dir: str | os.PathLike[str]) -> list[Path]:
    """Finish or remove what killed writers left in ``out_dir`` (see :func:`staged_outputs`):
    ``.commit-*`` folders are moved in, ``.partial-*`` folders removed; folders whose writer is
    alive (it holds their lock) are left alone. Returns the folders recovered."""
    import shutil

    out = Path(out_dir)
    done: list[Path] = []
    if not out.is_dir():
        return done
    for entry in sorted(out.iterdir()):
        if not entry.name.startswith((STAGE_PREFIX, COMMIT_PREFIX)) or not entry.is_dir() or entry.is_symlink():
            continue
        fd = os.open(entry, os.O_RDONLY)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:  # a live writer
                continue
            if entry.name.startswith(COMMIT_PREFIX):
                _move_into(entry, out)
            shutil.rmtree(entry, ignore_errors=True)
            done.append(entry)
        finally:
            os.close(fd)
    return done


def _move_into(src: Path, dst: Path) -> None:
    """Move the contents of folder ``src`` into ``dst``: files by atomic rename over older ones,
    folders that ``dst`` lacks in one rename, folders it has merged (streamed, no listing kept)."""
    with os.scandir(src) as entries:
        for entry in entries:
            target = dst / entry.name
            if entry.is_dir(follow_symlinks=False):
                if target.is_dir() and not target.is_symlink():
                    _move_into(Path(entry.path), target)
                    continue
                if not target.exists() and not target.is_symlink():
                    os.rename(entry.path, target)
                    continue
            os.replace(entry.path, target)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


NUMBER_NA_TOKENS = frozenset({"na", "n/a", "nan", "-nan", "none", "null", "#n/a", "#na", "<na>"})
"""Cells (stripped, any case) read as a missing number in a column of numbers. In a column of
text they are text: a group may be called ``NA`` (North America) or ``None``."""


def read_table(
    path: str | os.PathLike[str],
    *,
    sheet: str | int | None = None,
    text_columns: Iterable[str] | Callable[[list[str]], Iterable[str]] = (),
    missing: Iterable[str] = (),
) -> pd.DataFrame:
    """Read a table: CSV (comma- or tab-separated, sniffed from the header), ``.tsv``/``.tab``
    (tab-separated, e.g. the Dataverse export), ``.xlsx``/``.xls`` (``sheet``, default the first)
    or ``.parquet``/``.pq``. Header names are stripped of spaces and quotes. One-line errors for a
    missing, empty or unreadable file.

    Cell values (CSV, Excel): an empty cell is missing (NaN). A column whose other cells are all
    numbers, or words for a missing number (:data:`NUMBER_NA_TOKENS`: ``NA``, ``null``, ...), is a
    column of numbers; any other column keeps its cells as text, so ``NA`` or ``None`` stays a
    value (a group name). ``text_columns`` (names, or a function of the header giving them, e.g.
    the id column) are always text, so ``007`` keeps its zeros. ``missing``: further cell values
    (stripped, any case) the user declares missing, in every column.
    """
    import pandas as pd

    p = Path(path)
    if not p.exists():
        raise DuetfairError(f"table '{p}' does not exist")
    if not p.is_file():
        raise DuetfairError(f"table '{p}' is not a file")
    suffix = p.suffix.lower()
    raw = {"keep_default_na": False, "na_values": [""]}
    try:
        if suffix in (".xlsx", ".xls"):
            table = pd.read_excel(
                p, sheet_name=sheet if sheet is not None else 0, engine="openpyxl", dtype=object, **raw
            )
        elif suffix in (".parquet", ".pq"):
            table = pd.read_parquet(p)
        else:
            sep = "\t" if suffix in (".tsv", ".tab") or _tab_header(p) else ","
            table = pd.read_csv(p, sep=sep, dtype=str, **raw)
    except pd.errors.EmptyDataError:
        raise DuetfairError(f"table '{p}' is empty; expected a header and one row per case") from None
    except RecursionError:
        raise DuetfairError(f"table '{p}' cannot be read: nested too deeply") from None
    except Exception as exc:  # noqa: BLE001 - any parse failure is bad input
        raise DuetfairError(f"table '{p}' cannot be read: {' '.join(str(exc).split())[:300]}") from None
    table.columns = [str(c).strip().strip('"') for c in table.columns]
    keep = set(text_columns(list(table.columns)) if callable(text_columns) else text_columns)
    return _typed(table, keep, {str(t).strip().lower() for t in missing}, parquet=suffix in (".parquet", ".pq"))


def _typed(table: pd.DataFrame, text: set[str], missing: set[str], *, parquet: bool) -> pd.DataFrame:
    """Columns of numbers as numbers (see :func:`read_table`), ``text`` columns as text, the
    declared ``missing`` cells as NaN."""
    import numpy as np
    import pandas as pd

    out = {}
    for j, name in enumerate(table.columns):
        col = table.iloc[:, j]
        if missing and (col.dtype == object or pd.api.types.is_string_dtype(col)):
            declared = col.astype("string").str.strip().str.lower().isin(missing).fillna(False).to_numpy(dtype=bool)
            if declared.any():
                col = col.astype(object).where(~declared, np.nan)
        if name in text:
            col = col.map(_as_text, na_action="ignore").astype(object)
        elif not parquet and (col.dtype == object or pd.api.types.is_string_dtype(col)):
            col = _maybe_numbers(col)
        out[j] = col
    typed = pd.DataFrame(out, index=table.index)
    typed.columns = table.columns
    return typed


def _as_text(value: Any) -> str:
    """A cell as text: ``7`` -> ``"7"``, ``7.0`` (an Excel number) -> ``"7"``, text stripped."""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


def _maybe_numbers(col: pd.Series) -> pd.Series:
    """``col`` as numbers when every non-empty cell is a number or a missing-number word."""
    import pandas as pd

    words = col.astype(object).where(col.notna(), "").astype(str).str.strip()
    numbers = pd.to_numeric(words.where(words != "", None), errors="coerce")
    na_words = (words == "") | words.str.lower().isin(NUMBER_NA_TOKENS)
    if bool((numbers.notna() | na_words).all()) and (bool(numbers.notna().any()) or bool(col.isna().all())):
        return numbers.astype("float64") if numbers.isna().any() else numbers
    return col


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


MAX_JSON_BYTES = 1 << 30
"""Largest JSON file :func:`read_json` reads (1 GiB)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuetfairError(f"key '{str(key)[:80]}' is given twice in one object; expected each key once")
        out[key] = value
    return out


def read_json(path: str | os.PathLike[str], what: str = "a JSON file") -> Any:
    """Parse a JSON file with one-line errors naming ``path``: not valid JSON or UTF-8, a key given
    twice in one object (JSON readers silently keep the last), nesting deeper than Python can
    follow, more than :data:`MAX_JSON_BYTES`. ``what`` says what the file should be."""
    p = Path(path)
    try:
        size = p.stat().st_size
        if size > MAX_JSON_BYTES:
            raise DuetfairError(f"{size} bytes; at most {MAX_JSON_BYTES} bytes are read")
        return json.loads(p.read_text(encoding="utf-8"), object_pairs_hook=_no_duplicates)
    except DuetfairError as exc:
        raise DuetfairError(f"{p}: {exc} ({what})") from None
    except RecursionError:
        raise DuetfairError(f"{p}: nested too deeply to be {what}") from None
    except FileNotFoundError:
        raise DuetfairError(f"{p}: file not found; expected {what}") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise DuetfairError(f"{p}: not valid JSON ({' '.join(str(exc).split())[:120]})") from None


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
