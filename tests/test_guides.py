"""The guides quote what posdiag prints: every line of every block marked ``<!-- output: NAME -->`` in
docs/technician.md and docs/commands.md (English), docs/technician.zh_CN.md and docs/language.md
(Chinese) is held to the real output of that command on a till like the guide's (tests/labs/till.py):
terminal lane-03 of store-042 whose card reader stops answering and comes back, whose disk is full,
or which has several faults at once.

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
#: every page that quotes output, by the language its examples are in
QUOTING = {"en": [GUIDES["en"], REPO / "docs" / "commands.md"], "zh_CN": [GUIDES["zh_CN"], REPO / "docs" / "language.md"]}
BLOCK = re.compile(r"<!-- output: ([\w-]+) -->\n```\n(.*?)\n```", re.S)


def normalised(line: str) -> str:
    line = re.sub(r"/dev/[\w/]+", "/dev/X", line)
    line = re.sub(r"\b(?:[0-9a-f]{8}|(?=[0-9a-f]*\d)[0-9a-f]{9,})\b", "ID", line)
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
def test_every_quoted_line_of_the_guides_is_what_posdiag_prints(lang, tmp_path):
    assert {name for name, _ in quoted_blocks(GUIDES[lang])} >= {"diagnose", "diagnose-healthy", "history", "watch",
                                                                 "watch-screen", "several-faults"}
    blocks = [(page.name, name, quoted) for page in QUOTING[lang] for name, quoted in quoted_blocks(page)]
    assert {page for page, _, _ in blocks} == {page.name for page in QUOTING[lang]}  # each page holds some
    printed = outputs(tmp_path, lang)
    wrong = {f"{page}: {name}": missing(quoted, printed[name]) for page, name, quoted in blocks}
    wrong = {where: lines for where, lines in wrong.items() if lines}
    assert not wrong, f"the pages quote lines posdiag does not print: {wrong}\n\n" + "\n".join(
        f"--- {where} printed:\n{printed[where.split(': ')[1]]}" for where in wrong)


def test_a_report_id_of_letters_only_is_still_an_id():
    printed = "kept in the history: posdiag show bdfbeafa\n"
    assert missing(["kept in the history: posdiag show 25cc5e47"], printed) == []


def test_a_changed_word_in_a_quoted_line_is_caught():
    printed = "Most likely: No terminal-side fault found  [none, confidence 95%]\n"
    assert missing(["Most likely: No terminal-side fault found  [none, confidence 97%]"], printed) == []
    assert missing(["Most likely cause: No terminal-side fault found  [none, confidence 95%]"], printed) != []
