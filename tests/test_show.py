"""A technician's diagnose is kept in the local history, and ``posdiag show ID`` prints it again, by
the short id its first line gave (or more of it, or the full id), as diagnose printed it."""

from __future__ import annotations

import json
import os
import re
import time
import uuid

import pytest
from labs.commands import run_cli, run_posdiag
from labs.daemonlab import DaemonProcess
from labs.helpers import wait_for
from posdiag.agent.store import Store
from test_history import fake_report

CJK = re.compile(r"[\u3000-\u9fff\uff00-\uffef]")


@pytest.fixture
def state_config(config_file, tmp_path):
    (tmp_path / "state").mkdir()
    return config_file(memory={"min_available_mb": 1_000_000})  # a fault: memory.exhausted


def test_diagnose_is_kept_and_show_prints_it_again_by_its_short_id(state_config):
    first = run_posdiag("diagnose", "--config", str(state_config))
    assert first.returncode == 2, first.stderr
    phone = first.stdout.splitlines()[0]
    assert re.fullmatch(r"FAULT: .+ · report [0-9a-f]{8} · \d\d:\d\d UTC", phone), phone
    short = re.search(r"report ([0-9a-f]{8})", phone).group(1)
    again = run_posdiag("show", short, "--config", str(state_config))
    assert again.returncode == 2 and again.stdout == first.stdout  # the same text, the same exit code
    rc, out, _ = run_cli("show", short, "--json", "--config", str(state_config))
    report = json.loads(out)
    assert rc == 2 and report["report_id"].startswith(short) and report["trigger"] == "on-demand"
    assert run_cli("show", report["report_id"].upper(), "--config", str(state_config))[0] == 2  # the full id, any case
    history = run_cli("history", "--config", str(state_config))[1]
    assert history.splitlines()[1].split()[-1] == short  # history shows the short id show takes


def _english(*args: str):
    return run_posdiag(*args, env={**{k: v for k, v in os.environ.items() if not k.startswith("LC_")}, "LANG": "C.UTF-8"})


def test_show_of_a_chinese_report_reads_in_english_to_an_english_reader(state_config):
    chinese = run_posdiag("--lang", "zh_CN", "diagnose", "--config", str(state_config)).stdout
    short = re.search(r"报告 ([0-9a-f]{8})", chinese.splitlines()[0]).group(1)
    shown = _english("show", short, "--config", str(state_config))
    text = shown.stdout
    assert shown.returncode == 2 and text.startswith(f"FAULT: The terminal is out of memory · report {short} · ")
    assert "Verdict: FAULT" in text and "Most likely cause: The terminal is out of memory" in text
    assert "  1. Restart the POS application at a quiet moment to release leaked memory." in text  # the steps
    assert re.search(r"^  memory +FAIL ", text, re.M)  # status words in the reader's language
    assert "  - memory: 可用内存仅" in text  # the evidence as the terminal wrote it
    assert text.rstrip().endswith("Findings and evidence are in Simplified Chinese, as the terminal wrote them.")
    # Chinese only where a probe's words are quoted (indented under a heading), never in a heading
    assert not [line for line in text.splitlines() if CJK.search(line) and not line.startswith("  ")]


def test_show_of_an_english_report_reads_in_chinese_to_a_chinese_reader(state_config):
    english = _english("diagnose", "--config", str(state_config)).stdout
    short = re.search(r"report ([0-9a-f]{8})", english.splitlines()[0]).group(1)
    text = run_posdiag("--lang", "zh_CN", "show", short, "--config", str(state_config)).stdout
    assert text.startswith(f"故障：内存溢出：终端内存不足 · 报告 {short} · ")
    assert "结论：故障" in text and "处理步骤：" in text and "  1. 在不忙的时候重启 POS 应用，释放泄漏的内存。" in text
    assert "  - memory: only " in text  # the evidence as the terminal wrote it
    assert text.rstrip().endswith("各项检查的结果和依据保留终端写下时的英文原文。")
    assert "Verdict" not in text and "What to do" not in text and "Restart the POS" not in text
    assert _english("show", short, "--config", str(state_config)).stdout == english  # its own language: as printed


def test_trigger_prints_the_daemon_s_report_in_the_reader_s_language(state_config, tmp_path):
    daemon = DaemonProcess(state_config, tmp_path / "state")  # speaks English: no language configured or set
    try:
        assert wait_for(lambda: len(daemon.reports()) == 1, 30), daemon.output()
        proc = run_posdiag("--lang", "zh_CN", "trigger", "--config", str(state_config))
    finally:
        daemon.stop()
    assert proc.returncode == 2, proc.stderr
    assert proc.stdout.startswith("故障：内存溢出：终端内存不足 · 报告 ") and "处理步骤：" in proc.stdout
    assert proc.stdout.rstrip().endswith("各项检查的结果和依据保留终端写下时的英文原文。")
    assert "What to do" not in proc.stdout


def test_an_unknown_id_exits_3_naming_it(state_config):
    run_cli("diagnose", "--config", str(state_config))
    rc, out, err = run_cli("show", "deadbeef", "--config", str(state_config))
    assert rc == 3 and out == "" and err == "posdiag: no stored report has the id 'deadbeef'\n"
    rc, _, err = run_cli("--lang", "zh_CN", "show", "nosuch!", "--config", str(state_config))
    assert rc == 3 and "没有编号为 'nosuch!' 的已保存报告" in err


def test_no_history_at_all_is_an_unknown_id_too(config_file):
    rc, _, err = run_cli("show", "3f2a9c1d", "--config", str(config_file()))
    assert rc == 3 and "'3f2a9c1d'" in err


def _report_with_id(report_id: str) -> dict:
    report = fake_report(time.time())
    report["report_id"] = report_id
    return report


def test_a_short_id_grows_until_no_other_report_shares_it(tmp_path, config_file):
    config = config_file()
    twins = ["3f2a9c1d-1111-4000-8000-000000000000", "3f2a9c1d-1222-4000-8000-000000000000"]
    alone = str(uuid.uuid4())
    with Store(tmp_path / "state") as store:
        for report_id in [*twins, alone]:
            store.add(_report_with_id(report_id))
        assert [store.short_id(t) for t in twins] == ["3f2a9c1d-11", "3f2a9c1d-12"]
        assert store.short_id(alone) == alone[:8]
    history = run_cli("history", "--config", str(config))[1]
    assert {line.split()[-1] for line in history.splitlines()[1:]} == {"3f2a9c1d-11", "3f2a9c1d-12", alone[:8]}
    rc, _, err = run_cli("show", "3f2a9c1d", "--config", str(config))
    assert rc == 3 and "several" in err and "3f2a9c1d-11" in err and "3f2a9c1d-12" in err
    rc, out, _ = run_cli("show", "3f2a9c1d-12", "--json", "--config", str(config))
    assert rc == 0 and json.loads(out)["report_id"] == twins[1]
    padded = "3f2a9c1d" + " " * 100  # pasted with the rest of a line: the id is found, the quote stays short
    rc, _, err = run_cli("show", padded, "--config", str(config))
    assert rc == 3 and f"{padded[:40]!r} is the start of several" in err and padded[:41] not in err
    rc, _, err = run_cli("show", "f" * 100, "--config", str(config))
    assert rc == 3 and err == f"posdiag: no stored report has the id {'f' * 40!r}\n"
    for blank in ("", "  "):  # the start of every id, taken as none
        assert run_cli("show", blank, "--config", str(config))[2] == f"posdiag: no stored report has the id {blank!r}\n"


@pytest.mark.root
def test_diagnose_on_a_read_only_state_dir_keeps_nothing_and_says_nothing(tmpfs, config_file):
    from labs.helpers import remount_read_only

    state = tmpfs("1m", name="state")
    remount_read_only(state)
    config = config_file(daemon={"state_dir": str(state)})
    proc = run_posdiag("diagnose", "--config", str(config))
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    assert re.match(r"HEALTHY: .+ · report [0-9a-f]{8} · ", proc.stdout)
    assert list(state.iterdir()) == []


def test_diagnose_without_a_state_dir_creates_none(config_file, tmp_path):
    proc = run_posdiag("diagnose", "--config", str(config_file()))
    assert proc.returncode == 0 and proc.stderr == ""
    assert not (tmp_path / "state").exists()  # a diagnosis does not make the daemon's directory


@pytest.mark.root
def test_roots_diagnose_leaves_the_daemons_store_to_the_daemons_user(config_file, tmp_path):
    import os
    import pwd

    nobody = pwd.getpwnam("nobody")
    state = tmp_path / "state"
    state.mkdir()
    os.chown(state, nobody.pw_uid, nobody.pw_gid)
    config = config_file()
    assert run_posdiag("diagnose", "--config", str(config)).returncode == 0
    owners = {p.name: p.stat().st_uid for p in state.iterdir()}
    assert "history.sqlite3" in owners and set(owners.values()) == {nobody.pw_uid}, owners


def test_a_chinese_reports_knowledge_base_words_are_looked_up_again_in_english_and_its_own_words_kept():
    from posdiag.agent.diagnosis import load_knowledge
    from posdiag.agent.reworded import in_language
    from posdiag.core.paths import causes_path

    zh, en = load_knowledge(causes_path(), "zh_CN"), load_knowledge(causes_path(), "en")
    code = next(iter(zh.risks))
    cause = zh.causes["disk.full"]
    report = {"lang": "zh_CN", "diagnosis": {"causes": [
        {"id": "disk.full", "title": cause.title, "explanation": cause.explanation,
         "remediation": [*cause.remediation, "终端自己写的步骤"], "evidence": ["磁盘 /var 只剩 1 MB"]}]},
        "risks": [{"code": code, "title": zh.risks[code].title, "remediation": list(zh.risks[code].remediation)}]}
    told = in_language(report, "en")
    said = told["diagnosis"]["causes"][0]
    assert said["title"] == en.causes["disk.full"].title and said["explanation"] == en.causes["disk.full"].explanation
    assert said["remediation"] == [*en.causes["disk.full"].remediation, "终端自己写的步骤"]  # not the knowledge base's
    assert said["evidence"] == ["磁盘 /var 只剩 1 MB"]  # what the terminal wrote stays as written
    assert told["risks"][0]["title"] == en.risks[code].title
    assert told["risks"][0]["remediation"] == list(en.risks[code].remediation)
    assert report["diagnosis"]["causes"][0]["title"] == cause.title  # the stored report is left as it is
    assert in_language(report, "zh_CN") is report and in_language({**report, "lang": None}, "en")["lang"] is None


def test_a_report_without_a_language_was_written_in_english_and_reads_to_an_english_reader_as_it_is():
    from posdiag.agent.reworded import in_language, written_in

    older = {"diagnosis": {"causes": [{"id": "none", "title": "t", "remediation": []}]}}
    assert written_in(older) == written_in({**older, "lang": None}) == written_in({**older, "lang": ""}) == "en"
    assert written_in({**older, "lang": "zh_CN"}) == "zh_CN"
    assert in_language(older, "en") is older and in_language({**older, "lang": None}, "en")["lang"] is None
