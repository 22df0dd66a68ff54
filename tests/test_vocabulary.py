"""One vocabulary: a probe's status, a finding's severity, a verdict and a trigger are the enums of
posdiag.core.vocabulary, spelt there alone. Code that compares a report's ``status`` with ``"fail"``
or starts a sweep with ``trigger="boot"`` keeps working only while the words never change; the
report's schema, which the collector checks every report against, holds the same words."""

from __future__ import annotations

import ast
import json
from pathlib import Path

import pytest
from posdiag.core.paths import report_schema_path
from posdiag.core.vocabulary import Severity, Status, Trigger, Verdict

REPO = Path(__file__).resolve().parent.parent
WORDS = {member.value for enum in (Status, Severity, Verdict, Trigger) for member in enum}
#: where a value of the vocabulary is held: a report's key, a variable or a keyword argument
HOLDERS = {"status", "severity", "verdict", "final_verdict", "trigger", "ran"}


def _words(node: ast.AST) -> list[str]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return [node.value] if node.value in WORDS else []
    if isinstance(node, (ast.Tuple, ast.List, ast.Set)):
        return [w for element in node.elts for w in _words(element)]
    return []


def _holds_a_word(node: ast.AST) -> bool:
    if isinstance(node, ast.Subscript):
        return isinstance(node.slice, ast.Constant) and node.slice.value in HOLDERS
    if isinstance(node, ast.Name):
        return node.id in HOLDERS
    return isinstance(node, ast.Attribute) and node.attr in HOLDERS


def _spelt(node: ast.AST) -> list[tuple[ast.AST, str]]:
    """The words of the vocabulary this node writes out where one is held, each with where it stands."""
    if isinstance(node, ast.Compare):
        sides = [node.left, *node.comparators]
        return [(side, w) for side in sides for w in _words(side)] if any(map(_holds_a_word, sides)) else []
    if isinstance(node, ast.keyword):
        return [(node.value, w) for w in _words(node.value)] if node.arg in HOLDERS else []
    if isinstance(node, ast.arguments):
        named = [*node.posonlyargs, *node.args][len(node.posonlyargs) + len(node.args) - len(node.defaults):]
        pairs = [*zip(named, node.defaults, strict=True), *zip(node.kwonlyargs, node.kw_defaults, strict=True)]
        return [(d, w) for a, d in pairs if d is not None and a.arg in HOLDERS for w in _words(d)]
    return []


def spelt_words(root: Path = REPO) -> list[str]:
    """``p["status"] == "fail"``, ``trigger in ("event", "remote")``, ``run_sweep(..., trigger="boot")``
    and ``def f(trigger="on-demand")``: a word of the vocabulary written out where it is held, instead
    of its enum member. (A dict's ``"status"`` is left alone: the collector's health answer has one.)"""
    found = []
    for folder in ("core", "probes", "agent", "collector"):
        for path in sorted((root / folder).rglob("*.py")):
            if path == root / "core" / "vocabulary.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                found += [f"{path.relative_to(root)}:{at.lineno}: {w!r}" for at, w in _spelt(node)]
    return found


def test_no_module_spells_a_word_of_the_vocabulary_where_one_is_held():
    assert spelt_words() == []


def test_a_status_compared_with_a_literal_is_found(tmp_path: Path):
    for folder in ("core", "probes", "agent", "collector"):
        (tmp_path / folder).mkdir()
    (tmp_path / "agent" / "f.py").write_text(
        'def f(p, trigger="on-demand"):\n    run(trigger="boot")\n    row = {"name": "ok"}\n'
        '    return p["status"] == "fail" or trigger in ("event", "x") or p["name"] == "ok"\n')
    assert sorted(spelt_words(tmp_path)) == ["agent/f.py:1: 'on-demand'", "agent/f.py:2: 'boot'",
                                             "agent/f.py:4: 'event'", "agent/f.py:4: 'fail'"]


def _enums(node: object, key: str) -> list[list[str]]:
    """Every ``{"enum": [...]}`` under a property named ``key``, anywhere in the schema."""
    found = []
    if isinstance(node, dict):
        for name, value in node.items():
            if name == key and isinstance(value, dict) and "enum" in value:
                found.append(value["enum"])
            found += _enums(value, key)
    elif isinstance(node, list):
        for value in node:
            found += _enums(value, key)
    return found


@pytest.mark.parametrize(("key", "enum"), [("status", Status), ("from", Status), ("to", Status),
                                           ("severity", Severity), ("verdict", Verdict),
                                           ("final_verdict", Verdict), ("trigger", Trigger)])
def test_the_reports_schema_holds_the_vocabularys_words(key, enum):
    schema = json.loads(report_schema_path().read_text(encoding="utf-8"))
    found = _enums(schema, key)
    assert found and all(words == [member.value for member in enum] for words in found), found


def test_the_fleets_states_are_the_verdicts_and_silent_and_revoked():
    from posdiag.collector.storage.fleet import STATES

    assert set(STATES) == {v.value for v in Verdict} | {"silent", "revoked"} and len(STATES) == 5
