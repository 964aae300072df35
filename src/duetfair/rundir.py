"""The run folder: every file name of a training run defined once, and ``run.json`` as a typed record.

Layout (written by ``duetfair train``, completed by ``duetfair evaluate``)::

    config.yaml          resolved experiment config         group_spec.json  attribute encoding
    run.json             RunRecord: status, selection, data shapes, groups (what evaluate/predict need)
    history.csv          one row per epoch                  tensorboard/     the same scalars
    checkpoints/last.pt  full state (exact resume)          checkpoints/best.pt  weights of the selected epoch
    cases.csv            per-case, per-class metrics + raw attributes (evaluate)
    summary.json         headline numbers (evaluate)        audit.json / report.html  the audit (evaluate)

Every reader and writer of a run folder goes through :class:`RunDir`, so no file name is spelled
twice and ``run.json`` is read into (and written from) :class:`RunRecord`, never a loose dict.

A process that writes a run (``train``, ``evaluate``) holds :meth:`RunDir.lock`: an exclusive
``flock`` on ``.lock``, which records the holder's PID, host and start time. A second writer is
refused with a message naming the holder; the kernel releases the lock when its holder dies (even
by ``kill -9``), so a lock left by a killed run is recovered, and ``run.json`` then reads as
``interrupted`` instead of ``running``: the first reader (any command that opens the run) also
rewrites the file so.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import os
import socket
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Literal, Optional

from pydantic import BaseModel, ConfigDict, ValidationError

from duetfair.errors import DuetfairError, require
from duetfair.io import write_json


class RunRecord(BaseModel):
    """Contents of ``run.json``.

    Attributes:
        status: ``running``, ``completed`` or ``interrupted``.
        group_attribute: attribute of the objective's group ids (``None``: intersection of all).
        route_attributes: attributes dMoE routes on (``None``: the objective's groups).
        group_names: names of the objective's group ids, in id order.
        image_shape: ``[C, *S]`` of a training image.
        pid, host: the training process (``running`` is shown as ``interrupted`` once it is gone).
        channel_source: where the ``C`` channels came from: ``native`` (one file holds them, e.g.
            RGB), ``files`` (one file per channel, e.g. MRI phases joined with ``;``) or ``repeat``
            (a single-channel image repeated); ``predict`` gives the model its channels the same
            way. ``None``: a run written before this field (predict then repeats a single-channel
            input only to 3 channels, the grayscale-to-RGB case).
    """

    model_config = ConfigDict(extra="ignore")

    status: Literal["running", "completed", "interrupted"]
    name: str
    method: Optional[str] = None
    model: str
    objective: str
    select: str
    epochs_done: int = 0
    global_step: int = 0
    best_epoch: int = -1
    best_score: Optional[float] = None
    num_classes: int
    in_channels: int
    spatial_dims: int
    image_shape: list[int]
    channel_source: Optional[Literal["native", "files", "repeat"]] = None
    group_attribute: Optional[str] = None
    route_attributes: Optional[list[str]] = None
    group_names: list[str]
    num_groups: int
    world_size: int = 1
    device: str = "cpu"
    pid: Optional[int] = None
    host: Optional[str] = None
    config_hash: str


@dataclass(frozen=True)
class RunDir:
    """A run folder (see the module docstring); paths only, nothing is read until asked."""

    root: Path

    def __init__(self, root: str | os.PathLike[str]) -> None:
        object.__setattr__(self, "root", Path(root))

    @property
    def lock_file(self) -> Path:
        return self.root / ".lock"

    @property
    def config(self) -> Path:
        return self.root / "config.yaml"

    @property
    def record(self) -> Path:
        return self.root / "run.json"

    @property
    def group_spec(self) -> Path:
        return self.root / "group_spec.json"

    @property
    def history(self) -> Path:
        return self.root / "history.csv"

    @property
    def checkpoints(self) -> Path:
        return self.root / "checkpoints"

    def checkpoint(self, name: Literal["last", "best"]) -> Path:
        """``checkpoints/last.pt`` or ``checkpoints/best.pt``."""
        return self.checkpoints / f"{name}.pt"

    @property
    def tensorboard(self) -> Path:
        return self.root / "tensorboard"

    @property
    def cases(self) -> Path:
        return self.root / "cases.csv"

    @property
    def summary(self) -> Path:
        return self.root / "summary.json"

    @property
    def audit(self) -> Path:
        return self.root / "audit.json"

    @property
    def report(self) -> Path:
        return self.root / "report.html"

    @classmethod
    def containing(cls, path: str | os.PathLike[str]) -> Optional["RunDir"]:
        """The run folder that holds file ``path`` (e.g. its ``cases.csv``), or ``None``."""
        run = cls(Path(path).parent)
        return run if run.group_spec.is_file() and run.record.is_file() else None

    # ---- lock ---------------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self, command: str) -> Iterator[None]:
        """Hold the run folder exclusively while ``command`` writes it (see the module docstring).

        Raises:
            DuetfairError: another live process holds it (its PID, host, command and start time named).
        """
        self.root.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise DuetfairError(
                    f"run folder {self.root} is in use by {self._holder()}; wait for it to finish "
                    f"or choose another --out"
                ) from None
            self._clean_partial_files()
            holder = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "command": command,
                "started": datetime.datetime.now().isoformat(timespec="seconds"),
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(holder).encode(), 0)
            try:
                yield
            finally:
                os.ftruncate(fd, 0)
                fcntl.flock(fd, fcntl.LOCK_UN)
        finally:
            os.close(fd)

    def locked(self) -> bool:
        """True while a live process holds :meth:`lock`."""
        if not self.lock_file.is_file():
            return False
        fd = os.open(self.lock_file, os.O_RDONLY)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return True
        finally:
            os.close(fd)
        return False

    def _holder(self) -> str:
        try:
            h = json.loads(self.lock_file.read_text(encoding="utf-8") or "{}")
        except (OSError, json.JSONDecodeError):
            h = {}
        if not h:
            return "another process"
        return f"'{h.get('command')}' (PID {h.get('pid')} on {h.get('host')}, since {h.get('started')})"

    def _clean_partial_files(self) -> None:
        """Remove what a killed writer left behind: temporary files (``.<name>.*.tmp``) and staged
        outputs (``.partial-*/``); the lock is held, so nobody is writing them."""
        import shutil

        for folder in (self.root, self.checkpoints):
            if folder.is_dir():
                for tmp in folder.glob(".*.tmp"):
                    tmp.unlink(missing_ok=True)
        for stage in self.root.glob(".partial-*"):
            shutil.rmtree(stage, ignore_errors=True)

    # ---- run.json ---------------------------------------------------------------------------
    def require_run(self) -> None:
        """Refuse a folder that is not a training run, naming the missing file."""
        require(
            self.root.is_dir(), f"run directory {self.root} not found; expected the --out folder of 'duetfair train'"
        )
        for path in (self.config, self.record, self.group_spec):
            require(
                path.is_file(),
                f"run directory {self.root}: missing {path.name}; expected a folder written by 'duetfair train'",
            )

    def read_record(self) -> RunRecord:
        """``run.json`` as a :class:`RunRecord` (one-line error if it is missing or corrupt)."""
        require(self.record.is_file(), f"run directory {self.root}: missing {self.record.name}")
        try:
            record = RunRecord.model_validate(json.loads(self.record.read_text(encoding="utf-8")))
            if record.status == "running" and not self.locked():  # its process is gone
                record.status = "interrupted"
                self._record_interrupted()
            return record
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise DuetfairError(f"{self.record}: not valid JSON ({exc}); the run folder is damaged") from None
        except RecursionError:
            raise DuetfairError(f"{self.record}: nested too deeply; the run folder is damaged") from None
        except ValidationError as exc:
            err = exc.errors()[0]
            key = ".".join(str(p) for p in err["loc"]) or "run.json"
            raise DuetfairError(f"{self.record}: {key}: {err['msg'].lower()}; the run folder is damaged") from None

    def _record_interrupted(self) -> None:
        """Rewrite a ``running`` run.json whose process is gone as ``interrupted`` (best effort:
        under the lock, so no writer is starting; a read-only folder keeps its file)."""
        try:
            fd = os.open(self.lock_file, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError:
            return
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            data = json.loads(self.record.read_text(encoding="utf-8"))
            if isinstance(data, dict) and data.get("status") == "running":
                write_json(self.record, {**data, "status": "interrupted"})
        except (OSError, ValueError):
            pass
        finally:
            os.close(fd)

    def write_record(self, record: RunRecord) -> Path:
        """Write ``run.json`` atomically."""
        return write_json(self.record, record.model_dump(mode="json"))

    def read_json(self, path: Path, what: str) -> dict[str, Any]:
        """A JSON file of the run (``summary.json``, ``audit.json``), with a hint when it is missing."""
        require(path.is_file(), f"{self.root}: missing {path.name}; run 'duetfair evaluate {self.root}' first ({what})")
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise DuetfairError(f"{path}: not valid JSON ({exc.msg} at line {exc.lineno})") from None
        except (RecursionError, UnicodeDecodeError):
            raise DuetfairError(f"{path}: not readable JSON (nested too deeply or not UTF-8 text)") from None
        require(isinstance(data, dict), f"{path}: expected a JSON object")
        return data
