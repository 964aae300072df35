"""duetfair.io: tables in, atomic files out with ordinary permissions."""

import os
import stat

import pytest

from duetfair.errors import DuetfairError
from duetfair.io import read_json, read_table, write_json, write_text


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


def test_read_json_gives_one_line_errors(tmp_path):
    good = tmp_path / "good.json"
    good.write_text('{"a": [1, 2], "b": null}')
    assert read_json(good) == {"a": [1, 2], "b": None}
    cases = {
        "dup.json": ('{"a": 1, "a": 2}', "key 'a' is given twice"),
        "bad.json": ("{not json", "not valid JSON"),
        "deep.json": ("[" * 100_000 + "]" * 100_000, "nested too deeply to be a spec"),
    }
    for name, (text, message) in cases.items():
        (tmp_path / name).write_text(text)
        with pytest.raises(DuetfairError, match=message) as err:
            read_json(tmp_path / name, "a spec")
        assert str(tmp_path / name) in str(err.value) and "\n" not in str(err.value)
    with pytest.raises(DuetfairError, match="file not found; expected a spec"):
        read_json(tmp_path / "missing.json", "a spec")
