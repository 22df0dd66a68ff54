"""Retention: ``serve --retain-days N`` prunes old reports in batches while reports keep arriving, and
never a terminal's newest report."""

from __future__ import annotations

import threading
import time

import pytest
from labs import bigfleet
from labs.collectorlab import Fleet, ServeProcess, iso, make_report
from labs.helpers import wait_for
from posdiag.collector.storage import open_storage

RETAIN_DAYS = 10


def test_retention_prunes_old_reports_in_batches_under_load_and_keeps_each_terminals_newest(db_url):
    storage = open_storage(db_url)
    storage.migrate()
    now = time.time()
    # 200 terminals with a month of history every 3 h; 10 of them quiet for 20 days (their newest is old).
    built = bigfleet.build(storage, now=now, terminals=200, sites=20, faulty=5, silent=10, history=250,
                           every_s=3 * 3600, silent_for_s=20 * 86400)
    cutoff = iso(now - RETAIN_DAYS * 86400)

    def old() -> int:
        return int(storage._select("SELECT count(*) AS n FROM reports WHERE started_at < ?", (cutoff,))[0]["n"])

    before, total = old(), built.reports
    assert before > 30_000
    f = Fleet("", storage)
    for request_id, received in (("bundle-old", now - 11 * 86400), ("bundle-new", now - 9 * 86400)):  # support bundles
        f.sql("INSERT INTO bundles (request_id, terminal_id, received_at, size, sha256, body) VALUES (?, ?, ?, ?, ?, ?)",
              (request_id, "lane-00007", iso(received), 3, "0" * 64, b"tar"))
    tokens = {f"busy-{i}": f.terminal(f"busy-{i}", "store-busy") for i in range(4)}
    server = ServeProcess(db_url, "--retain-days", str(RETAIN_DAYS))
    f.url = server.url
    codes: list[int] = []
    during: list[int] = []  # old reports left when each report was stored
    done = threading.Event()

    def keep_posting() -> None:
        while not done.is_set():
            for tid, token in tokens.items():
                codes.append(f.post(token, make_report(tid, "store-busy", cause="none", verdict="healthy")).status_code)
                during.append(old())

    poster = threading.Thread(target=keep_posting)
    poster.start()
    try:
        assert wait_for(lambda: old() == len(built.silent) and
                        storage._select("SELECT count(*) AS n FROM bundles")[0]["n"] == 1, 180, interval=0.5)
    finally:
        done.set()
        poster.join(60)
        server.stop()
    assert set(codes) == {201}
    assert any(left > len(built.silent) for left in during)  # reports were stored while pruning went on
    newest = {row["terminal_id"]: row["n"] for row in storage._select(
        "SELECT r.terminal_id, count(*) AS n FROM reports r JOIN terminals t ON t.id = r.terminal_id "
        "AND r.started_at = t.last_started_at GROUP BY r.terminal_id")}
    assert set(built.site_of) | set(tokens) <= set(newest)  # every terminal kept its newest report
    kept_old = storage._select("SELECT terminal_id FROM reports WHERE started_at < ?", (cutoff,))
    assert sorted(r["terminal_id"] for r in kept_old) == sorted(built.silent)
    remaining = int(storage._select("SELECT count(*) AS n FROM reports WHERE terminal_id NOT LIKE ?", ("busy-%",))[0]["n"])
    assert remaining == total - (before - len(built.silent))
    assert [r["request_id"] for r in storage._select("SELECT request_id FROM bundles")] == ["bundle-new"]
    storage.close()


def test_the_pruner_takes_200_reports_a_batch_pauses_four_times_a_batchs_length_and_rests_once_done(tmp_path, monkeypatch):
    """The pace docs/collector.md promises, batches of 200 and a pause four times as long as the batch took,
    with at least 50 ms between batches (room for the intake) and five minutes' rest once nothing is older
    than the retention. The batches' durations are set here (the clock is the pacing's only input); the
    database is real."""
    from types import SimpleNamespace

    from posdiag.collector import retention

    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    storage.migrate()
    now = float(int(time.time()))
    bigfleet.build(storage, now=now, terminals=1, sites=1, faulty=0, silent=0, history=500, every_s=3600)
    cutoff = iso(now - RETAIN_DAYS * 86400)
    Fleet("", storage).sql("INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, top_cause, "
                           "agent_version, body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           ("at-the-cutoff", "lane-00000", "store-000", cutoff, cutoff, "healthy", "none", "0.1.0", "{}"))
    [old] = [row["n"] for row in storage._select("SELECT count(*) AS n FROM reports WHERE started_at < ?", (cutoff,))]
    assert 200 < old < 400  # more than a batch; the terminal's newest is never old
    clock = iter([0.0, 0.5, 10.0, 10.001, 20.0])  # the first batch takes 0.5 s, the second 1 ms
    monkeypatch.setattr(retention, "time", SimpleNamespace(time=lambda: now, monotonic=lambda: next(clock)))
    pruner = retention.Pruner(storage, RETAIN_DAYS)
    assert pruner.step() == pytest.approx(2.0) and pruner.pruned == 200
    assert pruner.step() == 0.05 and pruner.pruned == old
    assert pruner.step() == 300.0 and pruner.pruned == old
    assert storage._select("SELECT count(*) AS n FROM reports")[0]["n"] == 502 - old
    assert storage.get_report("at-the-cutoff") is not None  # as old as intake takes: kept
    storage.close()


def test_support_bundles_are_pruned_ten_at_a_time_each_pass_holding_a_few_megabytes_at_most(tmp_path):
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    storage.migrate()
    now = time.time()
    f = Fleet("", storage)
    for n in range(11):
        f.sql("INSERT INTO bundles (request_id, terminal_id, received_at, size, sha256, body) VALUES (?, ?, ?, ?, ?, ?)",
              (f"old-{n}", "lane-1", iso(now - 11 * 86400 + n), 3, "0" * 64, b"tar"))
    cutoff, stamp = iso(now - RETAIN_DAYS * 86400), iso(now)
    assert storage.prune_records(cutoff, stamp, 200) == 10
    assert [r["request_id"] for r in storage._select("SELECT request_id FROM bundles")] == ["old-10"]  # the oldest went first
    assert storage.prune_records(cutoff, stamp, 200) == 1 and storage.prune_records(cutoff, stamp, 200) == 0
    storage.close()


def test_an_incident_closed_before_the_cutoff_goes_with_its_parts_and_messages_and_a_later_one_stays(tmp_path):
    import json

    from posdiag.collector import intake
    from posdiag.collector.storage.chains import Rules

    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    storage.migrate()
    now = time.time()
    for tid in ("a", "b", "c", "d"):
        storage.add_terminal(tid, "store-1" if tid in "ab" else "store-2", f"hash-{tid}")
    for tid, days in (("a", 12), ("b", 12), ("c", 5), ("d", 5)):  # a site incident 12 days ago, another 5 days ago
        for verdict, cause, later in (("fault", "network.wan", 0), ("healthy", "none", 600)):
            report = make_report(tid, "store-1" if tid in "ab" else "store-2", started=now - days * 86400 + later,
                                 verdict=verdict, cause=cause)
            storage.store_report(intake.decode(json.dumps(report).encode(), "", 1 << 20), received=iso(now))
    storage.apply_incident_facts(Rules(600, 2, 3, alerts=True), 1000, 10.0)
    old, recent = sorted(storage._select("SELECT id, site FROM incidents WHERE scope = 'site'"), key=lambda r: r["site"])
    # Both were closed by their healthy reports; the old one as it would have been, back then.
    Fleet("", storage).sql("UPDATE incidents SET closed_at = ? WHERE id = ?", (iso(now - 12 * 86400 + 600), old["id"]))
    assert storage.prune_records(iso(now - RETAIN_DAYS * 86400), iso(now), 200) >= 1
    pair = {old["id"], recent["id"]}
    left = {table: pair & {r["incident_id"] for r in storage._select(f"SELECT incident_id FROM {table}")}
            for table in ("incident_terminals", "alerts")}
    left["incidents"] = pair & {r["id"] for r in storage._select("SELECT id FROM incidents")}
    assert left == {"incidents": {recent["id"]}, "incident_terminals": {recent["id"]}, "alerts": {recent["id"]}}
    storage.close()


def test_a_fleet_incident_closed_before_the_cutoff_goes_with_its_sites_terminals_and_messages(tmp_path):
    """Every part of an old fleet incident goes with it (none is left behind to name an incident that
    no longer exists); an incident still open, however old it began, keeps its own."""
    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    storage.migrate()
    now = time.time()
    f = Fleet("", storage)
    for incident, closed in ((1, iso(now - 12 * 86400)), (2, None)):
        f.sql("INSERT INTO incidents (id, scope, cause, site, first_at, last_at, report_count, terminal_count, site_count, "
              "failing, qualified_at, closed_at) VALUES (?, 'fleet', 'network.wan', '', ?, ?, 3, 3, 3, 0, ?, ?)",
              (incident, iso(now - 13 * 86400), iso(now - 12 * 86400 - 60), iso(now - 13 * 86400), closed))
        for n in range(3):
            f.sql("INSERT INTO incident_sites (incident_id, site) VALUES (?, ?)", (incident, f"store-{n}"))
            f.sql("INSERT INTO incident_terminals (incident_id, terminal_id, site, last_at, failing) VALUES (?, ?, ?, ?, 0)",
                  (incident, f"lane-{n}", f"store-{n}", iso(now - 12 * 86400 - 60)))
        f.sql("INSERT INTO alerts (incident_id, event, body, created_at, next_at) VALUES (?, 'open', '{}', ?, ?)",
              (incident, iso(now - 13 * 86400), iso(now - 13 * 86400)))
    assert storage.prune_records(iso(now - RETAIN_DAYS * 86400), iso(now), 200) == 1
    for table in ("incidents", "incident_sites", "incident_terminals", "alerts"):
        column = "id" if table == "incidents" else "incident_id"
        assert {r["i"] for r in storage._select(f"SELECT DISTINCT {column} AS i FROM {table}")} == {2}, table
    storage.close()
