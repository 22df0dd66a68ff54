"""History in SQLite (retention, durability) and the trends computed from it."""

from __future__ import annotations

import copy
import json
import os
import subprocess
import sys
import time
import uuid

import pytest
from labs.commands import REPO, run_cli
from posdiag.agent.columns import display_width
from posdiag.agent.store import Store
from posdiag.core.timefmt import utc_iso


def fake_report(started: float, *, pos_rss_mb: float | None = None, tcp: str = "ok", size: int = 0) -> dict:
    probes = [{"name": "memory", "status": "ok", "duration_s": 0.01, "summary": "", "findings": [],
               "metrics": {"pos_rss_mb": pos_rss_mb, "padding": "x" * size}},
              {"name": "network.tcp", "status": tcp, "duration_s": 0.01, "summary": "", "findings": [], "metrics": {}}]
    return {"schema": "posdiag.report/1", "report_id": str(uuid.uuid4()), "trigger": "schedule",
            "started_at": utc_iso(started), "duration_s": 0.1, "terminal": {"id": "t", "site": "", "hostname": "h"},
            "agent_version": "0.1.0", "probes": probes,
            "diagnosis": {"verdict": "healthy", "causes": [{"id": "none", "title": "", "confidence": 0.95,
                                                            "evidence": [], "remediation": ["x"]}]}}


def test_reports_survive_reopening_and_duplicates_are_ignored(tmp_path):
    report = fake_report(time.time())
    with Store(tmp_path) as store:
        store.add(report)
        store.add(copy.deepcopy(report))
    with Store(tmp_path) as store:
        assert store.count() == 1
        assert store.get(report["report_id"]) == report


def test_retention_drops_reports_older_than_the_age_limit(tmp_path):
    now = time.time()
    with Store(tmp_path, max_age_days=1) as store:
        store.add(fake_report(now - 3 * 86400))
        store.add(fake_report(now - 3600))
        assert [round((now - r.started_at) / 3600) for r in store.list()] == [1]


def test_retention_drops_the_oldest_when_the_history_outgrows_its_size(tmp_path):
    now = time.time()
    with Store(tmp_path, max_mb=0.05) as store:  # ~52 kB
        for i in range(10):
            store.add(fake_report(now - 600 + i * 60, size=10_000))
        kept = store.list()
    assert 3 <= len(kept) <= 5
    assert kept[0].started_at > kept[-1].started_at  # the newest are the ones kept


@pytest.fixture
def statements(monkeypatch):
    """Every SQL statement the store's connections run (a trace on each connection it opens)."""
    import sqlite3

    from posdiag.agent import store as store_module

    seen: list[str] = []
    real_connect = sqlite3.connect

    def traced(*args, **kwargs):
        db = real_connect(*args, **kwargs)
        db.set_trace_callback(seen.append)
        return db

    monkeypatch.setattr(store_module.sqlite3, "connect", traced)
    return seen


def test_a_history_that_fits_its_limit_is_not_read_whole_to_measure_it(tmp_path, statements):
    """Measuring the bodies reads every one (40 ms for a full history, on every report kept): only a
    store whose files outgrow the limit is measured, and then the oldest still go."""
    now = time.time()
    with Store(tmp_path, max_mb=1) as store:
        for i in range(5):
            store.add(fake_report(now - 600 + i * 60, size=10_000))
        assert store.count() == 5
    assert not [sql for sql in statements if "SUM(LENGTH(body))" in sql]
    with Store(tmp_path, max_mb=0.05) as store:  # the same store, now over its limit
        store.add(fake_report(now, size=10_000))
        assert 3 <= store.count() <= 5
    assert [sql for sql in statements if "SUM(LENGTH(body))" in sql]


def test_a_technicians_report_is_kept_without_reading_the_whole_store_but_the_daemons_store_is_checked(
        tmp_path, statements, config_file):
    """``diagnose`` keeps its report without PRAGMA quick_check, which reads every page of the file
    (25 ms for a full history, seconds from a cold disk); the daemon's store is checked when opened."""
    from posdiag.agent.store import keep
    from posdiag.core.settings import load

    settings = load(str(config_file(daemon={"state_dir": str(tmp_path)})))
    assert keep(settings, fake_report(time.time()))
    assert not [sql for sql in statements if "quick_check" in sql]
    Store.for_daemon(settings).close()
    assert [sql for sql in statements if "quick_check" in sql]


def test_a_technicians_report_kept_in_a_damaged_store_heals_it(tmp_path, config_file):
    """Unchecked on opening, a damaged store is still healed by the write that meets the damage."""
    from posdiag.agent.store import keep
    from posdiag.core.settings import load

    settings = load(str(config_file(daemon={"state_dir": str(tmp_path)})))
    (tmp_path / "history.sqlite3").write_bytes(b"SQLite format 3\x00" + os.urandom(8192))
    report = fake_report(time.time())
    assert keep(settings, report)
    with Store(tmp_path) as store:
        assert store.get(report["report_id"])["report_id"] == report["report_id"]
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith("history.sqlite3.corrupt-")]  # moved aside


def test_database_uses_wal_and_full_sync(tmp_path):
    with Store(tmp_path) as store:
        assert store.db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert store.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


def history_with(tmp_path, reports: list[dict]) -> None:
    with Store(tmp_path / "state") as store:
        for r in reports:
            store.add(r)


def test_steadily_growing_pos_memory_is_a_leak(config_file, tmp_path):
    now = time.time()
    history_with(tmp_path, [fake_report(now - 3600 + i * 600, pos_rss_mb=200 + 40 * i) for i in range(6)])
    rc, out, _ = run_cli("diagnose", "--json", "--only", "trends", "--config", str(config_file()))
    report = json.loads(out)
    trend = report["probes"][0]
    codes = [f["code"] for f in trend["findings"]]
    assert "trend.pos_rss_growing" in codes
    assert trend["metrics"]["pos_rss_mb_per_hour"] > 200
    # with no memory shortage seen now, the growth alone is no present cause (it may be a risk ahead)
    assert "memory.exhausted" not in {c["id"] for c in report["diagnosis"]["causes"]}


def test_stable_pos_memory_is_not_a_leak(config_file, tmp_path):
    now = time.time()
    history_with(tmp_path, [fake_report(now - 3600 + i * 600, pos_rss_mb=300 + (i % 2) * 3) for i in range(6)])
    rc, out, _ = run_cli("diagnose", "--json", "--only", "trends", "--config", str(config_file()))
    assert json.loads(out)["probes"][0]["status"] == "ok"


def test_payment_path_failing_in_some_sweeps_is_intermittent(config_file, tmp_path):
    now = time.time()
    history_with(tmp_path, [fake_report(now - 3600 + i * 600, tcp="fail" if i in (1, 4) else "ok") for i in range(6)])
    rc, out, _ = run_cli("diagnose", "--json", "--only", "trends", "--config", str(config_file()))
    report = json.loads(out)
    finding = next(f for f in report["probes"][0]["findings"] if f["code"] == "trend.intermittent_tcp")
    assert finding["data"]["failed"] == 2 and finding["data"]["sweeps"] == 6
    assert report["diagnosis"]["causes"][0]["id"] == "network.degraded"


def trend_codes(config_file, tmp_path, reports: list[dict]) -> list[str]:
    history_with(tmp_path, reports)
    rc, out, _ = run_cli("diagnose", "--json", "--only", "trends", "--config", str(config_file()))
    return [f["code"] for f in json.loads(out)["probes"][0]["findings"]]


@pytest.mark.parametrize(("sweeps", "intermittent"), [
    ("ok ok fail ok ok", True), ("ok ok fail ok ok ok", False), ("fail fail fail fail fail", False),
    ("ok fail ok ok", True), ("ok fail ok", False)],
    ids=["1-in-5-is-the-edge", "1-in-6-is-below-it", "always-failing-is-not-on-and-off", "4-sweeps-are-enough",
         "3-sweeps-are-too-few"])
def test_a_layer_is_intermittent_from_one_failure_in_five_sweeps(config_file, tmp_path, sweeps, intermittent):
    now = time.time()
    reports = [fake_report(now - 3600 + i * 600, tcp=status) for i, status in enumerate(sweeps.split())]
    assert ("trend.intermittent_tcp" in trend_codes(config_file, tmp_path, reports)) is intermittent


@pytest.mark.parametrize(("points", "leak"), [(4, True), (3, False)])
def test_memory_growth_is_judged_from_four_sweeps(config_file, tmp_path, points, leak):
    now = time.time()
    reports = [fake_report(now - 3600 + i * 600, pos_rss_mb=200 + 40 * i) for i in range(points)]
    assert ("trend.pos_rss_growing" in trend_codes(config_file, tmp_path, reports)) is leak


@pytest.mark.parametrize(("first_mb", "last_mb", "leak"), [(50, 70, True), (10, 14.5, False), (500, 620, True),
                                                        (500, 580, False)],
                         ids=["13-mb-an-hour", "3-mb-an-hour", "24-percent-growth", "16-percent-growth"])
def test_a_leak_needs_five_mb_an_hour_and_a_fifth_more_memory(config_file, tmp_path, first_mb, last_mb, leak):
    """Steady growth over an hour and a half: at least 5 MB/h and at least 20 % over the window are a leak."""
    now = time.time()
    reports = [fake_report(now - 5400 + i * 1080, pos_rss_mb=first_mb + (last_mb - first_mb) * i / 5) for i in range(6)]
    assert ("trend.pos_rss_growing" in trend_codes(config_file, tmp_path, reports)) is leak


def test_memory_that_grows_but_jumps_about_is_not_a_steady_leak(config_file, tmp_path):
    """Enough growth and slope, but no steady line (R² well under 0.8): a busy day, not a leak."""
    now = time.time()
    sizes = [200, 420, 190, 430, 210, 440]
    history_with(tmp_path, [fake_report(now - 3600 + i * 600, pos_rss_mb=mb) for i, mb in enumerate(sizes)])
    rc, out, _ = run_cli("diagnose", "--json", "--only", "trends", "--config", str(config_file()))
    trend = json.loads(out)["probes"][0]
    assert "trend.pos_rss_growing" not in [f["code"] for f in trend["findings"]]
    # the fit as the report keeps it: the slope to hundredths of a MB an hour, R² to three decimals (as every metric)
    r2, per_hour = trend["metrics"]["pos_rss_fit_r2"], trend["metrics"]["pos_rss_mb_per_hour"]
    assert 0 < r2 < 0.8 and r2 == round(r2, 3) and per_hour > 5 and per_hour == round(per_hour, 2), trend["metrics"]


def test_shrinking_pos_memory_is_not_a_leak(config_file, tmp_path):
    """The slope's sign counts: memory given back steadily is the opposite of a leak."""
    now = time.time()
    reports = [fake_report(now - 3600 + i * 600, pos_rss_mb=440 - 40 * i) for i in range(6)]
    assert "trend.pos_rss_growing" not in trend_codes(config_file, tmp_path, reports)


@pytest.mark.parametrize(("text", "seconds"), [("90", 90), ("90s", 90), ("30m", 1800), ("1.5h", 5400), ("2d", 172800),
                                             (" 2h ", 7200)])
def test_history_since_takes_an_age_in_each_unit(text, seconds):
    from posdiag.agent.cli import parse_age

    assert parse_age(text) == seconds


@pytest.mark.parametrize("text", ["soon", "-1h", "2w", "h", ""])
def test_history_since_refuses_what_is_not_an_age(text):
    from posdiag.agent.cli import parse_age

    with pytest.raises(ValueError, match="--since"):
        parse_age(text)


def test_no_history_means_trends_are_skipped(config_file):
    rc, out, _ = run_cli("diagnose", "--json", "--only", "trends", "--config", str(config_file()))
    assert json.loads(out)["probes"][0]["status"] == "skipped"


def test_history_columns_line_up_under_chinese_headings(config_file, tmp_path, speak_chinese):
    now = time.time()
    reports = [fake_report(now - 600), fake_report(now - 60)]
    reports[1]["trigger"], reports[1]["diagnosis"]["verdict"] = "on-demand", "degraded"
    reports[1]["diagnosis"]["causes"][0].update(id="network_path", confidence=1.0)
    history_with(tmp_path, reports)
    rc, out, _ = run_cli("--lang", "zh_CN", "history", "--config", str(config_file()))
    head, *rows = out.splitlines()
    assert rc == 0 and len(rows) == 2
    assert head.split() == ["开始时间（UTC）", "触发方式", "结论", "首要原因", "置信度", "报告"]

    def column(line: str, text: str) -> int:  # the terminal cell where ``text`` starts
        return display_width(line[:line.index(text)])

    newest = rows[0]
    assert column(newest, "按需") == column(head, "触发方式")  # triggers and verdicts in the reader's words
    assert column(newest, "性能下降") == column(head, "结论")
    assert column(newest, "network_path") == column(head, "首要原因")  # cause ids are the same in every language
    assert column(newest, reports[1]["report_id"][:8]) == column(head, "报告")
    # percentages are right-aligned under their heading
    assert column(newest, "100%") + 4 == column(rows[1], "95%") + 3 == column(head, "置信度") + display_width("置信度")
    assert column(rows[1], "定时") == column(head, "触发方式")
    assert "on-demand" not in out and "schedule" not in out and "healthy" not in out


def test_history_headings_stay_english_by_default(config_file, tmp_path):
    history_with(tmp_path, [fake_report(time.time())])
    rc, out, _ = run_cli("history", "--config", str(config_file()))
    assert out.splitlines()[0] == f"{'started (UTC)':<20}  {'trigger':<9}  {'verdict':<8}  {'top cause':<19}  conf  report"


def test_a_history_exactly_at_its_size_limit_keeps_everything_and_one_byte_less_drops_the_oldest(tmp_path):
    now = time.time()
    with Store(tmp_path) as store:
        reports = [fake_report(now - 300 + i * 60, size=2000) for i in range(4)]
        for report in reports:
            store.add(report)
        total = store.db.execute("SELECT SUM(LENGTH(body)) FROM reports").fetchone()[0]
        store.max_bytes = total
        assert store.prune() == 0 and store.count() == 4
        store.max_bytes = total - 1
        assert store.prune() == 1
        assert [r.report_id for r in store.list()] == [r["report_id"] for r in reversed(reports[1:])]
        store.max_bytes = store.db.execute("SELECT SUM(size) FROM (SELECT LENGTH(body) AS size FROM reports "
                                           "ORDER BY started_at DESC LIMIT 2)").fetchone()[0]
        assert store.prune() == 1  # the two newest alone fill the limit exactly: they stay
        assert [r.report_id for r in store.list()] == [r["report_id"] for r in reversed(reports[2:])]


def test_the_configured_history_and_spool_limits_are_read_in_days_and_mib(config_file):
    from posdiag.core import settings as config

    settings = config.load(str(config_file(daemon={"history_days": 3, "history_max_mb": 2},
                                           server={"spool_max_mb": 3})))
    with Store.for_settings(settings) as store:
        assert (store.max_age_s, store.max_bytes, store.spool_max_bytes) == (3 * 86400, 2 * 1024 * 1024, 3 * 1024 * 1024)


def test_reports_with_and_without_certainty_are_listed_and_read_back_side_by_side(config_file, tmp_path):
    """The history keeps reports of older agents (no certainty, no not_checked) beside this agent's."""
    now = time.time()
    old, new = fake_report(now - 600), fake_report(now - 60)
    new["diagnosis"] = {"verdict": "degraded", "not_checked": [{"area": "reader", "reason": "no reader", "probes": []}],
                        "causes": [{"id": "host.upstream", "title": "", "confidence": 0.38, "certainty": 0.38,
                                    "evidence": [], "remediation": ["x"]}]}
    history_with(tmp_path, [old, new])
    rc, out, _ = run_cli("history", "--config", str(config_file()))
    rows = out.splitlines()[1:]
    assert rc == 0 and "host.upstream" in rows[0] and "38%" in rows[0] and "none" in rows[1] and "95%" in rows[1]
    rc, out, _ = run_cli("history", "--json", "--config", str(config_file()))
    newest, oldest = json.loads(out)
    assert newest["diagnosis"] == new["diagnosis"] and oldest["diagnosis"] == old["diagnosis"]
    assert "certainty" not in oldest["diagnosis"]["causes"][0]


def test_nothing_is_stored_only_where_no_database_was_ever_written(tmp_path):
    from posdiag.agent.history import nothing_stored

    assert nothing_stored(str(tmp_path / "never-created"))
    assert nothing_stored(str(tmp_path))
    with Store(tmp_path) as store:
        store.add(fake_report(time.time()))
    assert not nothing_stored(str(tmp_path))


@pytest.mark.root
def test_a_state_dir_this_user_may_not_read_is_not_taken_for_an_empty_one(tmp_path):
    """Without the capabilities that bypass file permissions, a directory of another user says nothing
    about what it holds: the store's reader must get to say why it cannot look."""
    state = tmp_path / "state"
    state.mkdir(mode=0o700)
    os.chown(state, 4242, 4242)
    code = f"from posdiag.agent.history import nothing_stored; print(nothing_stored({str(state)!r}))"
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", code],
                          capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == "False"


def test_report_ids_are_random_version_4_uuids():
    """Report ids are made without the uuid module: each must still read as a version-4 UUID of the
    RFC 4122 variant, in canonical form, and two are never alike."""
    import uuid

    from posdiag.agent.history import new_report_id

    ids = [new_report_id() for _ in range(2000)]
    assert len(set(ids)) == len(ids)
    for made in ids[:200]:
        parsed = uuid.UUID(made)
        assert (str(parsed), parsed.version, parsed.variant) == (made, 4, uuid.RFC_4122)
    # every bit outside version and variant varies across the sample
    varying = 0
    for bit in range(128):
        values = {(uuid.UUID(made).int >> bit) & 1 for made in ids[:200]}
        varying += len(values) == 2
    assert varying == 122


def test_a_report_exactly_as_old_as_the_age_limit_is_kept_a_second_older_is_dropped(tmp_path):
    with Store(tmp_path, max_age_days=2) as store:
        store.add(fake_report(time.time() - 3600))
        started = store.list()[0].started_at
        assert store.prune(now=started + 2 * 86400) == 0 and len(store.list()) == 1
        assert store.prune(now=started + 2 * 86400 + 1) == 1 and store.list() == []


def test_a_history_can_be_added_to_only_in_a_folder_that_exists_and_a_file_is_no_empty_state_dir(tmp_path):
    from posdiag.agent.history import DB_NAME, nothing_stored, writable

    assert writable(str(tmp_path)) is True  # no database yet: the store makes one
    assert writable(str(tmp_path / "never-created")) is False  # the state dir must exist already
    with Store(tmp_path) as store:
        store.add(fake_report(time.time()))
    assert (tmp_path / DB_NAME).exists() and writable(str(tmp_path)) is True  # one there that may be written
    a_file = tmp_path / "not-a-folder"
    a_file.write_text("x")
    assert nothing_stored(str(a_file)) is False and writable(str(a_file)) is False  # says nothing; the store explains


@pytest.mark.root
def test_a_technicians_report_is_kept_only_where_this_user_may_write_the_directory_and_the_database(tmp_path):
    """Asked before the store is loaded, as a user without the capabilities that bypass file permissions:
    a directory of another user, or a database of another user in one's own, is not writable."""
    from posdiag.agent.history import DB_NAME

    theirs, ours, mixed = (tmp_path / name for name in ("theirs", "ours", "mixed"))
    for folder in (theirs, ours, mixed):
        folder.mkdir(mode=0o755)
    os.chown(theirs, 4242, 4242)
    (mixed / DB_NAME).write_bytes(b"")
    os.chown(mixed / DB_NAME, 4242, 4242)
    (mixed / DB_NAME).chmod(0o644)
    (ours / DB_NAME).write_bytes(b"")
    code = ("from posdiag.agent.history import writable; "
            f"print([writable(p) for p in {[str(theirs), str(ours), str(mixed), str(tmp_path / 'gone')]!r}])")
    proc = subprocess.run(["setpriv", "--bounding-set", "-dac_override,-dac_read_search", sys.executable, "-c", code],
                          capture_output=True, text=True, check=True, cwd=REPO)
    assert proc.stdout.strip() == "[False, True, False, False]"
