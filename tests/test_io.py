"""duetfair.io: tables in, atomic files out with ordinary permissions."""

import os
import stat

import pytest

from duetfair.errors import DuetfairError
from duetfair.io import read_table, write_json, write_text


def test_written_files_have_ordinary_permissions(tmp_path):
    old = os.umask(0o022)
    try:
        for path in (write_text(tmp_path / "report.html", "<html></html>"), write_json(tmp_path / "a.json", {"x": 1})):
            assert stat.S_IMODE(path.stat().st_mode) == 0o644
    finally:
        os.umask(old)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left


@pytest.mark.parametrize("name", ["meta.tab", "meta.tsv", "meta.csv"])
def test_tab_separated_tables_are_read_whatever_the_suffix(tmp_path, name):
    (tmp_path / name).write_text('"lesion_id"\t"image_id"\t"age"\nHAM_1\tISIC_1\t45\n')
    table = read_table(tmp_path / name)
    assert list(table.columns) == ["lesion_id", "image_id", "age"] and table.loc[0, "age"] == 45


def test_bad_tables_give_one_line_errors(tmp_path):
    (tmp_path / "empty.csv").write_text("")
    (tmp_path / "folder").mkdir()
    for name, match in (("missing.csv", "does not exist"), ("empty.csv", "empty"), ("folder", "not a file")):
        with pytest.raises(DuetfairError, match=match) as info:
            read_table(tmp_path / name)
        assert "\n" not in str(info.value)
