"""The read API and the page's door: operators read, terminals and strangers do not."""

from __future__ import annotations

import time

import pytest
import requests
from labs.collectorlab import iso, make_report

READS = ["/api/v1/terminals", "/api/v1/reports", "/api/v1/incidents", "/api/v1/reports/{rid}"]


def test_collector_refuses_reads_with_a_terminal_token_on_the_api_and_the_page(fleet):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    report = make_report("lane-01")
    assert f.post(token, report).status_code == 201
    for path in READS:
        answer = f.get(path.format(rid=report["report_id"]), token)
        assert answer.status_code == 403, path
        assert "terminal token cannot read" in answer.json()["error"]
    page = f.get("/", token)
    assert page.status_code == 403
    assert "network.wan" not in page.text
    signin = requests.post(f.url + "/signin", data={"token": token}, allow_redirects=False, timeout=10)
    assert signin.status_code == 403
    assert "terminals cannot sign in" in signin.text
    assert "posdiag_session" not in signin.cookies


def test_collector_asks_strangers_to_sign_in(fleet):
    f = fleet()
    for path in READS:
        answer = f.get(path.format(rid="00000000-0000-4000-8000-000000000000"))
        assert answer.status_code == 401, path
    assert f.get("/api/v1/terminals", "made-up-token").status_code == 401
    page = f.get("/")
    assert page.status_code == 303
    assert page.headers["location"] == "/signin"
    forged = requests.get(f.url + "/api/v1/terminals", cookies={"posdiag_session": "YWxpY2U.9999999999.00"}, timeout=10)
    assert forged.status_code == 401


def test_collector_signs_an_operator_in_with_an_httponly_strict_cookie_that_reads_the_api(fleet):
    f = fleet()
    operator = f.operator("alice")
    bad = requests.post(f.url + "/signin", data={"token": "wrong"}, allow_redirects=False, timeout=10)
    assert bad.status_code == 401
    assert "Unknown token" in bad.text
    session = requests.Session()
    answer = session.post(f.url + "/signin", data={"token": operator}, allow_redirects=False, timeout=10)
    assert answer.status_code == 303
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie
    assert "SameSite=strict" in cookie or "SameSite=Strict" in cookie
    assert "Secure" not in cookie  # plain HTTP here; over TLS it is Secure (test_collector_cli)
    assert "Max-Age=43200" in cookie  # session_hours = 12 by default
    assert session.get(f.url + "/api/v1/terminals", timeout=10).status_code == 200
    page = session.get(f.url + "/", timeout=10)
    assert page.status_code == 200
    assert "alice" in page.text
    assert "script-src 'self'" in page.headers["content-security-policy"]
    out = session.post(f.url + "/signout", allow_redirects=False, timeout=10)
    assert out.status_code == 303 and out.headers["location"] == "/signin"
    assert "posdiag_session" not in session.cookies  # the browser forgets it…
    expired = {part.strip().lower() for part in out.headers["set-cookie"].split(";")}
    # …through a cookie of the same name, path and flags as the one it replaces
    assert {'posdiag_session=""', "max-age=0", "path=/", "httponly", "samesite=strict"} <= expired, expired
    assert "secure" not in expired  # plain HTTP here, as the cookie it replaces
    assert session.get(f.url + "/api/v1/terminals", timeout=10).status_code == 401


def test_collector_session_cookie_is_honoured_by_another_process_on_the_same_database(fleet):
    first, second = fleet(), fleet()
    operator = first.operator("alice")
    session = requests.Session()
    assert session.post(first.url + "/signin", data={"token": operator}, allow_redirects=False, timeout=10).status_code == 303
    cookie = session.cookies.get("posdiag_session")
    answer = requests.get(second.url + "/api/v1/terminals", cookies={"posdiag_session": cookie}, timeout=10)
    assert answer.status_code == 200


def test_collector_lists_terminals_with_their_latest_verdict_and_filters_them(fleet):
    f = fleet(silent_after_min=15)
    operator = f.operator()
    tokens = {t: f.terminal(t, site) for t, site in (("a1", "store-a"), ("a2", "store-a"), ("b1", "store-b"))}
    f.terminal("quiet", "store-b")
    assert f.post(tokens["a1"], make_report("a1", "store-a", cause="network.wan")).status_code == 201
    assert f.post(tokens["a2"], make_report("a2", "store-a", verdict="healthy", cause="none")).status_code == 201
    assert f.post(tokens["b1"], make_report("b1", "store-b", cause="disk.full")).status_code == 201
    listed = {t["id"]: t for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    assert set(listed) == {"a1", "a2", "b1", "quiet"}
    assert listed["a1"]["verdict"] == "fault" and listed["a1"]["top_cause"] == "network.wan"
    assert listed["a1"]["agent_version"] == "0.1.0" and listed["a1"]["last_seen_at"]
    assert listed["quiet"]["silent"] and not listed["a1"]["silent"]

    def ids(**query: object) -> list[str]:
        return sorted(t["id"] for t in f.get("/api/v1/terminals", operator, **query).json()["terminals"])

    assert ids(site="store-a") == ["a1", "a2"]
    assert ids(cause="disk.full") == ["b1"]
    assert ids(silent_min=5) == ["quiet"]
    assert f.get("/api/v1/terminals", operator, silent_min="soon").status_code == 400


def heard_ago(f, ago_s: dict[str, float]) -> None:
    """Terminals of store-a, each registered, reporting once, and last heard from its seconds ago."""
    from labs.bigfleet import write

    now = time.time()
    for tid, seconds in ago_s.items():
        assert f.post(f.terminal(tid, "store-a"), make_report(tid, "store-a")).status_code == 201
        write(f.storage, "UPDATE terminals SET last_seen_at = ? WHERE id = ?", [(iso(now - seconds), tid)])


def test_a_terminal_unheard_for_longer_than_silent_after_min_is_silent_in_the_list_and_its_own_answer(fleet):
    """silent_after_min = 15: a terminal last heard from 14 min ago is not silent, one 16 min ago is,
    and the one-terminal answer (the terminal's page) says the same as the list (the fleet page)."""
    f = fleet(silent_after_min=15)
    operator = f.operator()
    heard_ago(f, {"heard-14": 14 * 60, "heard-16": 16 * 60})
    listed = {t["id"]: t["silent"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    own = {tid: f.get(f"/api/v1/terminals/{tid}", operator).json()["silent"] for tid in listed}
    assert listed == own == {"heard-14": False, "heard-16": True}
    metrics = requests.get(f.url + "/metrics", timeout=10).text  # Prometheus counts the same silence
    assert 'posdiag_collector_terminals{verdict="silent"} 1\n' in metrics
    missing = f.get("/api/v1/terminals/heard-99", operator)
    assert (missing.status_code, missing.json()) == (404, {"error": "no such terminal"})


def test_silent_min_lists_the_terminals_unheard_for_at_least_that_many_minutes(fleet):
    """?silent_min=100 is 6000 s: a terminal last heard 6050 s ago is listed, one 5950 s ago is not."""
    f = fleet(silent_after_min=15)
    operator = f.operator()
    heard_ago(f, {"heard-5950": 5950, "heard-6050": 6050})
    listed = [t["id"] for t in f.get("/api/v1/terminals", operator, silent_min=100).json()["terminals"]]
    assert listed == ["heard-6050"]


def report_ids_page_by_page(f, operator: str, terminal: str, limit: int) -> list[str]:
    """A terminal's report ids as a client reads them: ``limit`` a page, each page from the last one's cursor."""
    seen, before = [], None
    while True:
        page = f.get("/api/v1/reports", operator, terminal=terminal, limit=limit,
                     **({"before": before} if before else {})).json()
        seen += [r["report_id"] for r in page["reports"]]
        before = page["next_before"]
        if not before:
            return seen


def test_collector_lists_reports_newest_first_with_filters_and_paging(fleet):
    f = fleet()
    operator = f.operator()
    token = f.terminal("lane-01", "store-1")
    other = f.terminal("lane-02", "store-2")
    now = int(time.time())
    mine = [make_report("lane-01", started=now - 60 * i, cause="network.dns" if i % 2 else "network.wan") for i in range(7)]
    for report in mine:
        assert f.post(token, report).status_code == 201
    assert f.post(other, make_report("lane-02", "store-2", started=now)).status_code == 201
    everything = f.get("/api/v1/reports", operator, terminal="lane-01").json()
    assert [r["report_id"] for r in everything["reports"]] == [r["report_id"] for r in mine]
    seen = report_ids_page_by_page(f, operator, "lane-01", limit=3)
    assert seen == [r["report_id"] for r in mine]
    assert len(f.get("/api/v1/reports", operator, cause="network.dns").json()["reports"]) == 3
    assert len(f.get("/api/v1/reports", operator, site="store-2").json()["reports"]) == 1
    since = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 150))
    until = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 30))
    window = f.get("/api/v1/reports", operator, terminal="lane-01", since=since, until=until).json()["reports"]
    assert [r["report_id"] for r in window] == [mine[1]["report_id"], mine[2]["report_id"]]
    assert f.get("/api/v1/reports", operator, since="yesterday").status_code == 400
    whole = f.get(f"/api/v1/reports/{mine[3]['report_id']}", operator)
    assert whole.status_code == 200 and whole.json() == mine[3]
    assert f.get("/api/v1/reports/00000000-0000-4000-8000-000000000000", operator).status_code == 404


def test_reports_of_one_moment_are_listed_the_later_to_arrive_first_and_paged_without_loss(fleet):
    f = fleet()
    operator = f.operator()
    token = f.terminal("lane-01", "store-1")
    now = int(time.time())
    sent = [make_report("lane-01", started=now - 60, verdict=verdict, cause=cause)
            for verdict, cause in [("fault", "network.wan"), ("healthy", "none")] * 3]
    for report in sent:
        assert f.post(token, report).status_code == 201
    assert f.get("/api/v1/terminals/lane-01", operator).json()["last_report_id"] == sent[-1]["report_id"]
    seen = report_ids_page_by_page(f, operator, "lane-01", limit=4)
    assert seen == [r["report_id"] for r in reversed(sent)]
    assert f.get("/api/v1/reports", operator, before=f"{iso(now)}|{sent[0]['report_id']}").status_code == 400


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_time_stamp_in_the_right_shape_that_names_no_instant_is_refused_like_yesterday(fleet):
    """Month 13, 30 February, hour 25 or a trailing newline are no instant: 400, as "yesterday" is,
    not a window compared as text; the same stamps well formed are answered."""
    f = fleet()
    operator = f.operator()
    for bad in ("2026-13-01T10:00:00Z", "2026-02-30T10:00:00Z", "2026-11-29T25:00:00Z", "2026-11-29T10:15:02Z\n"):
        for path, name in [("/api/v1/reports", "since"), ("/api/v1/reports", "until"), ("/api/v1/incidents", "since"),
                           ("/api/v1/reports", "before")]:
            answer = f.get(path, operator, **{name: bad})
            assert answer.status_code == 400 and f"?{name}=" in answer.json()["error"], (path, name, bad)
    for path, name in [("/api/v1/reports", "since"), ("/api/v1/incidents", "until"), ("/api/v1/reports", "before")]:
        assert f.get(path, operator, **{name: "2026-02-28T23:59:59Z"}).status_code == 200, (path, name)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_collector_metrics_parse_as_prometheus_text_and_count_results(fleet):
    from prometheus_client.parser import text_string_to_metric_families

    f = fleet()
    token = f.terminal("lane-01", "store-1")
    report = make_report("lane-01")
    f.post(token, report)
    f.post(token, report)
    f.post("wrong", report)
    f.post(token, b"{", gzipped=False)
    text = requests.get(f.url + "/metrics", timeout=10).text
    samples = {(s.name, tuple(sorted(s.labels.items()))): s.value
               for family in text_string_to_metric_families(text) for s in family.samples}
    received = "posdiag_collector_reports_received_total"
    assert samples[(received, (("code", "201"), ("result", "stored")))] == 1
    assert samples[(received, (("code", "200"), ("result", "duplicate")))] == 1
    assert samples[(received, (("code", "401"), ("result", "refused")))] == 1
    assert samples[(received, (("code", "400"), ("result", "refused")))] == 1
    assert samples[("posdiag_collector_terminals", (("verdict", "fault"),))] == 1
    assert samples[("posdiag_collector_open_incidents", (("scope", "site"),))] == 0


def _fleet_of_states(f) -> str:
    """store-a: a fault, a degraded, a healthy terminal; store-b: a silent one and a healthy one; a
    revoked one. The operator's token."""
    operator = f.operator()
    for tid, site, verdict, cause in (("a-fault", "store-a", "fault", "network.wan"),
                                      ("a-slow", "store-a", "degraded", "network.degraded"),
                                      ("a-fine", "store-a", "healthy", "none"), ("b-fine", "store-b", "healthy", "none"),
                                      ("gone", "store-b", "healthy", "none")):
        token = f.terminal(tid, site)
        assert f.post(token, make_report(tid, site, verdict=verdict, cause=cause)).status_code == 201
    f.terminal("b-quiet", "store-b")
    assert f.storage.revoke_terminal("gone")
    return operator


def test_sites_are_summary_rows_by_state_faults_first_with_the_fleets_totals_and_causes(fleet):
    f = fleet(silent_after_min=15)
    operator = _fleet_of_states(f)
    answer = f.get("/api/v1/sites", operator).json()
    assert [s["site"] for s in answer["sites"]] == ["store-a", "store-b"]
    a, b = answer["sites"]
    assert (a["terminals"], a["fault"], a["degraded"], a["healthy"], a["silent"]) == (3, 1, 1, 1, 0)
    assert (b["terminals"], b["silent"], b["healthy"], b["revoked"]) == (3, 1, 1, 1)
    assert answer["totals"] == {"fault": 1, "silent": 1, "degraded": 1, "healthy": 2, "revoked": 1}
    assert answer["site_count"] == 2 and answer["next_offset"] is None
    assert {c["cause"]: c["terminals"] for c in answer["causes"]} == {"network.wan": 1, "network.degraded": 1, "none": 2}
    # Filters run on the server, for the rows, the totals and the causes alike.
    quiet = f.get("/api/v1/sites", operator, state="silent").json()
    assert [(s["site"], s["terminals"]) for s in quiet["sites"]] == [("store-b", 1)] and quiet["totals"]["silent"] == 1
    assert [s["site"] for s in f.get("/api/v1/sites", operator, q="B-").json()["sites"]] == ["store-b"]
    assert f.get("/api/v1/sites", operator, cause="network.wan").json()["totals"]["fault"] == 1
    assert f.get("/api/v1/sites", operator, limit=1).json()["next_offset"] == 1
    assert [s["site"] for s in f.get("/api/v1/sites", operator, limit=1, offset=1).json()["sites"]] == ["store-b"]
    assert f.get("/api/v1/sites", operator, state="broken").status_code == 400


def test_terminals_filter_by_state_and_search_and_page_in_attention_order(fleet):
    f = fleet(silent_after_min=15)
    operator = _fleet_of_states(f)

    def ids(**query: object) -> list[str]:
        return [t["id"] for t in f.get("/api/v1/terminals", operator, **query).json()["terminals"]]

    assert ids(order="state") == ["a-fault", "b-quiet", "a-slow", "a-fine", "b-fine", "gone"]
    flags = {t["id"]: (t["silent"], t["revoked"]) for t in f.get("/api/v1/terminals", operator).json()["terminals"]}
    assert flags["gone"] == (False, True) and flags["b-quiet"] == (True, False) and flags["a-fine"] == (False, False)
    assert ids(order="state", state="fault,silent") == ["a-fault", "b-quiet"]
    assert ids(order="state", q="FINE") == ["a-fine", "b-fine"]
    assert ids(order="state", q="store-b") == ["b-quiet", "b-fine", "gone"]
    assert ids(q="%") == [] and ids(q="_") == []  # LIKE's wildcards are matched as themselves
    first = f.get("/api/v1/terminals", operator, order="state", limit=4).json()
    assert first["next_offset"] == 4
    assert ids(order="state", limit=4, offset=4) == ["b-fine", "gone"]
    assert f.get("/api/v1/terminals", operator, order="sideways").status_code == 400
    assert f.get("/api/v1/terminals", operator, q="x" * 200).status_code == 400


def test_a_fleet_of_five_thousand_gives_the_page_every_faulty_and_silent_terminal(fleet):
    from labs import bigfleet

    f = fleet()
    operator = f.operator()
    built = bigfleet.build(f.storage, now=time.time(), terminals=5000, sites=500, faulty=25, silent=25, history=2)
    attention = f.get("/api/v1/terminals", operator, order="state", state="fault,silent", limit=100).json()
    assert {t["id"] for t in attention["terminals"]} == set(built.faulty) | set(built.silent)
    assert [t["id"] for t in attention["terminals"][:25]] and all(t["verdict"] == "fault" for t in attention["terminals"][:25])
    sites = f.get("/api/v1/sites", operator, limit=1000).json()
    assert len(sites["sites"]) == 500 and sum(s["terminals"] for s in sites["sites"]) == 5000
    failing = {s for t, s in built.site_of.items() if t in built.faulty}
    assert {s["site"] for s in sites["sites"][:len(failing)]} == failing
    assert sites["totals"]["fault"] == 25 and sites["totals"]["silent"] == 25
@pytest.mark.parametrize(("path", "high"), [("/api/v1/terminals", 10000), ("/api/v1/reports", 1000),
                                            ("/api/v1/incidents", 1000), ("/api/v1/sites", 1000), ("/api/v1/risks", 10000),
                                            ("/api/v1/terminals/lane-0/requests", 500)])
def test_collector_takes_a_limit_from_one_to_its_maximum_and_refuses_beyond(fleet, path, high):
    f = fleet()
    operator = f.operator()
    for i in range(2):
        token = f.terminal(f"lane-{i}", "store-1")
        assert f.post(token, make_report(f"lane-{i}", "store-1")).status_code == 201
    key = path.rsplit("/", 1)[1]
    one = f.get(path, operator, limit=1)
    assert one.status_code == 200 and len(one.json()[key]) <= 1, one.text
    assert f.get(path, operator, limit=high).status_code == 200
    for refused in (0, high + 1):
        answer = f.get(path, operator, limit=refused)
        assert answer.status_code == 400 and "?limit=" in answer.json()["error"], answer.text


# (path, query taken at its edge, the same just beyond): each documented range, both ends
QUERY_EDGES = [
    ("/api/v1/terminals", {"silent_min": "0"}, {"silent_min": "-1"}),
    ("/api/v1/terminals", {"silent_min": "10000000"}, {"silent_min": "10000001"}),
    ("/api/v1/terminals", {"order": "state", "offset": "0"}, {"order": "state", "offset": "-1"}),
    ("/api/v1/terminals", {"order": "state", "offset": "10000000"}, {"order": "state", "offset": "10000001"}),
    ("/api/v1/sites", {"offset": "0"}, {"offset": "-1"}),
    ("/api/v1/sites", {"offset": "10000000"}, {"offset": "10000001"}),
    ("/api/v1/terminals", {"q": "x" * 128}, {"q": "x" * 129}),
    ("/api/v1/sites", {"q": "x" * 128}, {"q": "x" * 129}),
    ("/api/v1/terminals", {"order": "seen"}, {"order": "sideways"}),
    ("/api/v1/terminals", {"state": "fault,silent"}, {"state": "fault,broken"}),
    ("/api/v1/reports", {"before": "2026-11-29T10:15:02Z"}, {"before": "2026-11-29 10:15:02"}),
    ("/api/v1/reports", {"before": "2026-11-29T10:15:02Z|12"}, {"before": "2026-11-29T10:15:02Z|x12"}),
    ("/api/v1/reports", {"until": "2026-11-29T10:15:02Z"}, {"until": "2026-11-29"}),
    ("/api/v1/incidents", {"since": "2026-11-29T10:15:02Z"}, {"since": "today"}),
]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("path", "taken", "refused"), QUERY_EDGES)
def test_collector_takes_a_query_at_the_edge_of_its_range_and_refuses_it_just_beyond(fleet, path, taken, refused):
    f = fleet()
    operator = f.operator()
    answer = f.get(path, operator, **taken)
    assert answer.status_code == 200, answer.text
    beyond = f.get(path, operator, **refused)
    assert beyond.status_code == 400 and beyond.json()["error"].startswith("?"), beyond.text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_each_list_without_a_limit_gives_its_documented_page(fleet):
    """docs/collector.md: terminals [1000], sites [100], reports [100], risks [1000] a page, and the
    cursor of the next one when the page is full."""
    from labs import bigfleet

    f = fleet()
    operator = f.operator()
    built = bigfleet.build(f.storage, now=time.time(), terminals=1004, sites=101, faulty=0, silent=0, at_risk=1001)
    assert len(built.at_risk) == 1001
    terminals = f.get("/api/v1/terminals", operator).json()
    assert len(terminals["terminals"]) == 1000 and terminals["next_before"]
    sites = f.get("/api/v1/sites", operator).json()
    assert len(sites["sites"]) == 100 and sites["next_offset"] == 100 and sites["site_count"] == 101
    reports = f.get("/api/v1/reports", operator).json()
    assert len(reports["reports"]) == 100 and reports["next_before"]
    risks = f.get("/api/v1/risks", operator).json()
    assert len(risks["risks"]) == 1000 and risks["terminals"] == 1001 and risks["risk_count"] > 1000


def test_an_empty_state_filter_means_every_state(fleet):
    f = fleet(silent_after_min=15)
    operator = _fleet_of_states(f)
    every = [t["id"] for t in f.get("/api/v1/terminals", operator).json()["terminals"]]
    assert len(every) == 6 and [t["id"] for t in f.get("/api/v1/terminals", operator, state="").json()["terminals"]] == every
    assert [t["id"] for t in f.get("/api/v1/terminals", operator, state=",fault,").json()["terminals"]] == ["a-fault"]


@pytest.mark.parametrize("scheme", ["bearer", "BEARER", "Bearer"])
def test_collector_reads_the_bearer_scheme_whatever_its_case(fleet, scheme):
    """RFC 7235: the authentication scheme is case-insensitive, for terminals and operators alike."""
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    posted = f.post(None, make_report("lane-01", "store-1"), headers={"Authorization": f"{scheme} {token}"})
    assert posted.status_code == 201, posted.text
    read = f.http.get(f.url + "/api/v1/terminals", headers={"Authorization": f"{scheme} {f.operator()}"}, timeout=30)
    assert read.status_code == 200, read.text


def test_a_session_cookie_holds_until_its_expiry_and_not_a_second_longer():
    from posdiag.collector.tokens import new_session_key, sign_session, verify_session

    key = new_session_key()
    cookie = sign_session(key, "ops", 60, now=1_000)
    assert verify_session(key, cookie, now=1_060) == "ops"
    assert verify_session(key, cookie, now=1_061) is None
    name, expires, nonce, sig = cookie.split(".")
    assert verify_session(key, f"{name}.{int(expires) + 3600}.{nonce}.{sig}", now=1_000) is None  # a prolonged expiry
    assert verify_session(new_session_key(), cookie, now=1_000) is None  # another database's key
    assert verify_session(key, cookie.replace(".", "", 1), now=1_000) is None  # mangled


def test_tokens_carry_256_random_bits_and_session_cookies_128_of_their_own():
    """What makes a token unguessable (32 random bytes) and two sign-ins' cookies different (16 of their own)."""
    from posdiag.collector.tokens import new_session_key, new_token, sign_session

    tokens = {new_token() for _ in range(3)}
    assert len(tokens) == 3 and {len(t) for t in tokens} == {43}  # 32 bytes, base64url without padding
    assert len(new_session_key()) == 64  # 32 bytes in hex
    nonce = sign_session(new_session_key(), "ops", 60, now=1_000).split(".")[2]
    assert len(nonce) == 22  # 16 bytes


def test_metrics_start_with_a_zero_for_each_answer_a_dashboard_plots():
    from posdiag.collector.metrics import render

    text = render({}, {}, [], {"pruned": 0, "alerts": None})
    received = [line for line in text.splitlines() if line.startswith("posdiag_collector_reports_received_total{")]
    assert received == ['posdiag_collector_reports_received_total{result="duplicate",code="200"} 0',
                        'posdiag_collector_reports_received_total{result="stored",code="201"} 0']
    assert 'posdiag_collector_terminals{verdict="silent"} 0' in text
    for scope in ("site", "fleet"):
        assert f'posdiag_collector_open_incidents{{scope="{scope}"}} 0' in text


def test_metrics_count_each_answer_by_result_and_code_and_total_open_incidents_by_scope():
    from posdiag.collector.metrics import ReceivedCounter, render

    counter = ReceivedCounter()
    for status in (201, 201, 200, 409, 429):
        counter.count(status)
    rows = [{"scope": "site", "cause": "network.wan", "site": 'store "1"\\x\n', "n": 2},
            {"scope": "site", "cause": "disk.full", "site": "store-2", "n": 1},
            {"scope": "fleet", "cause": "network.wan", "site": "", "n": 1}]
    lines = render(counter.snapshot(), {"fault": 3}, rows, {"pruned": 7, "alerts": {"sent": 4}}).splitlines()
    assert [line for line in lines if line.startswith("posdiag_collector_reports_received_total{")] == [
        'posdiag_collector_reports_received_total{result="duplicate",code="200"} 1',
        'posdiag_collector_reports_received_total{result="refused",code="409"} 1',
        'posdiag_collector_reports_received_total{result="refused",code="429"} 1',
        'posdiag_collector_reports_received_total{result="stored",code="201"} 2']
    assert [line for line in lines if line.startswith(("posdiag_collector_open_incidents", "posdiag_incident_open{"))] == [
        'posdiag_incident_open{scope="site",cause="network.wan",site="store \\"1\\"\\\\x\\n"} 2',
        'posdiag_incident_open{scope="site",cause="disk.full",site="store-2"} 1',
        'posdiag_incident_open{scope="fleet",cause="network.wan",site=""} 1',
        'posdiag_collector_open_incidents{scope="site"} 3', 'posdiag_collector_open_incidents{scope="fleet"} 1',
        'posdiag_collector_open_incidents_by_cause{scope="fleet",cause="network.wan"} 1',
        'posdiag_collector_open_incidents_by_cause{scope="site",cause="disk.full"} 1',
        'posdiag_collector_open_incidents_by_cause{scope="site",cause="network.wan"} 2']
    assert 'posdiag_collector_alert_webhook_attempts_total{result="sent"} 4' in lines
    assert "posdiag_collector_reports_pruned_total 7" in lines and 'posdiag_collector_terminals{verdict="fault"} 3' in lines


def test_reports_with_and_without_certainty_are_stored_and_read_back_as_sent(fleet):
    """A report of this agent (certainty, a new cause id, what was not checked) and one of an older
    agent (none of these) are both accepted and read back whole."""
    f = fleet()
    token, operator = f.terminal("lane-01", "store-1"), f.operator("ops")
    old = make_report("lane-01", started=time.time() - 60)
    new = make_report("lane-01", cause="host.upstream", verdict="degraded", certainty=0.38)
    new["diagnosis"]["not_checked"] = [{"area": "network", "reason": "no payment host configured", "probes": []}]
    new["only"] = {"asked": ["txlog"], "prerequisites": []}
    for report in (old, new):
        assert f.post(token, report).status_code == 201
    assert f.get(f"/api/v1/reports/{old['report_id']}", operator).json()["diagnosis"] == old["diagnosis"]
    read = f.get(f"/api/v1/reports/{new['report_id']}", operator).json()
    assert read["diagnosis"]["causes"][0]["certainty"] == 0.38 and read["diagnosis"] == new["diagnosis"]
    listed = f.get("/api/v1/terminals", operator).json()
    rows = listed["terminals"] if isinstance(listed, dict) else listed
    assert next(t for t in rows if t["id"] == "lane-01")["top_cause"] == "host.upstream"
