"""Remote requests at the collector, on SQLite and on a real PostgreSQL: an operator asks, the
terminal fetches and answers its own and only its own; asking twice is asking once; requests expire;
every step is audited."""

from __future__ import annotations

import gzip
import io
import json
import tarfile
import threading
import time

import pytest
import requests
from labs.collectorlab import make_report
from labs.helpers import wait_for


def remote_report(terminal: str, request_id: str, **kw) -> dict:
    report = make_report(terminal, **kw)
    report["trigger"] = "remote"
    report["request_id"] = request_id
    return report


def small_bundle(text: str = "terminal: lane-1\n") -> bytes:
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        data = text.encode()
        info = tarfile.TarInfo("posdiag-bundle/summary.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


class Desk:
    """The help desk's and the terminals' calls, over HTTP, against one running collector."""

    def __init__(self, fleet) -> None:
        self.f = fleet
        self.url = fleet.url

    def ask(self, operator: str, terminal: str, kind: str = "diagnose") -> requests.Response:
        return requests.post(f"{self.url}/api/v1/terminals/{terminal}/requests", json={"kind": kind},
                             headers={"Authorization": f"Bearer {operator}"}, timeout=30)

    def request(self, operator: str, request_id: str) -> dict:
        answer = self.f.get(f"/api/v1/requests/{request_id}", operator)
        assert answer.status_code == 200, answer.text
        return answer.json()

    def poll(self, token: str) -> requests.Response:
        return self.f.get("/api/v1/requests/pending", token)

    def upload(self, token: str, request_id: str, body: bytes) -> requests.Response:
        return requests.put(f"{self.url}/api/v1/requests/{request_id}/bundle", data=body, timeout=30,
                            headers={"Authorization": f"Bearer {token}", "Content-Type": "application/gzip"})

    def fail(self, token: str, request_id: str, error: str) -> requests.Response:
        return requests.post(f"{self.url}/api/v1/requests/{request_id}/failure", json={"error": error}, timeout=30,
                             headers={"Authorization": f"Bearer {token}"})


REQUEST_ID = "0b6f5a4e-2c1d-4e3f-9a8b-7c6d5e4f3a2b"


def test_only_a_remote_report_answers_a_request():
    """A scheduled report that happens to carry a ``request_id`` answers nothing: only an asked one does."""
    from posdiag.collector import intake

    remote = remote_report("lane-1", REQUEST_ID)
    scheduled = {**remote, "trigger": "schedule"}
    assert intake.decode(json.dumps(remote).encode(), "", 1 << 20).request_id == REQUEST_ID
    assert intake.decode(json.dumps(scheduled).encode(), "", 1 << 20).request_id is None


def test_a_terminal_fetches_and_answers_its_own_diagnose_request_and_never_another_terminals(fleet):
    f = fleet()
    desk = Desk(f)
    lane1, lane2 = f.terminal("lane-1", "store-1"), f.terminal("lane-2", "store-1")
    alice, bob = f.operator("alice"), f.operator("bob")

    asked = desk.ask(alice, "lane-1")
    assert asked.status_code == 202, asked.text
    request_id = asked.json()["request_id"]
    assert asked.json()["state"] == "pending" and asked.json()["requested_by"] == "alice"
    again = desk.ask(bob, "lane-1")  # a second desk asking while it is open: the same request, audited
    assert again.status_code == 202 and again.json()["request_id"] == request_id

    assert desk.poll(lane2).json() == {"requests": []}
    fetched = desk.poll(lane1).json()["requests"]
    assert [(r["request_id"], r["kind"]) for r in fetched] == [(request_id, "diagnose")]
    assert set(fetched[0]) == {"request_id", "kind", "created_at", "expires_at"}  # what the terminal is told, no more
    assert desk.request(alice, request_id)["state"] == "delivered"

    # lane-2 cannot answer it: not with a report naming it, not with a bundle, not with a failure.
    assert f.post(lane2, remote_report("lane-2", request_id)).status_code == 201  # its own report is stored
    assert desk.upload(lane2, request_id, small_bundle()).status_code == 404
    assert desk.fail(lane2, request_id, "nope").status_code == 404
    assert desk.request(alice, request_id)["state"] == "delivered"

    answer = remote_report("lane-1", request_id, cause="network.dns")
    assert f.post(lane1, answer).status_code == 201
    done = desk.request(alice, request_id)
    assert done["state"] == "done" and done["report_id"] == answer["report_id"]
    assert [(e["actor"], e["event"]) for e in done["events"]] == [
        ("operator:alice", "asked"), ("operator:bob", "asked again"), ("terminal:lane-1", "delivered"),
        ("terminal:lane-1", "done")]
    assert desk.poll(lane1).json() == {"requests": []}
    assert f.get(f"/api/v1/reports/{answer['report_id']}", alice).json()["trigger"] == "remote"
    listed = f.get("/api/v1/terminals/lane-1/requests", alice).json()["requests"]
    assert [r["request_id"] for r in listed] == [request_id]
    assert f.get("/api/v1/terminals/lane-2/requests", alice).json()["requests"] == []


def test_a_bundle_is_uploaded_once_and_downloaded_by_an_operator_with_an_audit_trail(fleet):
    f = fleet()
    desk = Desk(f)
    lane1 = f.terminal("lane-1", "store-1")
    alice = f.operator("alice")
    request_id = desk.ask(alice, "lane-1", "bundle").json()["request_id"]
    assert desk.poll(lane1).json()["requests"][0]["kind"] == "bundle"
    body = small_bundle()
    assert desk.upload(lane1, request_id, body).status_code == 201
    assert desk.upload(lane1, request_id, body).status_code == 200  # a retry after a lost answer: still done
    state = desk.request(alice, request_id)
    assert state["state"] == "done" and state["bundle_url"] == f"/api/v1/requests/{request_id}/bundle"
    assert state["bundle_bytes"] == len(body)

    assert f.get(state["bundle_url"], lane1).status_code == 403  # a terminal never downloads one
    download = f.get(state["bundle_url"], alice)
    assert download.status_code == 200 and download.content == body
    assert download.headers["content-type"] == "application/gzip"
    assert download.headers["content-disposition"].startswith('attachment; filename="posdiag-bundle-lane-1-')
    assert ("operator:alice", "downloaded") in [(e["actor"], e["event"]) for e in desk.request(alice, request_id)["events"]]
    # A diagnose report cannot answer a bundle request.
    other = desk.ask(alice, "lane-1", "bundle").json()["request_id"]
    assert other != request_id  # the first is answered: a new ask is a new request
    assert f.post(lane1, remote_report("lane-1", other)).status_code == 201
    assert desk.request(alice, other)["state"] == "pending"


def test_every_operator_answer_names_what_the_request_asks_for_with_every_documented_field(fleet):
    """The help desk tells a diagnose from a bundle by ``kind``, in the answer to the ask, the request
    read by id and the terminal's list, each with the fields docs/collector.md lists."""
    f = fleet()
    desk = Desk(f)
    f.terminal("lane-1")
    alice = f.operator("alice")
    fields = {"request_id", "terminal_id", "kind", "state", "created_at", "requested_by", "expires_at", "delivered_at",
              "finished_at"}
    asked = {kind: desk.ask(alice, "lane-1", kind).json() for kind in ("diagnose", "bundle")}
    for kind, answer in asked.items():
        assert set(answer) == fields and answer["kind"] == kind, answer
        one = desk.request(alice, answer["request_id"])
        assert set(one) == fields | {"events"} and one["kind"] == kind, one
    listed = f.get("/api/v1/terminals/lane-1/requests", alice).json()["requests"]
    assert sorted((r["request_id"], r["kind"]) for r in listed) == sorted((a["request_id"], k) for k, a in asked.items())
    assert all(set(r) == fields for r in listed), listed


def test_a_terminal_that_cannot_do_it_says_why_and_the_request_fails(fleet):
    f = fleet()
    desk = Desk(f)
    lane1 = f.terminal("lane-1")
    alice = f.operator("alice")
    request_id = desk.ask(alice, "lane-1", "bundle").json()["request_id"]
    answer = desk.fail(lane1, request_id, "no room  for the bundle\nin /var/lib/posdiag")
    assert answer.status_code == 200 and answer.json()["state"] == "failed"
    failed = desk.request(alice, request_id)
    assert failed["state"] == "failed" and failed["error"] == "no room for the bundle in /var/lib/posdiag"
    assert "bundle_url" not in failed
    assert desk.upload(lane1, request_id, small_bundle()).status_code == 200  # already failed: nothing changes
    assert desk.request(alice, request_id)["state"] == "failed"
    nothing = f.get(f"/api/v1/requests/{request_id}/bundle", alice)
    assert nothing.status_code == 404 and nothing.json() == {"error": "no bundle for this request"}
    unknown = f.get(f"/api/v1/requests/{REQUEST_ID}", alice)
    assert unknown.status_code == 404 and unknown.json() == {"error": "no such request"}


def test_a_terminals_failure_is_told_in_a_body_of_4_kib_at_most_and_kept_to_500_characters(fleet):
    f = fleet()
    desk = Desk(f)
    lane1 = f.terminal("lane-1")
    alice = f.operator("alice")
    diagnose, bundle = (desk.ask(alice, "lane-1", kind).json()["request_id"] for kind in ("diagnose", "bundle"))
    # {"error": "…"} is 13 bytes around the message: 4084 characters make a body of 4097 bytes, 4083 one of 4096
    too_big = desk.fail(lane1, diagnose, "x" * 4084)
    assert too_big.status_code == 413 and "body too large" in too_big.json()["error"]
    blank = desk.fail(lane1, diagnose, " \n ")
    assert blank.status_code == 400 and blank.json()["error"] == 'expected {"error": "what went wrong"}'
    assert desk.request(alice, diagnose)["state"] == "pending"
    assert desk.fail(lane1, diagnose, "x" * 4083).status_code == 200
    assert desk.request(alice, diagnose)["error"] == "x" * 500
    assert desk.fail(lane1, bundle, "y" * 499 + "z").status_code == 200
    assert desk.request(alice, bundle)["error"] == "y" * 499 + "z"


def test_an_unanswered_request_expires_and_can_no_longer_be_fetched_or_answered(fleet):
    f = fleet(request_expiry_min=1.5 / 60)
    desk = Desk(f)
    lane1 = f.terminal("lane-1")
    alice = f.operator("alice")
    request_id = desk.ask(alice, "lane-1", "bundle").json()["request_id"]
    assert wait_for(lambda: desk.request(alice, request_id)["state"] == "expired", 30, interval=0.2)
    assert desk.poll(lane1).json() == {"requests": []}
    assert desk.upload(lane1, request_id, small_bundle()).status_code == 410
    assert desk.request(alice, request_id)["state"] == "expired"
    fresh = desk.ask(alice, "lane-1", "bundle").json()
    assert fresh["request_id"] != request_id and fresh["state"] == "pending"


def test_remote_requests_are_for_operators_to_ask_and_terminals_to_fetch(fleet):
    f = fleet(max_bundle_bytes=4096)
    desk = Desk(f)
    lane1, gone = f.terminal("lane-1"), f.terminal("lane-gone")
    f.storage.revoke_terminal("lane-gone")
    alice = f.operator("alice")
    assert desk.ask(lane1, "lane-1").status_code == 403  # a terminal cannot ask
    assert requests.post(f"{f.url}/api/v1/terminals/lane-1/requests", json={"kind": "diagnose"}, timeout=10).status_code == 401
    assert desk.ask(alice, "nobody").status_code == 404
    assert desk.ask(alice, "lane-gone").status_code == 409
    assert desk.ask(alice, "lane-1", "reboot").status_code == 400
    assert desk.poll(alice).status_code == 403  # an operator does not fetch a terminal's work
    assert desk.poll(gone).status_code == 401 and desk.poll("made-up").status_code == 401
    assert f.get("/api/v1/requests/pending").status_code == 401
    request_id = desk.ask(alice, "lane-1", "bundle").json()["request_id"]
    assert f.get(f"/api/v1/requests/{request_id}", lane1).status_code == 403  # nor reads requests by id
    assert desk.upload(lane1, request_id, b"PK\x03\x04 not gzip").status_code == 400
    assert desk.upload(lane1, request_id, gzip.compress(b"x") + b"\0" * 5000).status_code == 413
    assert desk.request(alice, request_id)["state"] == "pending"

    # Signed in on the page, the ask must be JSON: a cross-site form post carrying the cookie is not one.
    session = requests.Session()
    assert session.post(f.url + "/signin", data={"token": alice}, allow_redirects=False, timeout=10).status_code == 303
    form = session.post(f"{f.url}/api/v1/terminals/lane-1/requests", data={"kind": "diagnose"}, timeout=10)
    assert form.status_code == 415
    assert session.post(f"{f.url}/api/v1/terminals/lane-1/requests", json={"kind": "diagnose"}, timeout=10).status_code == 202


def test_a_bundle_of_exactly_the_limit_is_taken_and_only_by_a_bundle_request_of_the_terminals_own(fleet):
    f = fleet(max_bundle_bytes=4096)
    desk = Desk(f)
    lane1, lane2, gone = f.terminal("lane-1"), f.terminal("lane-2"), f.terminal("lane-gone")
    alice = f.operator("alice")
    diagnose, bundle = (desk.ask(alice, "lane-1", kind).json()["request_id"] for kind in ("diagnose", "bundle"))
    f.storage.revoke_terminal("lane-gone")
    wrong = desk.upload(lane1, diagnose, small_bundle())
    assert wrong.status_code == 409 and wrong.json() == {"error": "this request asks for something else"}
    assert desk.upload(alice, bundle, small_bundle()).status_code == 403  # an operator's token answers nothing
    revoked = desk.upload(gone, bundle, small_bundle())
    assert revoked.status_code == 401 and "revoked" in revoked.json()["error"]
    assert desk.upload(lane2, bundle, small_bundle()).status_code == 404  # another terminal's: as if none
    body = gzip.compress(b"x")
    assert desk.upload(lane1, bundle, body + b"\0" * (4097 - len(body))).status_code == 413
    assert desk.upload(lane1, bundle, body + b"\0" * (4096 - len(body))).status_code == 201
    assert desk.request(alice, bundle)["bundle_bytes"] == 4096


def test_a_request_expires_the_set_minutes_after_it_was_asked(fleet):
    from posdiag.core.timefmt import parse_utc_iso

    f = fleet(request_expiry_min=15)
    f.terminal("lane-1")
    asked = Desk(f).ask(f.operator("alice"), "lane-1").json()
    lifetime = parse_utc_iso(asked["expires_at"]) - parse_utc_iso(asked["created_at"])
    assert 15 * 60 - 30 <= lifetime <= 15 * 60 + 1  # asked, then written: a busy machine may take a moment between


@pytest.mark.parametrize(("state", "expires_at", "shown"), [
    ("pending", "2026-12-06T10:00:01Z", "pending"), ("pending", "2026-12-06T10:00:00Z", "expired"),
    ("delivered", "2026-12-06T10:00:01Z", "delivered"), ("delivered", "2026-12-06T09:59:59Z", "expired"),
    ("done", "2026-12-06T09:00:00Z", "done"), ("failed", "2026-12-06T09:00:00Z", "failed")])
def test_an_open_request_reads_as_expired_from_its_expiry_on_and_an_answered_one_keeps_its_state(state, expires_at, shown):
    from posdiag.collector.storage.requests import visible_state

    assert visible_state({"state": state, "expires_at": expires_at}, "2026-12-06T10:00:00Z") == shown


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
@pytest.mark.parametrize(("content_type", "body", "status", "words"), [
    ("application/json", b'{"kind": "diagnose"}', 202, None),
    ("Application/JSON; charset=utf-8", b'{"kind": "bundle"}', 202, None),
    ("text/plain", b'{"kind": "diagnose"}', 415, "send the request as JSON"),
    ("application/json", b'{"kind": "diagnose"', 400, "malformed JSON"),
    ("application/json", b'["diagnose"]', 400, "expected a JSON object"),
    ("application/json", b'{"kind": "reboot"}', 400, "kind must be one of diagnose, bundle"),
    ("application/json", b'{"kind": "diagnose", "pad": "' + b"x" * 4096 + b'"}', 413, "body too large")])
def test_an_ask_is_a_small_json_object_naming_a_kind(fleet, content_type, body, status, words):
    f = fleet()
    f.terminal("lane-1")
    answer = requests.post(f"{f.url}/api/v1/terminals/lane-1/requests", data=body, timeout=10,
                           headers={"Authorization": f"Bearer {f.operator()}", "Content-Type": content_type})
    assert answer.status_code == status, answer.text
    assert words is None or words in answer.json()["error"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_terminals_requests_are_listed_50_a_page_unless_a_limit_says_otherwise(fleet):
    f = fleet()
    f.terminal("lane-1")
    alice = f.operator("alice")
    asked = []
    for _ in range(51):  # each answered at once, so the next ask is a new request
        outcome, row = f.storage.create_request("lane-1", "diagnose", "alice", "2999-01-01T00:00:00Z")
        assert outcome == "created" and f.storage.answer_request(row["request_id"], "lane-1", None, error="no") == "failed"
        asked.append(row["request_id"])
    listed = f.get("/api/v1/terminals/lane-1/requests", alice).json()["requests"]
    assert len(listed) == 50 and {r["request_id"] for r in listed} <= set(asked)
    assert len(f.get("/api/v1/terminals/lane-1/requests", alice, limit=51).json()["requests"]) == 51
    assert len(f.get("/api/v1/terminals/lane-1/requests", alice, limit=500).json()["requests"]) == 51  # the most a page holds
    for beyond in (0, 501):
        refused = f.get("/api/v1/terminals/lane-1/requests", alice, limit=beyond)
        assert refused.status_code == 400 and refused.json()["error"] == "?limit= must lie between 1 and 500", beyond


def test_desks_asking_at_the_same_moment_make_one_request(fleet):
    f = fleet()
    desk = Desk(f)
    f.terminal("lane-1")
    operators = [f.operator(f"desk-{i}") for i in range(8)]
    answers: list[requests.Response] = []
    start = threading.Barrier(len(operators))

    def ask(token: str) -> None:
        start.wait()
        answers.append(desk.ask(token, "lane-1"))

    threads = [threading.Thread(target=ask, args=(token,)) for token in operators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert [a.status_code for a in answers] == [202] * len(operators)
    assert len({a.json()["request_id"] for a in answers}) == 1
    events = desk.request(operators[0], answers[0].json()["request_id"])["events"]
    assert sorted(e["event"] for e in events) == ["asked"] + ["asked again"] * (len(operators) - 1)


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_the_terminal_api_tells_a_terminal_as_the_fleet_list_does(fleet):
    f = fleet()
    token = f.terminal("lane-1", "store-9")
    alice = f.operator("alice")
    assert f.post(token, make_report("lane-1", "store-9", started=time.time() - 5)).status_code == 201
    one = f.get("/api/v1/terminals/lane-1", alice).json()
    listed = next(t for t in f.get("/api/v1/terminals", alice).json()["terminals"] if t["id"] == "lane-1")
    assert {k: one[k] for k in listed} == listed and one["verdict"] == "fault"
    assert f.get("/api/v1/terminals/nobody", alice).status_code == 404
    assert f.get("/api/v1/terminals/lane-1", token).status_code == 403


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_request_can_no_longer_be_answered_from_the_second_it_expires(fleet):
    """As the API shows it (expired from its expiry on): an answer in the very second a request expires
    is too late, for a bundle as for a failure."""
    from posdiag.core.timefmt import utc_now_iso

    f = fleet()
    f.terminal("lane-1")
    for kind, answer in (("bundle", {"bundle": small_bundle()}), ("diagnose", {"error": "no"})):
        outcome, row = f.storage.create_request("lane-1", kind, "alice", utc_now_iso())
        assert outcome == "created"
        assert f.storage.answer_request(row["request_id"], "lane-1", kind if kind == "bundle" else None, **answer) == "expired"


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_report_answers_only_its_own_terminals_open_diagnose_request_and_says_whether_it_did(fleet):
    from posdiag.core.timefmt import utc_now_iso

    f = fleet()
    f.terminal("lane-1")
    f.terminal("lane-2")
    _, diagnose = f.storage.create_request("lane-1", "diagnose", "alice", "2999-01-01T00:00:00Z")
    _, bundle = f.storage.create_request("lane-1", "bundle", "alice", "2999-01-01T00:00:00Z")
    with f.storage._connection(write=True) as conn:
        assert f.storage.link_report(conn, diagnose["request_id"], "lane-2", "r-2", utc_now_iso()) is False
        assert f.storage.link_report(conn, bundle["request_id"], "lane-1", "r-1", utc_now_iso()) is False
        assert f.storage.link_report(conn, diagnose["request_id"], "lane-1", "r-1", utc_now_iso()) is True
        assert f.storage.link_report(conn, diagnose["request_id"], "lane-1", "r-3", utc_now_iso()) is False  # done already
    assert f.storage.get_request(diagnose["request_id"])["report_id"] == "r-1"
