"""The knowledge base's frozen twin is used only while it matches the TOML's bytes, and never hides a
broken or missing TOML."""

from __future__ import annotations

import json

import pytest
import tomllib
from posdiag.core import frozen
from posdiag.core.paths import causes_path

DOC = 'title = "one"\n[[causes]]\nid = "a"\n'


def test_frozen_twin_holds_what_parsing_the_toml_gives(tmp_path):
    source = tmp_path / "causes.toml"
    source.write_text(DOC, encoding="utf-8")
    twin = frozen.freeze(source)
    assert twin == tmp_path / "causes.frozen.json"
    assert json.loads(twin.read_text(encoding="utf-8"))["data"] == tomllib.loads(DOC)
    assert frozen.load_toml(source) == tomllib.loads(DOC)


def test_frozen_twin_is_read_instead_of_the_toml_while_it_matches(tmp_path):
    source = tmp_path / "causes.toml"
    source.write_text(DOC, encoding="utf-8")
    twin = frozen.freeze(source)
    document = json.loads(twin.read_text(encoding="utf-8"))
    document["data"]["title"] = "from the twin"
    twin.write_text(json.dumps(document), encoding="utf-8")
    assert frozen.load_toml(source)["title"] == "from the twin"


@pytest.mark.parametrize("edit", ['title = "two"\n[[causes]]\nid = "a"\n',   # same size, other bytes
                                  DOC + "# a comment\n"])                    # only longer
def test_a_toml_edited_after_the_build_is_parsed_not_taken_from_its_stale_twin(tmp_path, edit):
    source = tmp_path / "causes.toml"
    source.write_text(DOC, encoding="utf-8")
    frozen.freeze(source)
    source.write_text(edit, encoding="utf-8")
    assert frozen.load_toml(source) == tomllib.loads(edit)


@pytest.mark.parametrize("garbage", [b"", b"{not json", b"[1, 2]", b'{"source": 1, "data": {}}',
                                     b'\xff\xfe'])
def test_an_unreadable_twin_falls_back_to_the_toml(tmp_path, garbage):
    source = tmp_path / "causes.toml"
    source.write_text(DOC, encoding="utf-8")
    frozen.twin_of(source).write_bytes(garbage)
    assert frozen.load_toml(source) == tomllib.loads(DOC)


def test_a_broken_toml_is_refused_even_beside_a_twin_made_before_it_broke(tmp_path):
    source = tmp_path / "causes.toml"
    source.write_text(DOC, encoding="utf-8")
    frozen.freeze(source)
    source.write_text("id = ", encoding="utf-8")
    with pytest.raises(tomllib.TOMLDecodeError):
        frozen.load_toml(source)
    source.unlink()
    with pytest.raises(FileNotFoundError):
        frozen.load_toml(source)


def test_toml_dates_have_no_json_form_and_are_refused_at_build(tmp_path):
    source = tmp_path / "causes.toml"
    source.write_text("when = 2026-12-06\n", encoding="utf-8")
    with pytest.raises(TypeError):
        frozen.freeze(source)


def test_the_installed_knowledge_base_has_a_fresh_twin():
    """The editable install (and the wheel, see test_cli) froze the shipped causes.toml: the start-up
    saving is real only if the twin matches."""
    twin = json.loads(frozen.twin_of(causes_path()).read_text(encoding="utf-8"))
    assert twin["data"] == tomllib.loads(causes_path().read_text(encoding="utf-8"))
    assert frozen.load_toml(causes_path()) == twin["data"]


def test_the_twin_keeps_chinese_text_as_utf_8_not_as_escapes(tmp_path):
    """The twin is read at every start: Chinese titles as UTF-8 (3 bytes a character), not as
    six-byte \\u escapes that make it larger to read and parse."""
    source = tmp_path / "causes.toml"
    source.write_text('[[causes]]\nid = "disk.full"\n[causes.zh_CN]\ntitle = "磁盘已满"\n', encoding="utf-8")
    text = frozen.freeze(source).read_text(encoding="utf-8")
    assert '"title":"磁盘已满"' in text and "\\u" not in text
    assert frozen.load_toml(source)["causes"][0]["zh_CN"]["title"] == "磁盘已满"
