"""posdiag writes and reads one time format, ``2026-11-29T10:15:02Z``, and spells it in one place:
:mod:`posdiag.core.timefmt`. A second spelling drifts (a reader that takes month 13, a writer that
forgets the ``Z``) where the one in core is held by its tests."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest
from posdiag.core.timefmt import parse_utc_iso, utc_iso

REPO = Path(__file__).resolve().parent.parent
#: posdiag's own format, as strftime spells it or as a pattern reads it (a POS log's foreign formats,
#: without the trailing Z, are the txlog probe's to read)
SPELLED = re.compile(r":%SZ|\\d\{2\}Z|\\d\\dZ|\[0-9\]\{2\}Z")


def spellings(root: Path = REPO) -> list[str]:
    found = []
    for folder in ("core", "probes", "agent", "collector"):
        for path in sorted((root / folder).rglob("*.py")):
            if path == root / "core" / "timefmt.py":
                continue
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                if isinstance(node, ast.Constant) and isinstance(node.value, str) and SPELLED.search(node.value):
                    found.append(f"{path.relative_to(root)}:{node.lineno}: {node.value!r}")
    return found


def test_the_time_format_is_spelt_in_core_timefmt_alone():
    assert spellings() == []


def test_a_second_spelling_of_the_format_is_found(tmp_path: Path):
    for folder in ("core", "probes", "agent", "collector"):
        (tmp_path / folder).mkdir()
    (tmp_path / "probes" / "cert.py").write_text('def f(when):\n    return when.strftime("%Y-%m-%dT%H:%M:%SZ")\n')
    stamp = r'STAMP = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$")'
    (tmp_path / "collector" / "api.py").write_text(f"import re\n{stamp}\n")
    assert [line.split(":")[0] for line in spellings(tmp_path)] == ["probes/cert.py", "collector/api.py"]


@pytest.mark.parametrize("text", ["2026-13-01T10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-29T25:00:00Z",
                                  "2026-11-29T10:15:02Z\n", "2026-11-29 10:15:02Z", "2026-11-29T10:15:02"])
def test_the_format_reads_only_real_instants_written_in_full(text):
    with pytest.raises(ValueError):
        parse_utc_iso(text)


def test_what_the_format_writes_it_reads_back():
    assert utc_iso(1795947302) == "2026-11-29T10:15:02Z" and parse_utc_iso("2026-11-29T10:15:02Z") == 1795947302
