"""The entry point of the ``duetfair`` console script: every error ends in one line on stderr.

Input errors (:class:`~duetfair.errors.DuetfairError`), usage errors of the command line (an
unknown option, a value outside an option's choices), file-system errors and memory exhaustion
exit with code 2; any other exception is a bug: one line, exit code 1, the traceback with
``DUETFAIR_DEBUG=1``.
"""

from __future__ import annotations

import sys
from typing import Any, NoReturn, Optional

import typer

from duetfair.cli.app import app, err_console
from duetfair.errors import DuetfairError

MAX_MESSAGE = 400
"""Longest error message echoed (a value echoed from a hostile input is cut, never expanded)."""


def _fail(message: str, code: int) -> NoReturn:
    """Print ``error: <message>`` as one line on stderr and exit with ``code``."""
    from rich.markup import escape

    text = " ".join(str(message).split())
    if len(text) > MAX_MESSAGE:
        text = text[: MAX_MESSAGE - 3] + "..."
    err_console.print(f"[bold red]error:[/] {escape(text)}", highlight=False, soft_wrap=True, markup=True)
    sys.exit(code)


def os_error_message(exc: OSError) -> str:
    """One line naming the path and what is wrong with it (a folder where a file goes, no space, ...)."""
    import errno

    path = exc.filename2 if exc.filename2 is not None else exc.filename
    reasons = {
        errno.EISDIR: "it is a folder; expected a file path",
        errno.ENOTDIR: "a parent of it is a file, not a folder",
        errno.EEXIST: "a file of that name exists where a folder is needed",
        errno.EACCES: "permission denied",
        errno.EPERM: "operation not permitted",
        errno.ENOSPC: "no space left on the device",
        errno.EROFS: "the file system is read-only",
        errno.ENOENT: "no such file or folder",
    }
    reason = reasons.get(exc.errno or -1, exc.strerror or type(exc).__name__)
    return f"cannot use '{path}': {reason}" if path is not None else f"file system error: {reason}"


def _click_exceptions() -> Any:
    """The click exceptions typer raises (vendored by typer 0.2x, else click's own)."""
    try:
        from typer._click import exceptions
    except ImportError:  # typer releases that depend on click
        from click import exceptions  # type: ignore[no-redef]
    return exceptions


def usage_message(exc: Any) -> str:
    """One line of a command-line usage error: a value outside an option's choices names the
    option, the value, the choices and the closest one (as :func:`duetfair.options.parse` does);
    other usage errors keep typer's words."""
    from enum import Enum

    from duetfair.options import not_one_of

    param = getattr(exc, "param", None)
    allowed = getattr(getattr(param, "type_descriptor", None), "choices", None)
    cause = getattr(exc, "__cause__", None)
    errors = cause.errors() if cause is not None and hasattr(cause, "errors") else []
    if param is not None and allowed and errors and "input" in errors[0]:
        flags = [o for o in getattr(param, "opts", []) if o.startswith("--")] or [str(param.name)]
        names = [str(c.value) if isinstance(c, Enum) else str(c) for c in allowed]
        return not_one_of(flags[0], errors[0]["input"], names)
    return str(exc.format_message())


def _run(argv: Optional[list[str]]) -> None:
    """Run the command line: usage errors in one line (exit code 2), ``typer.Exit`` codes kept,
    help printed as usual."""
    exceptions = _click_exceptions()
    try:
        code = app(args=argv, standalone_mode=False)
    except exceptions.NoArgsIsHelpError:
        app(args=argv)  # typer prints the help and exits with code 2, as always without a command
        return
    except exceptions.UsageError as exc:
        _fail(usage_message(exc), 2)
    except typer.Abort:
        _fail("aborted", 1)
    if isinstance(code, int) and code != 0:
        sys.exit(code)


def main(argv: Optional[list[str]] = None) -> None:
    """Entry point of the ``duetfair`` console script.

    Input errors (:class:`DuetfairError`), usage errors, file-system errors (a folder where a file
    goes, no permission, disk full) and memory exhaustion end in one line on stderr and exit code
    2; any other exception is a bug: one line, exit code 1, the traceback with ``DUETFAIR_DEBUG=1``.
    """
    import os

    try:
        _run(argv)
    except DuetfairError as exc:
        _fail(str(exc), 2)
    except OSError as exc:
        _fail(os_error_message(exc), 2)
    except MemoryError:
        _fail("out of memory; reduce the request (sizes, --bootstrap, --n) or free memory", 2)
    except RecursionError:
        _fail("an input is nested too deeply to be read (JSON / YAML nesting); expected an ordinary file", 2)
    except KeyboardInterrupt:
        _fail("interrupted", 130)
    except Exception as exc:  # noqa: BLE001 - last resort: a bug must still not print a traceback
        if os.environ.get("DUETFAIR_DEBUG"):
            raise
        _fail(
            f"internal error ({type(exc).__name__}: {exc}); rerun with DUETFAIR_DEBUG=1 for the traceback "
            f"and report it",
            1,
        )
