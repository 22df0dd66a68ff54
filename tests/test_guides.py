"""The technician's guides quote what posdiag prints: every line of every block marked
``<!-- output: NAME -->`` in docs/technician.md (English) and docs/technician.zh_CN.md (Chinese) is
held to the real output of that command on a till like the guide's (tests/labs/till.py): terminal
lane-03 of store-042 whose card reader stops answering and comes back.

A quoted line must appear in the real output, in the guide's order. Times, durations, counts and
report ids differ from run to run, so digits and ids are compared as placeholders, runs of spaces as
one, and any device path as ``/dev/X`` (the guide shows a reader on /dev/ttyUSB0, the test has a
pty); ``...`` or ``…`` in a quoted line stands for anything, and alone on a line for lines left out.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from labs import REPO
from labs.till import outputs

GUIDES = {"en": REPO / "docs" / "technician.md", "zh_CN": REPO / "docs" / "technician.zh_CN.md"}
BLOCK = re.compile(r"<!-- output: ([\w-]+) -->\n```\n(.*?)\n```", re.S)


def normalised(line: str) -> str:
    line = re.sub(r"/dev/[\w/]+", "/dev/X", line)
    line = re.sub(r"\b(?=[0-9a-f]*\d)[0-9a-f]{8,}\b", "ID", line)
    line = re.sub(r"\d+", "0", line)
    return " ".join(line.split())


def pattern(quoted: str) -> re.Pattern[str]:
    parts = re.split(r"\.\.\.|…", normalised(quoted))
    return re.compile(".*".join(re.escape(part) for part in parts))


def quoted_blocks(guide: Path) -> list[tuple[str, list[str]]]:
    return [(name, body.splitlines()) for name, body in BLOCK.findall(guide.read_text(encoding="utf-8"))]


def missing(quoted: list[str], printed: str) -> list[str]:
    """The quoted lines not found in ``printed`` in their order (none when the guide is right)."""
    lines = [normalised(line) for line in printed.splitlines()]
    at, lost = 0, []
    for line in quoted:
        if not line.strip() or line.strip() in ("...", "…"):
            continue
        want = pattern(line)
        found = next((i for i in range(at, len(lines)) if want.fullmatch(lines[i])), None)
        if found is None:
            lost.append(line)
        else:
            at = found + 1
    return lost


@pytest.mark.parametrize("lang", GUIDES)
def test_every_quoted_line_of_the_guide_is_what_posdiag_prints(lang, tmp_path):
    blocks = quoted_blocks(GUIDES[lang])
    assert {name for name, _ in blocks} >= {"diagnose", "diagnose-healthy", "history", "watch", "watch-screen"}
    printed = outputs(tmp_path, lang)
    wrong = {name: missing(quoted, printed[name]) for name, quoted in blocks}
    wrong = {name: lines for name, lines in wrong.items() if lines}
    assert not wrong, f"{GUIDES[lang].name} quotes lines posdiag does not print: {wrong}\n\n" + "\n".join(
        f"--- {name} printed:\n{printed[name]}" for name in wrong)


def test_a_changed_word_in_a_quoted_line_is_caught():
    printed = "Most likely: No terminal-side fault found  [none, confidence 95%]\n"
    assert missing(["Most likely: No terminal-side fault found  [none, confidence 97%]"], printed) == []
    assert missing(["Most likely cause: No terminal-side fault found  [none, confidence 95%]"], printed) != []
