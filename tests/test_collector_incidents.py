"""Incidents: one cause at several terminals of a site, or at several sites, by the reports' own start time."""

from __future__ import annotations

import time

import pytest
from labs.collectorlab import iso, make_report
from posdiag.collector import incidents


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


def test_incident_thresholds_and_window_are_settings():
    rows = [{"terminal_id": f"t{i}", "site": "s", "top_cause": "disk.full", "started_at": iso(1_800_000_000 + 400 * i)}
            for i in range(3)]
    assert incidents.find(rows, {}, window_min=10) and len(incidents.find(rows, {}, window_min=10)) == 1
    assert incidents.find(rows, {}, window_min=5) == []  # 400 s apart > 5 min: three lone faults
    assert incidents.find(rows, {}, window_min=10, site_min_terminals=4) == []
    spread = [{**row, "site": f"s{i}"} for i, row in enumerate(rows)]
    assert [i["scope"] for i in incidents.find(spread, {}, window_min=10)] == ["fleet"]
    assert incidents.find(spread, {}, window_min=10, fleet_min_sites=4) == []


def _rows(*reports: tuple[str, str, float], cause: str = "network.wan") -> list[dict]:
    """Fault rows (terminal, site, seconds after a fixed start) as the storage hands them to incidents.find."""
    return [{"terminal_id": t, "site": site, "top_cause": cause, "started_at": iso(1_800_000_000 + at)}
            for t, site, at in sorted(reports, key=lambda r: r[2])]


def test_two_terminals_of_a_site_are_an_incident_and_one_terminal_alone_is_not():
    two = incidents.find(_rows(("a", "s", 0), ("b", "s", 60)), {})
    assert [(i["scope"], i["terminals"]) for i in two] == [("site", ["a", "b"])]
    assert incidents.find(_rows(("a", "s", 0), ("a", "s", 60), ("a", "s", 120)), {}) == []  # one till, three reports


def test_three_sites_are_a_fleet_incident_and_two_are_not():
    three = incidents.find(_rows(("a", "s1", 0), ("b", "s2", 60), ("c", "s3", 120)), {})
    assert [(i["scope"], i["sites"]) for i in three] == [("fleet", ["s1", "s2", "s3"])]
    two_sites = incidents.find(_rows(("a", "s1", 0), ("b", "s1", 30), ("c", "s2", 60), ("d", "s2", 90)), {})
    assert sorted((i["scope"], i["site"]) for i in two_sites) == [("site", "s1"), ("site", "s2")]


@pytest.mark.parametrize(("gap_s", "joined"), [(600, True), (601, False)], ids=["10-min-apart", "10-min-1-s-apart"])
def test_reports_within_the_window_of_each_other_join_one_incident(gap_s, joined):
    found = incidents.find(_rows(("a", "s", 0), ("b", "s", gap_s)), {}, window_min=10)
    assert bool(found) is joined


@pytest.mark.parametrize(("latest", "still_open"), [
    ({"verdict": "fault", "top_cause": "network.wan"}, True),
    ({"verdict": "fault", "top_cause": "disk.full"}, False),
    ({"verdict": "healthy", "top_cause": "none"}, False)], ids=["same-cause", "another-cause", "healthy"])
def test_an_incident_stays_open_while_a_terminal_still_fails_with_its_cause(latest, still_open):
    """A terminal's part ends with its first newer report of another verdict or cause (here 30 s later,
    inside the incident's span); b has reported healthy since."""
    rows = _rows(("a", "s", 0), ("b", "s", 60))
    states = {"a": {**latest, "last_started_at": iso(1_800_000_000 + (0 if still_open else 30))},
              "b": {"verdict": "healthy", "top_cause": "none", "last_started_at": iso(1_800_000_000 + 600)}}
    [incident] = incidents.find(rows, states)
    assert incident["open"] is still_open and incident["still_failing"] == (["a"] if still_open else [])
