"""List inputs (classifier/intake/lists.py): .txt lists and CSVs of paths, expanded entry by entry."""

from __future__ import annotations

from pathlib import Path

import pytest

from classifier.intake.inputs import expand_inputs
from classifier.intake.items import FILE, INVALID, URL
from classifier.intake.lists import ListError
from conftest import make_tiny_image


@pytest.fixture
def tree(tmp_path) -> Path:
    """photos/a.jpg, photos/sub/b.jpg (and a note, skipped), loose.jpg, and a lists/ folder."""
    (tmp_path / "photos" / "sub").mkdir(parents=True)
    (tmp_path / "lists").mkdir()
    for name in ("photos/a.jpg", "photos/sub/b.jpg", "loose.jpg"):
        make_tiny_image("red", size=32).save(tmp_path / name)
    (tmp_path / "photos" / "notes.txt").write_text("a note, not a list: inside folders it is skipped")
    return tmp_path


def paths(inputs: list, **options) -> list[str]:
    return [item.path for item in expand_inputs(inputs, lists=True, **options).items]


def test_a_txt_list_expands_each_line_in_order_relative_to_its_folder(tree):
    listed = tree / "lists" / "season.txt"
    listed.write_text(
        "# season 1, camera 4\n\n"
        "../loose.jpg\n"
        "   ../photos   \n"
        "  # an indented comment\n"
        f"{tree / 'missing.jpg'}\n"
        "https://example.org/trap/x.jpg\n"
        "../loose.jpg\n"  # listed twice: taken once
    )
    expansion = expand_inputs([listed], lists=True)

    lists = tree / "lists"
    assert [i.path for i in expansion.items] == [
        str(lists / "../loose.jpg"),
        str(lists / "../photos/a.jpg"),
        str(lists / "../photos/sub/b.jpg"),
        str(tree / "missing.jpg"),
        "https://example.org/trap/x.jpg",
    ]
    assert [i.kind for i in expansion.items] == [FILE, FILE, FILE, INVALID, URL]
    assert expansion.items[3].error == "missing.jpg: file not found; check the path."
    assert expansion.skipped == {"files without an image extension": 1}  # the folder's rules hold


def test_a_csv_takes_its_path_column_whatever_its_case(tree):
    table = tree / "lists" / "picked.csv"
    table.write_text("\ufeffsite,FilePath,note\nA,../loose.jpg,x\nB,,empty cell\nC,../photos/sub,\n")
    assert paths([table]) == [str(table.parent / "../loose.jpg"), str(table.parent / "../photos/sub/b.jpg")]


def test_an_entry_missing_beside_the_list_is_taken_as_given(tree, monkeypatch):
    """As `predict --out runs/labels.csv` writes it: paths relative to where it ran, not to the CSV."""
    monkeypatch.chdir(tree)
    (tree / "lists" / "labels.csv").write_text("path,label\nphotos/a.jpg,red\nloose.jpg,red\n")
    (tree / "lists" / "loose.jpg").write_bytes(b"beside the list: this one wins")
    assert paths(["lists/labels.csv"]) == ["photos/a.jpg", "lists/loose.jpg"]


def test_a_csv_without_a_path_column_is_one_line_naming_its_columns(tree):
    table = tree / "species.csv"
    table.write_text("label,count\nzebra,3\n")
    with pytest.raises(ListError) as raised:
        expand_inputs([table], lists=True)
    message = str(raised.value)
    assert "\n" not in message
    assert message == (
        f"{table}: a CSV of photos needs a column named path, file, filepath or url; "
        "its columns are: label, count."
    )


def test_lists_do_not_nest(tree):
    outer = tree / "outer.txt"
    (tree / "inner.csv").write_text("path\nloose.jpg\n")
    outer.write_text("outer.txt\ninner.csv\nhttps://example.org/more.txt\nloose.jpg\n")
    items = expand_inputs([outer], lists=True).items

    assert [i.path for i in items][-1] == str(tree / "loose.jpg")
    assert [i.kind for i in items] == [INVALID, INVALID, INVALID, FILE]
    assert all("lists cannot nest" in (i.error or "") for i in items[:3])


def test_a_photo_inside_a_zip_cannot_be_listed_and_says_so(tree):
    from zipfile import ZipFile

    with ZipFile(tree / "card.zip", "w") as archive:
        archive.write(tree / "loose.jpg", "DCIM/1.jpg")
    (tree / "zipped.txt").write_text("card.zip/DCIM/1.jpg\n")
    (item,) = expand_inputs([tree / "zipped.txt"], lists=True).items
    assert item.kind == INVALID and "name the .zip" in (item.error or "")


def test_without_lists_a_txt_is_a_file_as_before(tree):
    """The app expands uploads without `lists`: an uploaded list must not reach the server's files."""
    listed = tree / "upload.txt"
    listed.write_text("/etc/hostname\n")
    (item,) = expand_inputs([listed]).items
    assert item.kind == FILE and item.path == str(listed)
