"""Incidents: one cause at several terminals of a site, or at several sites, by the reports' own start time."""

from __future__ import annotations

import time

import pytest
from labs.collectorlab import iso, make_report


def _post_all(f, reports):
    tokens: dict[str, str] = {}
    for report in reports:
        terminal = report["terminal"]
        if terminal["id"] not in tokens:
            tokens[terminal["id"]] = f.terminal(terminal["id"], terminal["site"])
        answer = f.post(tokens[terminal["id"]], report)
        assert answer.status_code == 201, answer.text
    return tokens


def test_collector_makes_one_site_incident_of_five_terminals_of_one_site_failing_alike_within_ten_minutes(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    _post_all(f, [make_report(f"lane-{i}", "store-042", started=now - 540 + i * 120, cause="network.wan") for i in range(5)]
              + [make_report("other", "store-007", started=now, cause="network.wan")])
    found = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert len(found) == 1
    [incident] = found
    assert (incident["scope"], incident["cause"], incident["site"]) == ("site", "network.wan", "store-042")
    assert incident["terminals"] == [f"lane-{i}" for i in range(5)]
    assert incident["open"] is True
    assert incident["first_seen_at"] == iso(now - 540) and incident["last_seen_at"] == iso(now - 540 + 480)
    counts = ("reports", "terminal_count", "site_count", "still_failing_count")
    assert [incident[key] for key in counts] == [5, 5, 1, 5] and incident["opened_at"] and incident["closed_at"] is None
    assert f.storage._select("SELECT count(*) AS n FROM alerts")[0]["n"] == 0  # no webhook: no message waits for one


def test_collector_makes_one_fleet_incident_when_terminals_of_three_sites_fail_alike(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    reports = [make_report(f"{site}-lane-{i}", site, started=now - 300 + 60 * i, cause="host.service_down")
               for site in ("store-1", "store-2", "store-3") for i in range(2)]
    _post_all(f, reports)
    found = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert [(i["scope"], i["cause"]) for i in found] == [("fleet", "host.service_down")]
    assert found[0]["sites"] == ["store-1", "store-2", "store-3"]
    assert len(found[0]["terminals"]) == 6
    assert found[0]["site"] is None
    assert [found[0][key] for key in ("reports", "terminal_count", "site_count", "still_failing_count")] == [6, 6, 3, 6]


def test_collector_puts_reports_that_arrive_an_hour_late_into_their_own_window(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    hour_ago = now - 3600
    # The store's uplink was down an hour ago; its tills deliver those reports only now, after their current ones.
    current = [make_report(f"lane-{i}", "store-9", started=now - 60 * i, cause="network.wan") for i in range(5)]
    late = [make_report(f"lane-{i}", "store-9", started=hour_ago + 60 * i, cause="network.wan") for i in range(5)]
    _post_all(f, current + late)
    found = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert len(found) == 2
    newer, older = found
    assert newer["first_seen_at"] == iso(now - 240) and newer["last_seen_at"] == iso(now)
    assert older["first_seen_at"] == iso(hour_ago) and older["last_seen_at"] == iso(hour_ago + 240)
    assert newer["open"] is True
    assert older["open"] is False  # every terminal has reported since
    assert [i["first_seen_at"] for i in f.get("/api/v1/incidents", operator, open="false").json()["incidents"]] == [iso(hour_ago)]


def test_collector_closes_an_incident_when_its_terminals_report_healthy_again(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    tokens = _post_all(f, [make_report(f"lane-{i}", "store-5", started=now - 600, cause="network.lan") for i in range(3)])
    assert f.get("/api/v1/incidents", operator).json()["incidents"][0]["open"] is True
    for i in range(3):
        assert f.post(tokens[f"lane-{i}"], make_report(f"lane-{i}", "store-5", started=now, verdict="healthy",
                                                       cause="none")).status_code == 201
    [incident] = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert incident["open"] is False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("spread,settings,scopes", [
    (False, {"incident_window_min": 10}, ["site"]),
    (False, {"incident_window_min": 5}, []),  # 400 s apart > 5 min: three lone faults
    (False, {"incident_window_min": 10, "site_min_terminals": 4}, []),
    (True, {"incident_window_min": 10}, ["fleet"]),  # one terminal at each of three sites
    (True, {"incident_window_min": 10, "fleet_min_sites": 4}, []),
])
def test_incident_thresholds_and_window_are_settings(fleet, spread, settings, scopes):
    f = fleet(**settings)
    operator = f.operator()
    start = time.time() - 1200
    _post_all(f, [make_report(f"t{i}", f"s{i}" if spread else "s", started=start + 400 * i, cause="disk.full")
                  for i in range(3)])
    assert [i["scope"] for i in f.get("/api/v1/incidents", operator).json()["incidents"]] == scopes


def test_an_incident_that_closed_stays_closed_and_faults_after_it_make_a_new_one(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    tokens = _post_all(f, [make_report(f"lane-{i}", "store-5", started=now - 300, cause="network.lan") for i in range(2)])
    for i in range(2):
        assert f.post(tokens[f"lane-{i}"], make_report(f"lane-{i}", "store-5", started=now - 240, verdict="healthy",
                                                       cause="none")).status_code == 201
    [closed] = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert closed["open"] is False and closed["closed_at"]
    # Two minutes later the same store fails again: within the window, but the closed incident stays closed.
    for i in range(2):
        assert f.post(tokens[f"lane-{i}"], make_report(f"lane-{i}", "store-5", started=now - 120,
                                                       cause="network.lan")).status_code == 201
    newer, older = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert (newer["open"], older["open"]) == (True, False)
    assert older["id"] == closed["id"] and older["closed_at"] == closed["closed_at"]
    assert newer["first_seen_at"] == iso(now - 120) and newer["still_failing"] == ["lane-0", "lane-1"]


def test_facts_applied_in_one_batch_or_one_at_a_time_make_the_same_incidents_and_messages(tmp_path):
    """The keeper holds chains in memory through a batch and writes them back at its end: how the queue
    is cut into batches must not change a single incident, part or webhook message."""
    import json
    import random

    from posdiag.collector import intake
    from posdiag.collector.storage import open_storage
    from posdiag.collector.storage.chains import Rules

    rng = random.Random(2824)
    now = time.time()
    reports = []
    for n in range(400):  # 30 terminals of 6 sites over an hour, three causes and health, some sent late
        tid = f"lane-{rng.randrange(30):02d}"
        cause = rng.choice(["network.wan", "network.dns", "host.service_down", "none"])
        started = now - 3600 + n * 9 - (rng.randrange(1800) if rng.random() < 0.1 else 0)
        report = make_report(tid, f"store-{int(tid[-2:]) % 6}", started=started, cause=cause,
                             verdict="healthy" if cause == "none" else "fault")
        reports.append(intake.decode(json.dumps(report).encode(), "", 1 << 20))
    rules = Rules(600, 2, 3, alerts=True)
    outcomes = []
    for name, batch in (("one-by-one", 1), ("at-once", 100_000), ("in-tens", 10)):  # tens: chains of earlier batches
        storage = open_storage(f"sqlite:///{tmp_path / name}.db")
        storage.migrate()
        for tid in sorted({r.terminal_id for r in reports}):
            storage.add_terminal(tid, None, f"hash-{tid}")
        for report in reports:
            storage.store_report(report, received=iso(now))
        while storage.apply_incident_facts(rules, batch, 60.0)[0]:
            pass
        outcomes.append([_applied(storage._select(f"SELECT * FROM {table} ORDER BY 1, 2"))
                         for table in ("incidents", "incident_terminals", "incident_sites")] +
                        [_applied(storage._select("SELECT incident_id, event, body FROM alerts ORDER BY id"))])
        storage.close()
    assert outcomes[0] == outcomes[1] == outcomes[2]
    incidents, _, _, messages = outcomes[0]
    assert any(i["qualified_at"] for i in incidents) and {m["event"] for m in messages} == {"open", "close"}


def _applied(rows: list[dict]) -> list[dict]:
    """Rows without the clock time of their application (two runs may straddle a second), only whether it is set."""
    import json

    times = ("qualified_at", "closed_at", "opened_at", "created_at")
    out = []
    for row in rows:
        row = {k: (v is not None if k in times else v) for k, v in row.items()}
        if "body" in row:
            body = json.loads(row["body"])
            body["incident"] = {k: (v is not None if k in times else v) for k, v in body["incident"].items()}
            row["body"] = {k: v for k, v in body.items() if k != "created_at"}
        out.append(row)
    return out


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("gap_s", "joined"), [(600, True), (601, False)], ids=["10-min-apart", "10-min-1-s-apart"])
def test_reports_within_the_window_of_each_other_join_one_incident(fleet, gap_s, joined):
    f = fleet(incident_window_min=10)
    operator = f.operator()
    start = time.time() - 1200
    _post_all(f, [make_report("a", "s", started=start, cause="network.wan"),
                  make_report("b", "s", started=start + gap_s, cause="network.wan")])
    assert bool(f.get("/api/v1/incidents", operator).json()["incidents"]) is joined


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_terminals_of_a_site_are_an_incident_and_one_terminal_alone_is_not(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    _post_all(f, [make_report("alone", "s1", started=now - 300 + 60 * i, cause="network.wan") for i in range(3)])
    assert f.get("/api/v1/incidents", operator).json()["incidents"] == []  # one till, three reports
    _post_all(f, [make_report("a", "s2", started=now - 120, cause="network.wan"),
                  make_report("b", "s2", started=now - 60, cause="network.wan")])
    found = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert [(i["scope"], i["site"], i["terminals"]) for i in found] == [("site", "s2", ["a", "b"])]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_three_sites_are_a_fleet_incident_and_two_are_not(fleet):
    f = fleet()
    operator = f.operator()
    now = time.time()
    _post_all(f, [make_report(t, site, started=now - 300 + 30 * i, cause="host.service_down")
                  for i, (t, site) in enumerate((("a", "s1"), ("b", "s1"), ("c", "s2"), ("d", "s2")))])
    two_sites = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert sorted((i["scope"], i["site"]) for i in two_sites) == [("site", "s1"), ("site", "s2")]
    _post_all(f, [make_report("e", "s3", started=now - 150, cause="host.service_down")])
    scopes = [i["scope"] for i in f.get("/api/v1/incidents", operator).json()["incidents"]]
    assert "fleet" in scopes


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("verdict", "cause", "still_open"), [
    ("fault", "network.wan", True), ("fault", "disk.full", False), ("healthy", "none", False)],
    ids=["same-cause", "another-cause", "healthy"])
def test_an_incident_stays_open_while_a_terminal_still_fails_with_its_cause(fleet, verdict, cause, still_open):
    """A terminal's part ends with its first newer report of another verdict or cause; b has reported healthy since."""
    f = fleet()
    operator = f.operator()
    now = time.time()
    tokens = _post_all(f, [make_report("a", "s", started=now - 300, cause="network.wan"),
                           make_report("b", "s", started=now - 240, cause="network.wan")])
    assert f.post(tokens["b"], make_report("b", "s", started=now - 60, verdict="healthy", cause="none")).status_code == 201
    assert f.post(tokens["a"], make_report("a", "s", started=now - 30, verdict=verdict, cause=cause)).status_code == 201
    [incident] = [i for i in f.get("/api/v1/incidents", operator).json()["incidents"] if i["cause"] == "network.wan"]
    assert incident["open"] is still_open and incident["still_failing"] == (["a"] if still_open else [])


@pytest.mark.parametrize(("count", "listed"), [(100, 100), (101, 100)])
def test_an_incidents_lists_name_its_first_100_and_its_counts_say_how_many(count, listed):
    from posdiag.collector.incidents import to_api

    names = [f"lane-{n:03d}" for n in range(count)]
    row = {"id": 7, "scope": "fleet", "cause": "network.wan", "site": "", "sites": names, "site_count": count,
           "terminals": names, "terminal_count": count, "report_count": count, "first_at": "2026-12-06T10:00:00Z",
           "last_at": "2026-12-06T10:05:00Z", "qualified_at": "2026-12-06T10:01:00Z", "closed_at": None,
           "failing_terminals": names, "failing": count}
    answer = to_api(row)
    assert [len(answer[key]) for key in ("sites", "terminals", "still_failing")] == [listed] * 3
    assert answer["terminals"] == names[:listed]
    assert (answer["site_count"], answer["terminal_count"], answer["still_failing_count"]) == (count, count, count)
    assert (answer["id"], answer["site"], answer["open"]) == ("7", None, True)
    assert to_api({**row, "closed_at": "2026-12-06T10:30:00Z"})["open"] is False


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_incident_list_shows_open_ones_whatever_their_age_and_closed_ones_of_the_last_24_hours(fleet):
    """docs/collector.md: by default the open incidents and those seen in the last 24 hours; ?since= and
    ?until= instead ask for a window, and ?open= for one state."""
    f = fleet()
    operator = f.operator()
    now = time.time()
    for site, hours in (("store-23h", 23), ("store-25h", 25), ("store-open", 30)):
        tokens = _post_all(f, [make_report(f"{site}-{i}", site, started=now - hours * 3600, cause="network.lan")
                               for i in range(2)])
        if site != "store-open":
            for tid, token in tokens.items():
                assert f.post(token, make_report(tid, site, started=now - 60, verdict="healthy", cause="none")).status_code == 201

    def sites(**query: str) -> list[str]:
        return [i["site"] for i in f.get("/api/v1/incidents", operator, **query).json()["incidents"]]

    assert sites() == ["store-open", "store-23h"]
    assert sites(open="true") == ["store-open"] and sites(open="false") == ["store-23h"]
    assert sites(since=iso(now - 26 * 3600)) == ["store-23h", "store-25h"]  # a window: seen in it, open or not
    assert sites(since=iso(now - 31 * 3600), until=iso(now - 24 * 3600)) == ["store-open", "store-25h"]


@pytest.mark.parametrize(("verdict", "cause", "fault"), [
    ("fault", "network.wan", True), ("degraded", "network.degraded", True), ("healthy", "network.wan", False),
    ("fault", "none", False), ("fault", "", False), ("fault", None, False), (None, "network.wan", False)])
def test_a_report_counts_for_incidents_when_it_is_not_healthy_and_names_a_cause(verdict, cause, fault):
    from posdiag.collector.storage.base import _names_a_fault

    assert _names_a_fault(verdict, cause) is fault


def _queued_facts(tmp_path, count: int):
    """A SQLite collector database with ``count`` facts queued (healthy terminals' reports: they change
    no incident, so only the batching is measured)."""
    from labs.collectorlab import run_sql
    from posdiag.collector.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    storage.migrate()
    for n in range(count):
        run_sql(storage, "INSERT INTO incident_facts (terminal_id, site, cause, at, newest) VALUES (?, 'store-1', NULL, ?, 1)",
                (f"lane-{n}", iso(time.time() - 60)))
    return storage


def _left(storage) -> int:
    return storage._select("SELECT count(*) AS n FROM incident_facts")[0]["n"]


def test_the_keeper_takes_500_facts_a_batch_comes_straight_back_after_a_full_one_and_polls_every_quarter_second(
        tmp_path, monkeypatch):
    from types import SimpleNamespace

    from posdiag.collector.keeper import Keeper
    from posdiag.collector.storage import chains

    monkeypatch.setattr(chains, "time", SimpleNamespace(monotonic=lambda: 0.0))  # a batch within its time budget
    storage = _queued_facts(tmp_path, 501)
    keeper = Keeper(storage, chains.Rules(600, 2, 3))
    try:
        assert (keeper.step(), _left(storage)) == (0.0, 1)  # a full batch: there may be a backlog
        assert (keeper.step(), _left(storage)) == (0.25, 0)
        assert keeper.step() == 0.25
    finally:
        storage.close()


def test_a_keepers_batch_takes_no_more_facts_after_50_ms_and_a_read_catches_up_20_batches_at_most(tmp_path, monkeypatch):
    """The clock is set here: each fact takes 50 ms, so a batch ends exactly on its budget after its first
    fact, goes on (not past it yet) and stops after its second; a read's catching up applies 20 such batches."""
    import itertools
    from types import SimpleNamespace

    from posdiag.collector.keeper import Keeper
    from posdiag.collector.storage import chains

    ticks = itertools.count()
    monkeypatch.setattr(chains, "time", SimpleNamespace(monotonic=lambda: next(ticks) * 0.05))
    storage = _queued_facts(tmp_path, 50)
    keeper = Keeper(storage, chains.Rules(600, 2, 3))
    try:
        assert (keeper.step(), _left(storage)) == (0.25, 48)
        ticks = itertools.count()
        monkeypatch.setattr(chains, "time", SimpleNamespace(monotonic=lambda: next(ticks) * 0.03))  # clear of the edge
        keeper.catch_up()
        assert _left(storage) == 8  # 20 batches of 2
    finally:
        storage.close()


def test_a_terminal_s_part_in_an_incident_keeps_the_time_of_its_latest_report_whatever_the_order(tmp_path):
    """A report sent late (older than one already applied) does not move the part's time back."""
    from labs.collectorlab import run_sql
    from posdiag.collector.storage import open_storage
    from posdiag.collector.storage.chains import Rules

    storage = open_storage(f"sqlite:///{tmp_path / 'c.db'}")
    try:
        storage.migrate()
        now = time.time()
        for at, newest in ((now - 60, 1), (now - 300, 0)):
            run_sql(storage, "INSERT INTO incident_facts (terminal_id, site, cause, at, newest) "
                    "VALUES ('lane-1', 'store-1', 'network.wan', ?, ?)", (iso(at), newest))
        for batch in (1, 1):
            storage.apply_incident_facts(Rules(600, 2, 3), batch, 5.0)
        parts = storage._select("SELECT last_at FROM incident_terminals")
        assert [p["last_at"] for p in parts] == [iso(now - 60)] * 2  # its site's chain and its cause's fleet chain
        chains = storage._select("SELECT first_at, last_at, report_count FROM incidents")
        assert [tuple(c.values()) for c in chains] == [(iso(now - 300), iso(now - 60), 2)] * 2
    finally:
        storage.close()
