"""Risks ahead on the central server: each terminal keeps its newest report's, the fleet lists them
soonest first (API and page), and reports of older agents, which know none, still land."""

from __future__ import annotations

import json
import time

import pytest
from labs.collector_fixtures import ARTIFACTS, signed_in_page
from labs.collectorlab import make_report
from posdiag.core.timefmt import utc_iso

SQLITE = pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)


def risk(code: str, hours: float, subject: str, title: str = "") -> dict:
    return {"code": code, "title": title or f"title of {code}", "probe": "trends", "subject": subject,
            "message": f"{subject} fails in {hours:.1f} h", "hours_left": hours,
            "due_at": utc_iso(time.time() + hours * 3600), "rate": 120.0, "rate_unit": "MB/h",
            "remediation": ["act now", "then check again"]}


def with_risks(report: dict, *risks: dict) -> dict:
    report["risks"] = list(risks)
    if report["diagnosis"]["verdict"] == "healthy":
        report["diagnosis"]["verdict"] = "degraded"
    return report


def test_the_fleet_lists_risks_ahead_soonest_first(fleet):
    f = fleet()
    operator = f.operator()
    tokens = {t: f.terminal(t, site) for t, site in (("a1", "store-a"), ("a2", "store-a"), ("b1", "store-b"))}
    assert f.post(tokens["a1"], with_risks(make_report("a1", "store-a", verdict="healthy", cause="none"),
                                           risk("tls.expiring_soon", 70, "primary"))).status_code == 201
    assert f.post(tokens["b1"], with_risks(make_report("b1", "store-b", cause="disk.full"),
                                           risk("trend.disk_filling", 5, "/var/lib/pos"),
                                           risk("trend.clock_drifting", 40, "clock"))).status_code == 201
    old = make_report("a2", "store-a", verdict="healthy", cause="none")  # an older agent: no "risks" key at all
    assert "risks" not in old and f.post(tokens["a2"], old).status_code == 201

    listed = f.get("/api/v1/risks", operator).json()
    assert [(r["terminal"], r["code"]) for r in listed["risks"]] == [
        ("b1", "trend.disk_filling"), ("b1", "trend.clock_drifting"), ("a1", "tls.expiring_soon")]
    first = listed["risks"][0]
    assert first["site"] == "store-b" and first["subject"] == "/var/lib/pos" and first["rate_unit"] == "MB/h"
    assert 4.9 < first["hours_left"] <= 5 and listed["terminals"] == 2
    assert [r["terminal"] for r in f.get("/api/v1/risks", operator, site="store-a").json()["risks"]] == ["a1"]
    assert [r["code"] for r in f.get("/api/v1/risks", operator, terminal="b1").json()["risks"]] == [
        "trend.disk_filling", "trend.clock_drifting"]

    terminals = {t["id"]: t for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    assert terminals["b1"]["soonest_risk_at"] == first["due_at"] and terminals["a2"]["soonest_risk_at"] is None


@SQLITE
def test_risks_of_one_terminal_due_at_the_same_time_are_listed_by_code(fleet):
    """A stable order for a page that refreshes: the same due time (or none) and terminal, then the code."""
    f = fleet()
    operator = f.operator()
    token = f.terminal("a1", "store-a")
    due = risk("trend.disk_filling", 5, "/var/lib/pos")["due_at"]
    codes = ("trend.inodes_filling", "trend.disk_filling", "tls.expiring_soon")
    timed = [{**risk(code, 5, "x"), "due_at": due} for code in codes]
    untimed = [{**risk(code, 40, "y"), "due_at": None, "hours_left": None} for code in ("trend.memory", "trend.clock")]
    assert f.post(token, with_risks(make_report("a1", "store-a"), *untimed, *timed)).status_code == 201
    listed = [(r["code"], r["due_at"]) for r in f.get("/api/v1/risks", operator).json()["risks"]]
    assert listed == [(code, due) for code in sorted(codes)] + [("trend.clock", None), ("trend.memory", None)]


def test_a_newer_report_without_risks_clears_them_and_a_late_older_one_does_not_bring_them_back(fleet):
    f = fleet()
    operator = f.operator()
    token = f.terminal("a1", "store-a")
    now = time.time()
    at_risk = with_risks(make_report("a1", "store-a", started=now - 600, verdict="healthy", cause="none"),
                         risk("trend.disk_filling", 5, "/var/lib/pos"))
    assert f.post(token, make_report("a1", "store-a", started=now - 60, verdict="healthy", cause="none")).status_code == 201
    assert f.post(token, at_risk).status_code == 201  # sent late, after an outage: older than the newest
    assert f.get("/api/v1/risks", operator).json()["risks"] == []
    assert f.get("/api/v1/risks", "made-up-token").status_code == 401


@pytest.mark.parametrize("due", ["9999-99-99T99:99:99Z", "2026-02-30T10:00:00Z", "0000-01-01T00:00:00Z",
                                 "0001-01-01T00:00:00Z", "9999-12-31T23:59:59Z"])
def test_intake_refuses_a_risk_due_at_no_real_instant_or_years_from_its_report(fleet, due):
    f = fleet()
    operator = f.operator()
    token = f.terminal("a1", "store-a")
    report = with_risks(make_report("a1", "store-a", verdict="healthy", cause="none"),
                        risk("tls.expiring_soon", 70, "primary"), risk("trend.disk_filling", 5, "/var/lib/pos"))
    report["risks"][1]["due_at"] = due
    answer = f.post(token, report)
    assert answer.status_code == 400, answer.text
    assert answer.json()["error"].startswith("$.risks[1].due_at: ") and due in answer.json()["error"]
    assert f.stored() == 0 and f.get("/api/v1/risks", operator).json()["risks"] == []


def test_intake_takes_a_certificate_due_within_a_year_and_a_risk_that_names_no_time(fleet):
    f = fleet()
    operator = f.operator()
    token = f.terminal("a1", "store-a")
    untimed = {**risk("trend.clock_drifting", 40, "clock"), "due_at": None, "hours_left": None}
    report = with_risks(make_report("a1", "store-a", verdict="healthy", cause="none"),
                        risk("tls.expiring_soon", 360 * 24, "primary"), untimed)
    assert f.post(token, report).status_code == 201
    assert [r["code"] for r in f.get("/api/v1/risks", operator).json()["risks"]] == [
        "tls.expiring_soon", "trend.clock_drifting"]
    untimed_only = f.terminal("a2", "store-a")
    assert f.post(untimed_only, with_risks(make_report("a2", "store-a", verdict="healthy", cause="none"),
                                           untimed)).status_code == 201
    terminals = {t["id"]: t["soonest_risk_at"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    assert terminals == {"a1": report["risks"][0]["due_at"], "a2": None}  # no time named: none shown, and listed last
    assert [r["terminal"] for r in f.get("/api/v1/risks", operator).json()["risks"]] == ["a1", "a1", "a2"]


YEAR_AND_A_DAY = 366 * 86400


@pytest.mark.parametrize(("offset", "taken"), [(YEAR_AND_A_DAY, True), (YEAR_AND_A_DAY + 1, False),
                                               (-YEAR_AND_A_DAY, True), (-YEAR_AND_A_DAY - 1, False)])
def test_intake_takes_a_risk_due_up_to_a_year_and_a_day_from_its_report_either_way_and_no_further(offset, taken):
    """A certificate a year off (``cert_warn_days`` is at most 365) is a risk; a time beyond is no real one."""
    from posdiag.collector import intake

    started = 1_800_000_000.0
    report = with_risks(make_report("a1", "store-a", started=started), risk("tls.expiring_soon", 70, "primary"))
    report["risks"][0]["due_at"] = utc_iso(started + offset)
    decoded = intake.decode(json.dumps(report).encode(), "", 1 << 20)
    if taken:
        intake.check_time(decoded, started, 90)
    else:
        with pytest.raises(intake.Refused, match=r"^\$\.risks\[0\]\.due_at: .* more than a year from") as refused:
            intake.check_time(decoded, started, 90)
        assert refused.value.status == 400


def test_intake_indexes_a_report_by_its_soonest_risk_and_one_naming_no_time_last():
    from posdiag.collector import intake

    def soonest(*risks: dict) -> str | None:
        report = with_risks(make_report("a1", "store-a"), *risks)
        return intake.decode(json.dumps(report).encode(), "", 1 << 20).risk_due_at

    later, sooner = risk("tls.expiring_soon", 70, "primary"), risk("trend.disk_filling", 5, "/var/lib/pos")
    untimed = {**risk("trend.clock_drifting", 40, "clock"), "due_at": None, "hours_left": None}
    assert soonest(later, untimed, sooner) == sooner["due_at"]
    assert soonest(untimed) == intake.NEVER
    assert soonest() is None
    chinese = with_risks(make_report("a1", "store-a"), risk("trend.disk_filling", 5, "/srv/收银台"))
    kept = intake.decode(json.dumps(chinese).encode(), "", 1 << 20).risks
    assert "/srv/收银台" in kept and json.loads(kept) == chinese["risks"]  # stored as UTF-8 text, not as \u escapes


@SQLITE
@pytest.mark.chromium
def test_the_fleet_page_shows_terminals_at_risk_and_a_report_s_risks(fleet, browser):
    f = fleet()
    operator = f.operator("alice")
    for tid, hours in (("lane-1", 70), ("lane-2", 5)):
        token = f.terminal(tid, "store-042")
        report = with_risks(make_report(tid, "store-042", verdict="healthy", cause="none"),
                            risk("trend.disk_filling", hours, f"/srv/{tid}", title="A filesystem will be full soon"))
        assert f.post(token, report).status_code == 201
    page = signed_in_page(browser, f.url, operator, viewport={"width": 1280, "height": 900})
    page.wait_for_selector("#risks li.risk")
    rows = page.locator("#risks li.risk").all_inner_texts()
    assert rows[0].startswith("lane-2") and "in 5 h" in rows[0] and "/srv/lane-2" in rows[0]
    assert rows[1].startswith("lane-1") and "in 3 days" in rows[1]
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / "collector-page-risks.png"), full_page=True)
    page.click("#risks a[data-terminal=lane-1]")  # each risk opens its terminal's own page
    page.wait_for_url(f.url + "/terminals/lane-1")
    page.wait_for_selector("#report .risk-card")
    card = page.locator("#report .risk-card").inner_text()
    assert "Risks ahead" in card and "/srv/lane-1 fails in 70.0 h" in card
    page.goto(f.url + "/terminals/lane-2")  # the terminal's own page: its latest diagnosis and its risks
    page.wait_for_selector("#report .risk-card")
    assert "/srv/lane-2 fails in 5.0 h" in page.locator("#report .risk-card").inner_text()
    assert "at risk, due" in page.locator("#terminal-facts").inner_text()
    assert page.errors == []
    page.context.close()


def at_risk_box(f, browser) -> tuple[str, int, str]:
    """The fleet page's "At risk" box as an operator sees it: its heading's count, its rows, the line after them."""
    operator = f.operator("alice")
    page = signed_in_page(browser, f.url, operator, viewport={"width": 1280, "height": 900})
    page.wait_for_selector("#risks li.risk")
    found = (page.locator("#risks-count").inner_text(), page.locator("#risks li.risk").count(),
             page.locator("#risks .more-risks").all_inner_texts())
    assert page.errors == []
    page.context.close()
    return found


@SQLITE
@pytest.mark.chromium
def test_the_fleet_page_counts_the_terminals_at_risk_and_those_past_its_list(fleet, browser):
    f = fleet()
    for i in range(102):
        tid = f"lane-{i:03d}"
        report = with_risks(make_report(tid, "store-042", verdict="healthy", cause="none"),
                            risk("trend.disk_filling", 1 + i, f"/srv/{tid}"))
        assert f.post(f.terminal(tid, "store-042"), report).status_code == 201
    count, rows, more = at_risk_box(f, browser)
    assert (count, rows, more) == ("102", 100, ["and 2 more terminals at risk"])


@SQLITE
@pytest.mark.chromium
def test_the_fleet_page_says_how_many_risks_of_the_listed_terminals_are_past_its_list(fleet, browser):
    f = fleet()
    many = with_risks(make_report("lane-1", "store-042", verdict="healthy", cause="none"),
                      *[risk("trend.disk_filling", 2 + i, f"/srv/{i}") for i in range(103)])
    one = with_risks(make_report("lane-2", "store-042", verdict="healthy", cause="none"), risk("tls.expiring_soon", 1, "pay"))
    assert f.post(f.terminal("lane-1", "store-042"), many).status_code == 201
    assert f.post(f.terminal("lane-2", "store-042"), one).status_code == 201
    assert at_risk_box(f, browser) == ("2", 100, ["and 4 more risks"])
