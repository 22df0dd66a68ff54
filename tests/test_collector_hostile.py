"""One broken or hostile terminal must not blind operations: each finding of the collector's red team,
against a real collector on SQLite and on PostgreSQL.

Impossible or far-future times are refused at intake, and a bad row stored by an earlier version
breaks no read; a report from the future cannot pin a terminal or an incident; a terminal's site is
fixed once; sessions end at sign-out; cross-site forms are refused; ``/healthz`` tells nothing about
the database's insides.
"""

from __future__ import annotations

import io
import json
import threading
import time

import pytest
import requests
from labs.collectorlab import iso, make_report
from posdiag.collector import cli

IMPOSSIBLE = ["9999-99-99T99:99:99Z", "2026-01-01T25:00:00Z", "2026-02-30T10:00:00Z"]


@pytest.mark.parametrize("stamp", IMPOSSIBLE)
def test_intake_refuses_a_report_whose_started_at_is_not_a_real_instant(fleet, stamp):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    report = make_report("lane-01")
    report["started_at"] = stamp
    answer = f.post(token, report)
    assert answer.status_code == 400, answer.text
    assert "started_at" in answer.json()["error"] and "not a real" in answer.json()["error"]
    assert f.stored() == 0


def test_intake_refuses_a_report_more_than_a_day_ahead_and_takes_one_a_few_hours_ahead(fleet):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    far = f.post(token, make_report("lane-01", started=time.time() + 2 * 86400))
    assert far.status_code == 400 and "ahead of the collector's clock" in far.json()["error"]
    assert f.post(token, make_report("lane-01", started=time.time() + 3 * 3600)).status_code == 201  # a skewed clock
    assert f.stored() == 1


def test_intake_refuses_a_report_older_than_the_retention_as_expired(fleet):
    f = fleet(retain_days=30)
    token = f.terminal("lane-01", "store-1")
    old = f.post(token, make_report("lane-01", started=time.time() - 31 * 86400))
    assert old.status_code == 400 and "expired" in old.json()["error"]
    assert f.post(token, make_report("lane-01", started=time.time() - 29 * 86400)).status_code == 201
    assert f.stored() == 1


NOW = 1_800_000_000.0  # a fixed "now" for the checks of time alone


def _checked(started: float, retain_days: float = 30) -> int | None:
    """The status ``check_time`` refuses a report started at ``started`` with, or None when it takes it."""
    from posdiag.collector import intake

    report = intake.decode(json.dumps(make_report("lane-01", started=started)).encode(), "", 1 << 20)
    try:
        intake.check_time(report, NOW, retain_days)
    except intake.Refused as exc:
        return exc.status
    return None


@pytest.mark.parametrize(("started", "status"), [
    (NOW + 86400, None), (NOW + 86400 + 1, 400),  # a day ahead of the collector's clock, either side
    (NOW - 30 * 86400, None), (NOW - 30 * 86400 - 1, 400),  # the retention (30 days), either side
    (NOW, None), (NOW - 60, None), (NOW + 60, None)])
def test_intake_takes_a_start_up_to_a_day_ahead_and_back_to_the_retention_and_no_further(started, status):
    assert _checked(started) == status


def test_intake_counts_the_retention_in_days_as_set():
    assert _checked(NOW - 40 * 86400, retain_days=41) is None
    assert _checked(NOW - 40 * 86400, retain_days=39) == 400


def test_a_bad_row_stored_by_an_earlier_version_breaks_no_read(fleet):
    f = fleet()
    operator = f.operator()
    tokens = {t: f.terminal(t, "store-1") for t in ("lane-01", "lane-02")}
    for tid, token in tokens.items():
        assert f.post(token, make_report(tid)).status_code == 201
    # What an earlier version stored for a report claiming 9999-99-99T99:99:99Z.
    bad = make_report("lane-01")
    f.sql("INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, top_cause, agent_version, "
          "body) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
          (bad["report_id"], "lane-01", "store-1", "9999-99-99T99:99:99Z", iso(time.time()), "fault", "network.wan", "0.1.0",
           "{}"))
    f.sql("UPDATE terminals SET last_started_at = ? WHERE id = ?", ("9999-99-99T99:99:99Z", "lane-01"))
    for path in ("/api/v1/incidents", "/api/v1/terminals", "/api/v1/reports", "/api/v1/sites"):
        answer = f.get(path, operator)
        assert answer.status_code == 200, (path, answer.text)
    assert {t["id"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]} == {"lane-01", "lane-02"}
    assert requests.get(f.url + "/metrics", timeout=10).status_code == 200
    # And the terminal is not pinned by it: its next real report still decides its state.
    assert f.post(tokens["lane-01"], make_report("lane-01", verdict="healthy", cause="none")).status_code == 201
    states = {t["id"]: t["verdict"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    assert states["lane-01"] == "healthy"


def test_a_report_from_the_future_cannot_pin_a_terminals_state_or_keep_an_incident_open(fleet):
    f = fleet()
    operator = f.operator()
    tokens = {t: f.terminal(t, "store-1") for t in ("lane-01", "lane-02")}
    ahead = time.time() + 20 * 3600  # a clock 20 h fast: accepted, but it may not outrank the present
    for tid, token in tokens.items():
        assert f.post(token, make_report(tid, started=ahead, cause="network.wan")).status_code == 201
    [incident] = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert incident["open"] is True
    for tid, token in tokens.items():
        assert f.post(token, make_report(tid, verdict="healthy", cause="none")).status_code == 201
    states = {t["id"]: t["verdict"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    assert states == {"lane-01": "healthy", "lane-02": "healthy"}
    [incident] = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert incident["open"] is False


def test_a_terminal_registered_without_a_site_is_fixed_to_one_site_however_its_first_reports_race(fleet):
    f = fleet()
    operator = f.operator()
    for lane in range(5):  # five terminals, each with 24 first reports at once, each report naming its own site
        tid = f"lane-{lane}"
        token = f.terminal(tid)  # no site: its first report names it
        barrier = threading.Barrier(24)
        codes: list[int] = []

        def send(site: str, tid: str = tid, token: str = token, barrier: threading.Barrier = barrier,
                 codes: list[int] = codes) -> None:
            report = make_report(tid, site, cause="network.wan")
            barrier.wait()
            codes.append(f.post(token, report).status_code)

        threads = [threading.Thread(target=send, args=(f"store-{i}",)) for i in range(24)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert codes == [201] * 24
        sites = {r["site"] for r in f.get("/api/v1/reports", operator, terminal=tid).json()["reports"]}
        registered = {t["id"]: t["site"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
        assert sites == {registered[tid]}, tid
    # One site each: never a site "incident" of one terminal, nor a "fleet" one of lone terminals.
    assert all(i["terminal_count"] >= 2 for i in f.get("/api/v1/incidents", operator).json()["incidents"])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_read_no_report_rows_however_many_are_stored(fleet):
    """Incidents are kept as reports arrive: /metrics reads the incidents and terminals, never the reports."""
    f = fleet()
    tokens = {t: f.terminal(t, "store-1") for t in ("lane-01", "lane-02")}
    for tid, token in tokens.items():
        assert f.post(token, make_report(tid, cause="network.wan")).status_code == 201
    statements: list[str] = []
    with f.tracing(statements):
        text = requests.get(f.url + "/metrics", timeout=10).text
    assert 'posdiag_incident_open{scope="site",cause="network.wan",site="store-1"} 1' in text
    assert statements and not [s for s in statements if "reports" in s.lower()]


def _signed_in(f, operator: str) -> requests.Session:
    session = requests.Session()
    answer = session.post(f.url + "/signin", data={"token": operator}, headers={"Origin": f.url}, allow_redirects=False,
                          timeout=10)
    assert answer.status_code == 303, answer.text
    return session


@pytest.mark.parametrize(("headers", "cross"), [
    ({"origin": "http://127.0.0.1:8080", "host": "127.0.0.1:8080"}, False),
    ({"origin": "https://Fleet.Example", "host": "fleet.example"}, False),
    ({"origin": "http://127.0.0.1:8081", "host": "127.0.0.1:8080"}, True),
    ({"origin": "null", "host": "null"}, True),
    ({"sec-fetch-site": "same-origin"}, False), ({"sec-fetch-site": "none"}, False),
    ({"sec-fetch-site": "same-site"}, True), ({"sec-fetch-site": "cross-site"}, True),
    ({}, False)])
def test_a_form_post_is_cross_site_when_its_origin_is_another_host_or_null_or_the_browser_says_so(headers, cross):
    """A typed address bar is ``none``, a sibling subdomain ``same-site``: only the page itself may post its forms;
    a client that names no origin at all is no browser."""
    from posdiag.collector.auth import cross_site

    assert cross_site(headers) is cross


@pytest.mark.parametrize(("value", "token"), [("Bearer abc", "abc"), ("bearer   abc  ", "abc"), ("Bearer ", None),
                                              ("Bearer    ", None), ("Basic abc", None), ("Bearerabc", None), ("", None)])
def test_a_bearer_token_is_what_follows_the_bearer_scheme_and_nothing_else_is_one(value, token):
    from posdiag.collector.auth import bearer

    assert bearer({"authorization": value} if value else {}) == token


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize("path,form", [("/signin", {"token": "x"}), ("/signout", {}), ("/lang", {"lang": "zh_CN"})])
def test_the_pages_forms_refuse_a_post_from_another_site(fleet, path, form):
    f = fleet()
    operator = f.operator("alice")
    if path == "/signin":
        form = {"token": operator}
    for headers in ({"Origin": "http://evil.example"}, {"Origin": "null"}, {"Sec-Fetch-Site": "cross-site"}):
        session = _signed_in(f, operator)
        answer = session.post(f.url + path, data=form, headers=headers, allow_redirects=False, timeout=10)
        assert answer.status_code == 403, (headers, answer.status_code)
        assert "set-cookie" not in answer.headers
        assert session.get(f.url + "/api/v1/terminals", timeout=10).status_code == 200  # still signed in
    same = requests.post(f.url + path, data=form, headers={"Origin": f.url}, allow_redirects=False, timeout=10)
    assert same.status_code == 303


def test_a_session_cookie_replayed_after_sign_out_no_longer_reads(fleet):
    f = fleet()
    operator = f.operator("alice")
    session = _signed_in(f, operator)
    copied = session.cookies.get("posdiag_session")
    assert session.post(f.url + "/signout", headers={"Origin": f.url}, allow_redirects=False, timeout=10).status_code == 303
    replay = requests.get(f.url + "/api/v1/terminals", cookies={"posdiag_session": copied}, timeout=10)
    assert replay.status_code == 401


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_two_sign_ins_in_the_same_second_get_different_cookies_and_sign_out_ends_only_its_own(fleet):
    f = fleet()
    operator = f.operator("alice")
    first, second = _signed_in(f, operator), _signed_in(f, operator)
    assert first.cookies.get("posdiag_session") != second.cookies.get("posdiag_session")
    first.post(f.url + "/signout", headers={"Origin": f.url}, allow_redirects=False, timeout=10)
    assert second.get(f.url + "/api/v1/terminals", timeout=10).status_code == 200


def test_remove_operator_locks_out_their_token_and_their_sessions_at_once(fleet, db_url):
    f = fleet()
    operator = f.operator("alice")
    keeper = f.operator("bob")
    session = _signed_in(f, operator)
    out, err = io.StringIO(), io.StringIO()
    assert cli.main(["remove-operator", "alice", "--db", db_url], out, err) == 0, err.getvalue()
    assert f.get("/api/v1/terminals", operator).status_code == 401
    assert session.get(f.url + "/api/v1/terminals", timeout=10).status_code == 401
    assert f.get("/api/v1/terminals", keeper).status_code == 200
    err = io.StringIO()
    assert cli.main(["remove-operator", "alice", "--db", db_url], io.StringIO(), err) == 1
    assert "no operator 'alice'" in err.getvalue()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_non_ascii_session_cookie_is_told_to_sign_in_not_answered_500(fleet):
    f = fleet()
    for value in ("é.1.x", "YWxpY2U.9999999999.ü", "\u202e"):
        answer = requests.get(f.url + "/api/v1/terminals", headers={"Cookie": f"posdiag_session={value}".encode()},
                              timeout=10)
        assert answer.status_code == 401, value
        page = requests.get(f.url + "/", headers={"Cookie": f"posdiag_session={value}".encode()}, allow_redirects=False,
                            timeout=10)
        assert page.status_code == 303, value


def test_healthz_says_unavailable_without_the_databases_own_error(fleet, db_url):
    f = fleet()
    assert requests.get(f.url + "/healthz", timeout=10).status_code == 200
    f.sql("DROP TABLE schema_version")
    answer = requests.get(f.url + "/healthz", timeout=10)
    assert answer.status_code == 503
    assert answer.json() == {"status": "unavailable"}
    assert "schema_version" not in answer.text and db_url.rsplit("/", 1)[-1] not in answer.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_metrics_say_the_database_is_unavailable_without_its_own_error(fleet):
    f = fleet()
    assert requests.get(f.url + "/metrics", timeout=10).status_code == 200
    f.sql("ALTER TABLE terminals RENAME TO terminals_gone")
    answer = requests.get(f.url + "/metrics", timeout=10)
    assert (answer.status_code, answer.text) == (503, "database unavailable\n")
