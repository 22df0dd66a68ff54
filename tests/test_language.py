"""A technician reads the diagnosis in their language; machines read the same contract in every language.

The language comes from ``--lang``, then ``[terminal] language``, then the locale (LC_ALL, LC_MESSAGES,
LANG). These tests run the real command in a child process on a real fault — a filesystem that is
really full — the way a technician at the till would.
"""

from __future__ import annotations

import json
import os
import re

import pytest
from labs.commands import run_posdiag
from labs.helpers import fill_filesystem
from posdiag.agent.columns import display_width
from posdiag.agent.report import render_text
from posdiag.core import i18n

CJK = re.compile(r"[\u4e00-\u9fff]")


def _in(lang: str | None = None, **extra: str) -> dict[str, str]:
    """The environment of a shell whose locale is ``lang`` (None: no locale variable at all)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LC_ALL", "LC_MESSAGES", "LANG", "LANGUAGE")}
    if lang:
        env["LANG"] = lang
    return {**env, **extra}


@pytest.fixture
def full_disk(tmpfs, config_file):
    """A configuration whose only disk path is a tmpfs that is really full."""
    fs = tmpfs("1m")
    fill_filesystem(fs)

    def make(**terminal: str):
        return str(config_file(disk={"paths": [str(fs)], "min_free_mb": 1}, terminal=terminal))

    return make


def _probe_table(text: str) -> list[str]:
    """One line per probe (a long summary continues on lines of its own, under its column)."""
    return [line for line in text.split("\n\n")[-1].splitlines()[1:] if " ms " in line]


@pytest.mark.root
def test_a_full_disk_reads_in_chinese_under_a_chinese_locale(full_disk):
    run = run_posdiag("diagnose", "--config", full_disk(), env=_in("zh_CN.UTF-8"))
    assert run.returncode == 2, run.stderr
    out = run.stdout
    assert "结论：故障" in out
    assert "最可能的原因：系统故障：POS 需要的硬盘空间已满\n  [disk.full，置信度" in out  # the bracket whole
    steps = out.split("处理步骤：\n")[1].split("\n\n")[0].splitlines()
    assert steps[0].startswith("  1. 释放空间") and all(CJK.search(step) for step in steps)
    why = out.split("依据：\n")[1].split("\n\n")[0]
    assert why.startswith("  - disk：") or why.startswith("  - disk: "), why
    assert CJK.search(why), f"the disk finding is not in Chinese:\n{why}"
    table = _probe_table(out)
    assert any(" 故障 " in line for line in table) and any(" 跳过 " in line for line in table)
    # Columns line up on screen: the "ms" of every probe line ends in the same terminal cell.
    ends = {display_width(line[:line.index(" ms ") + 3]) for line in table}
    assert len(ends) == 1, "\n".join(table)


@pytest.mark.root
def test_lang_en_overrides_a_chinese_locale_and_configuration(full_disk):
    run = run_posdiag("diagnose", "--lang", "en", "--config", full_disk(language="zh_CN"), env=_in("zh_CN.UTF-8"))
    assert run.returncode == 2, run.stderr
    assert "Verdict: FAULT" in run.stdout
    assert "Most likely cause: A filesystem the POS needs is full\n  [disk.full, confidence" in run.stdout
    assert not CJK.search(run.stdout), run.stdout


@pytest.mark.root
def test_the_configured_language_beats_the_locale(full_disk):
    chinese = run_posdiag("diagnose", "--config", full_disk(language="zh_CN"), env=_in("en_US.UTF-8"))
    english = run_posdiag("diagnose", "--config", full_disk(language="en"), env=_in("zh_CN.UTF-8"))
    assert "结论：故障" in chinese.stdout
    assert "Verdict: FAULT" in english.stdout and not CJK.search(english.stdout)


@pytest.mark.root
@pytest.mark.parametrize(("variables", "speaks_chinese"), [
    ({"LC_ALL": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}, True),
    ({"LC_ALL": "en_US.UTF-8", "LANG": "zh_CN.UTF-8"}, False),
    ({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "C"}, True),
    ({}, False),
])
def test_the_locale_variables_decide_in_posix_order(full_disk, variables, speaks_chinese):
    run = run_posdiag("diagnose", "--config", full_disk(), env=_in(None, **variables))
    assert ("结论：故障" in run.stdout) is speaks_chinese, run.stdout


@pytest.mark.root
def test_machine_contracts_do_not_change_with_the_language(full_disk):
    config = full_disk()
    reports = {}
    for lang in ("en", "zh_CN"):
        run = run_posdiag("diagnose", "--json", "--lang", lang, "--config", config)
        assert run.returncode == 2, run.stderr
        reports[lang] = json.loads(run.stdout)
    en, zh = reports["en"], reports["zh_CN"]
    assert (en["lang"], zh["lang"]) == ("en", "zh_CN")
    assert en.keys() == zh.keys()
    assert [c["id"] for c in en["diagnosis"]["causes"]] == [c["id"] for c in zh["diagnosis"]["causes"]] == ["disk.full"]
    assert en["diagnosis"]["verdict"] == zh["diagnosis"]["verdict"] == "fault"
    for a, b in zip(en["probes"], zh["probes"], strict=True):
        assert (a["name"], a["status"], a.keys()) == (b["name"], b["status"], b.keys())
        assert [(f["code"], f["severity"], f["data"].keys()) for f in a["findings"]] == \
               [(f["code"], f["severity"], f["data"].keys()) for f in b["findings"]]
    assert CJK.search(zh["diagnosis"]["causes"][0]["title"]) and not CJK.search(json.dumps(en, ensure_ascii=False))
    nagios = run_posdiag("diagnose", "--format", "nagios", "--lang", "zh_CN", "--config", config).stdout
    assert nagios.startswith("POSDIAG CRITICAL - disk.full (") and CJK.search(nagios)
    prometheus = run_posdiag("diagnose", "--format", "prometheus", "--lang", "zh_CN", "--config", config).stdout
    assert not CJK.search(prometheus.split("# HELP")[0]) and "posdiag_" in prometheus


def test_a_stored_report_is_shown_in_the_reader_s_language_its_findings_as_written():
    report = {"report_id": "3f2a9c1d-0000-4000-8000-000000000000",
              "agent_version": "0.1.0", "lang": "zh_CN", "terminal": {"id": "till-7"}, "started_at": "2026-11-30T12:00:00Z",
              "duration_s": 0.4, "probes": [{"name": "disk", "status": "fail", "duration_s": 0.01, "summary": "硬盘已满"}],
              "diagnosis": {"verdict": "fault", "causes": [{"id": "disk.full", "title": "硬盘空间已满", "confidence": 0.9,
                                                            "evidence": ["disk：硬盘已满"], "remediation": ["释放空间"]}]}}
    text = render_text(report)  # this process speaks English
    assert "Verdict: FAULT" in text and "What to do:" in text and "结论" not in text
    assert "Most likely cause: A filesystem the POS needs is full" in text  # the title by the cause's id, in English
    assert "  - disk：硬盘已满" in text and "  1. 释放空间" in text  # a step the knowledge base does not hold: as written
    assert text.rstrip().endswith("Findings and evidence are in Simplified Chinese, as the terminal wrote them.")
    chinese = render_text(report, t=i18n.translator("zh_CN"))
    assert "结论：故障" in chinese and "Verdict" not in chinese and "原文" not in chinese  # its own language: no note
    older = render_text({k: v for k, v in report.items() if k != "lang"}, t=i18n.translator("zh_CN"))
    assert "结论：故障" in older and older.rstrip().endswith("各项检查的结果和依据保留终端写下时的英文原文。")  # older: English
