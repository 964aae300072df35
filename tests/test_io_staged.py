"""Staged outputs survive kills (the next run removes a killed writer's stage or completes its
commit), and tables keep text as text (group names NA / None, ids with leading zeros)."""

from __future__ import annotations

import fcntl
import multiprocessing as mp
import os
import signal
from pathlib import Path

import pandas as pd
import pytest

from duetfair.io import COMMIT_PREFIX, STAGE_PREFIX, read_table, recover_stages, staged_outputs


def _write_set(out: Path, tag: str, die_after_moves: int | None = None, die_in_stage: bool = False) -> None:
    """In a child process: stage a.txt, b.txt, sub/c.txt with ``tag`` and commit; optionally kill
    itself (SIGKILL) inside the stage or after that many files were moved in."""
    import duetfair.io as dio

    if die_after_moves is not None:
        real, moves = os.replace, [0]

        def replace(src, dst):  # type: ignore[no-untyped-def]
            if moves[0] == die_after_moves:
                os.kill(os.getpid(), signal.SIGKILL)
            moves[0] += 1
            real(src, dst)

        dio.os.replace = replace  # type: ignore[attr-defined]
    with staged_outputs(out) as stage:
        (stage / "sub").mkdir()
        for name in ("a.txt", "b.txt", "sub/c.txt"):
            (stage / name).write_text(tag)
        if die_in_stage:
            os.kill(os.getpid(), signal.SIGKILL)


def _in_child(*args: object) -> int:
    proc = mp.get_context("fork").Process(target=_write_set, args=args)
    proc.start()
    proc.join(30)
    return int(proc.exitcode or 0)


def _contents(out: Path) -> dict[str, str]:
    """The outputs a reader sees (hidden staging folders left out)."""
    files = (p for p in sorted(out.rglob("*.txt")) if not p.relative_to(out).parts[0].startswith("."))
    return {str(p.relative_to(out)): p.read_text() for p in files}


def test_a_stage_left_by_a_killed_writer_is_removed_by_the_next_run(tmp_path: Path) -> None:
    out = tmp_path / "out"
    _write_set(out, "old")
    assert _in_child(out, "new", None, True) == -signal.SIGKILL
    assert len(list(out.glob(STAGE_PREFIX + "*"))) == 1  # left behind by the kill
    assert set(_contents(out).values()) == {"old"}  # all old
    _write_set(out, "next")
    assert not list(out.glob(".partial-*")) and set(_contents(out).values()) == {"next"}


@pytest.mark.parametrize("moved", [0, 1, 2])
def test_a_commit_cut_by_a_kill_is_completed_by_the_next_run(tmp_path: Path, moved: int) -> None:
    out = tmp_path / "out"
    _write_set(out, "old")
    assert _in_child(out, "new", moved) == -signal.SIGKILL
    assert list(out.glob(COMMIT_PREFIX + "*"))  # the set was complete when the kill came
    recovered = recover_stages(out)
    assert len(recovered) == 1 and _contents(out) == {"a.txt": "new", "b.txt": "new", "sub/c.txt": "new"}
    assert not list(out.glob(".commit-*")) and not list(out.glob(".partial-*"))


def test_a_live_writer_s_stage_is_left_alone(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    live = out / (STAGE_PREFIX + "live")
    live.mkdir()
    fd = os.open(live, os.O_RDONLY)
    fcntl.flock(fd, fcntl.LOCK_EX)
    try:
        pid = os.fork()
        if pid == 0:  # another process runs the next command while this one still writes
            os._exit(0 if recover_stages(out) == [] and live.is_dir() else 1)
        assert os.waitpid(pid, 0)[1] == 0
    finally:
        os.close(fd)
    assert recover_stages(out) == [live] and not live.exists()


def test_a_new_folder_moves_in_whole_and_old_files_are_replaced(tmp_path: Path) -> None:
    out = tmp_path / "out"
    (out / "sub").mkdir(parents=True)
    (out / "sub" / "keep.txt").write_text("kept")
    _write_set(out, "new")
    assert _contents(out) == {"a.txt": "new", "b.txt": "new", "sub/c.txt": "new", "sub/keep.txt": "kept"}


def test_group_names_na_and_none_are_text_and_ids_keep_zeros(tmp_path: Path) -> None:
    (tmp_path / "t.csv").write_text(
        "case_id,region,age,dice\n007,NA,45,0.9\n008,None,NA,nan\n010,EU,n/a,0.7\n011,,50,\n"
    )
    df = read_table(tmp_path / "t.csv", text_columns=["case_id"])
    assert df["case_id"].tolist() == ["007", "008", "010", "011"]
    assert df["region"].tolist()[:3] == ["NA", "None", "EU"] and pd.isna(df["region"].iloc[3])
    assert df["age"].dtype.kind == "f" and df["age"].isna().tolist() == [False, True, True, False]  # numbers
    assert df["dice"].dtype.kind == "f" and df["dice"].isna().sum() == 2
    declared = read_table(tmp_path / "t.csv", missing=["na"])
    assert declared["region"].isna().tolist() == [True, False, False, True]
    assert declared["case_id"].tolist() == [7, 8, 10, 11]  # not an id column here: numbers


def test_excel_and_tab_tables_follow_the_same_rule(tmp_path: Path) -> None:
    frame = pd.DataFrame({"case_id": ["007", "008"], "region": ["NA", "None"], "dice": [0.5, None]})
    frame.to_excel(tmp_path / "t.xlsx", index=False)
    df = read_table(tmp_path / "t.xlsx", text_columns=["case_id"])
    assert df["case_id"].tolist() == ["007", "008"] and df["region"].tolist() == ["NA", "None"]
    (tmp_path / "t.tsv").write_text("case_id\tregion\n007\tNA\n")
    assert read_table(tmp_path / "t.tsv", text_columns=["case_id"]).iloc[0].tolist() == ["007", "NA"]
