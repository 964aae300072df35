"""The run folder: one lock per writer, stale locks recovered, a dead run reads as interrupted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from duetfair.errors import DuetfairError
from duetfair.rundir import RunDir, RunRecord

HOLD = (
    "import sys, time\nfrom duetfair.rundir import RunDir\n"
    "with RunDir(sys.argv[1]).lock('duetfair train'):\n    print('locked', flush=True)\n    time.sleep(60)\n"
)


def _record(status: str = "running") -> RunRecord:
    return RunRecord(
        status=status,
        name="r",
        model="vit_seg",
        objective="erm",
        select="overall",
        num_classes=2,
        in_channels=1,
        spatial_dims=2,
        image_shape=[1, 8, 8],
        group_names=["a", "b"],
        num_groups=2,
        config_hash="x",
        pid=12345,
        host="h",
    )


def test_second_writer_is_refused_naming_the_holder(tmp_path: Path) -> None:
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(tmp_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        run = RunDir(tmp_path)
        assert run.locked()
        with pytest.raises(DuetfairError, match=rf"in use by 'duetfair train' \(PID {holder.pid} on "):
            with run.lock("duetfair train"):
                pass
        run.write_record(_record("running"))
        assert run.read_record().status == "running"  # its process is alive
    finally:
        holder.kill()
        holder.wait()
    # killed with SIGKILL: the kernel dropped the lock; the folder is usable again and the run reads
    # as interrupted, and temporary files the killed writer left are cleaned up
    assert not run.locked() and run.read_record().status == "interrupted"
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "checkpoints" / ".last.pt.abc.tmp").write_bytes(b"partial")
    with run.lock("duetfair train"):
        assert json.loads(run.lock_file.read_text())["pid"] == os.getpid()
    assert not list((tmp_path / "checkpoints").glob(".*.tmp"))


def test_stale_lock_file_without_a_holder_is_recovered(tmp_path: Path) -> None:
    run = RunDir(tmp_path)
    run.lock_file.write_text(json.dumps({"pid": 999999, "host": "gone", "command": "duetfair train"}))
    assert not run.locked()
    with run.lock("duetfair evaluate"):
        assert run.locked()


def test_the_first_reader_rewrites_a_dead_run_as_interrupted(tmp_path: Path) -> None:
    """After kill -9 the killed process cannot update run.json; whoever reads it next does."""
    run = RunDir(tmp_path / "run")
    run.root.mkdir()
    run.write_record(_record("running"))
    assert json.loads(run.record.read_text())["status"] == "running"
    assert run.read_record().status == "interrupted"
    assert json.loads(run.record.read_text())["status"] == "interrupted"  # on disk too
    with run.lock("duetfair train"):  # a live writer: its running run.json is left as it is
        run.write_record(_record("running"))
        assert run.read_record().status == "running"
        assert json.loads(run.record.read_text())["status"] == "running"
