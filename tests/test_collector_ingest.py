"""Receiving reports: what is stored, what is refused and why — against a real collector on each back end."""

from __future__ import annotations

import functools
import gzip
import json
import logging
import re
import socket
import threading
import time
import zlib
from urllib.parse import urlsplit

import pytest
import requests
from labs.collectorlab import make_report


def test_collector_stores_a_gzip_report_once_and_answers_a_duplicate_with_200(fleet):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    report = make_report("lane-01")
    first = f.post(token, report)
    assert first.status_code == 201, first.text
    assert first.json() == {"status": "stored", "report_id": report["report_id"]}
    again = f.post(token, report, gzipped=False)  # a retry, plain JSON this time
    assert again.status_code == 200, again.text
    assert again.json()["status"] == "duplicate"
    assert f.stored() == 1
    assert f.storage.get_report(report["report_id"]) is not None
    assert json.loads(f.storage.get_report(report["report_id"])) == report


def test_collector_answers_409_to_a_report_id_another_terminal_already_used_and_keeps_its_report(fleet):
    """Not a retry of this terminal's report: answered 409 (200 would tell the terminal it is stored), and
    the report stored first stays as it was."""
    f = fleet()
    first, second = f.terminal("lane-01", "store-1"), f.terminal("lane-02", "store-1")
    report = make_report("lane-01")
    assert f.post(first, report).status_code == 201
    clash = {**make_report("lane-02"), "report_id": report["report_id"]}
    answer = f.post(second, clash)
    assert answer.status_code == 409, answer.text
    assert "already used by another terminal's report" in answer.json()["error"]
    assert f.stored() == 1 and json.loads(f.storage.get_report(report["report_id"])) == report
    assert {t["id"]: t["last_seen_at"] for t in f.storage.list_terminals()}["lane-02"] is None


def test_collector_answers_413_to_a_plain_report_over_the_report_limit_within_the_body_limit(fleet):
    f = fleet(max_report_bytes=100_000, max_body_bytes=400_000)
    token = f.terminal("lane-01", "store-1")
    answer = f.post(token, make_report("lane-01", padding=200_000), gzipped=False)
    assert answer.status_code == 413 and "report too large" in answer.json()["error"], answer.text
    assert f.stored() == 0


def test_collector_stores_a_report_once_when_it_arrives_many_times_at_the_same_moment(fleet):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    report = make_report("lane-01")
    barrier = threading.Barrier(12)
    codes: list[int] = []

    def send() -> None:
        barrier.wait()
        codes.append(f.post(token, report).status_code)

    threads = [threading.Thread(target=send) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(codes) == [200] * 11 + [201]
    assert f.stored() == 1


@functools.lru_cache(maxsize=1)
def _bomb() -> bytes:
    """64 MiB of zeros in about 64 KiB of gzip."""
    squeeze = zlib.compressobj(9, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
    block = b"\0" * (1 << 20)
    return b"".join(squeeze.compress(block) for _ in range(64)) + squeeze.flush()


REFUSALS = {
    # case: (expected status, words the reason must contain)
    "no_token": (401, "missing Authorization"),
    "wrong_token": (401, "unknown token"),
    "revoked_token": (401, "revoked"),
    "another_terminals_token": (403, "belongs to terminal 'lane-02'"),
    "operator_token": (403, "operator token cannot post"),
    "oversized_body": (413, "too large"),
    "oversized_after_decompression": (413, "once decompressed"),
    "gzip_bomb": (413, "once decompressed"),
    "malformed_json": (400, "malformed JSON"),
    "not_a_json_number": (400, "NaN is not a JSON number"),
    "nested_too_deeply": (400, "malformed JSON"),
    "malformed_gzip": (400, "malformed gzip"),
    "truncated_gzip": (400, "truncated"),
    "unsupported_encoding": (415, "unsupported Content-Encoding 'br'"),
    "wrong_schema_version": (400, "$.schema: expected 'posdiag.report/1'"),
    "schema_violation": (400, "$.diagnosis.verdict"),
}


def _arrange(case: str, f, token: str, other: str) -> tuple[str | None, dict | bytes, dict]:
    """What the terminal sends in each refusal case: (token, report or raw body, post() options)."""
    report = make_report("lane-01")
    gz = {"headers": {"Content-Encoding": "gzip"}}
    if case == "wrong_schema_version":
        report["schema"] = "posdiag.report/2"
    elif case == "schema_violation":
        report["diagnosis"]["verdict"] = "probably fine"
    elif case == "revoked_token":
        assert f.storage.revoke_terminal("lane-01")
    big = make_report("lane-01", padding=300_000)
    return {
        "no_token": (None, report, {}),
        "wrong_token": ("not-a-token-of-ours", report, {}),
        "another_terminals_token": (other, report, {}),
        "operator_token": (f.operator() if case == "operator_token" else token, report, {}),
        "oversized_body": (token, big, {"gzipped": False}),
        "oversized_after_decompression": (token, big, {}),  # gzip makes it tiny on the wire
        "gzip_bomb": (token, _bomb(), gz),
        "malformed_json": (token, b'{"schema": "posdiag.report/1", "report_id": ', {}),
        "not_a_json_number": (token, json.dumps({**report, "duration_s": float("nan")}).encode(), {}),
        "nested_too_deeply": (token, b"[" * 100_000 + b"]" * 100_000, {}),
        "malformed_gzip": (token, b"\x1f\x8b\x08\x00garbage that is no deflate stream", gz),
        "truncated_gzip": (token, gzip.compress(json.dumps(report).encode())[:-12], gz),
        "unsupported_encoding": (token, json.dumps(report).encode(), {"headers": {"Content-Encoding": "br"}}),
    }.get(case, (token, report, {}))


@pytest.mark.parametrize("case", list(REFUSALS))
def test_collector_refuses_bad_input_with_its_reason_and_stores_nothing(fleet, case):
    f = fleet(max_report_bytes=200_000, max_body_bytes=200_000)
    token = f.terminal("lane-01", "store-1")
    other = f.terminal("lane-02", "store-1")
    sender, body, kwargs = _arrange(case, f, token, other)
    status, words = REFUSALS[case]
    answer = f.post(sender, body, **kwargs)
    assert answer.status_code == status, answer.text
    assert words in answer.json()["error"]
    assert f.stored() == 0
    assert f.storage.list_terminals()[0]["last_seen_at"] is None


def test_collector_refuses_a_gzip_bomb_without_inflating_it(fleet):
    import psutil

    f = fleet()
    token = f.terminal("lane-01", "store-1")
    me = psutil.Process()
    before = me.memory_info().rss
    answer = f.post(token, _bomb(), headers={"Content-Encoding": "gzip"})
    assert answer.status_code == 413
    assert me.memory_info().rss - before < 32 * 1024 * 1024  # the bomb is 64 MiB inflated; the server is in this process


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_collector_answers_429_with_retry_after_when_too_many_reports_are_in_flight(fleet, caplog):
    caplog.set_level(logging.INFO, logger="posdiag.collector")
    f = fleet(max_inflight=1)
    token = f.terminal("lane-01", "store-1")
    body = json.dumps(make_report("lane-01")).encode()
    parts = urlsplit(f.url)
    slow = socket.create_connection((parts.hostname, parts.port))
    try:  # a terminal on a slow link: headers sent, body still coming
        slow.sendall(f"POST /api/v1/reports HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n"
                     f"Content-Length: {len(body)}\r\n\r\n".encode() + body[:10])
        time.sleep(0.3)
        busy = f.post(token, make_report("lane-01"))
        assert busy.status_code == 429
        assert busy.headers["Retry-After"].isdigit()
        slow.sendall(body[10:])
        assert b"201" in slow.recv(4096).split(b"\r\n")[0]
    finally:
        slow.close()
    assert f.post(token, make_report("lane-01")).status_code == 201
    assert f.stored() == 2
    assert "report refused (429)" not in caplog.text  # a storm of them must not flood the log


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_refused_report_is_logged_with_its_reason_and_an_unknown_token_is_not(fleet, caplog):
    """Operations read why a terminal's reports are refused; guesses at tokens (401) are not worth a line each."""
    caplog.set_level(logging.INFO, logger="posdiag.collector")
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    assert f.post("not-a-token-of-ours", make_report("lane-01")).status_code == 401
    assert f.post(token, make_report("lane-02")).status_code == 403
    assert f.post(token, b"{", gzipped=False).status_code == 400
    said = [r.getMessage() for r in caplog.records if r.getMessage().startswith("report refused")]
    assert [line.split(":")[0] for line in said] == ["report refused (403)", "report refused (400)"]
    assert "belongs to terminal 'lane-01'" in said[0] and "malformed JSON" in said[1]


def test_collector_keeps_a_terminals_newest_state_when_an_older_report_arrives_late(fleet):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    operator = f.operator()
    now = time.time()
    assert f.post(token, make_report("lane-01", started=now, verdict="healthy", cause="none")).status_code == 201
    assert f.post(token, make_report("lane-01", started=now - 3600, cause="disk.full")).status_code == 201
    [terminal] = f.get("/api/v1/terminals", operator).json()["terminals"]
    assert (terminal["verdict"], terminal["top_cause"]) == ("healthy", "none")
    assert terminal["site"] == "store-1"


def test_collector_keeps_the_registered_site_over_the_one_a_report_claims(fleet):
    f = fleet()
    token = f.terminal("lane-01", "store-1")
    operator = f.operator()
    assert f.post(token, make_report("lane-01", site="store-999")).status_code == 201
    assert f.get("/api/v1/reports", operator).json()["reports"][0]["site"] == "store-1"


def test_collector_health_check_needs_no_credentials_and_names_the_schema_version(fleet):
    f = fleet()
    answer = requests.get(f.url + "/healthz", timeout=10)
    assert answer.status_code == 200
    assert answer.json()["status"] == "ok"
    assert answer.json()["schema_version"] >= 1


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_collector_answers_503_with_retry_after_while_the_database_stays_locked(fleet, db_url):
    import sqlite3

    f = fleet(db_timeout_s=0.5)
    token = f.terminal("lane-01", "store-1")
    blocker = sqlite3.connect(db_url[len("sqlite:///"):], isolation_level=None)
    blocker.execute("BEGIN EXCLUSIVE")  # another process holding the write lock
    try:
        answer = f.post(token, make_report("lane-01"))
        assert answer.status_code == 503, answer.text
        assert answer.headers["Retry-After"] == "1"
        assert "retry later" in answer.json()["error"]
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert f.stored() == 0
    assert f.post(token, make_report("lane-01")).status_code == 201


@pytest.mark.parametrize("encoding", ["", "identity", " Identity ", "gzip", "GZIP "])
def test_intake_takes_a_report_of_exactly_the_limit_and_refuses_one_byte_more(encoding):
    """The limit counts the report once decompressed, as documented: a report of ``max_report_bytes`` is taken."""
    from posdiag.collector import intake

    raw = json.dumps(make_report("lane-01")).encode()
    body = gzip.compress(raw) if "gzip" in encoding.lower() else raw
    assert intake.decode(body, encoding, len(raw)).text == raw.decode()
    with pytest.raises(intake.Refused, match="report too large") as refused:
        intake.decode(body, encoding, len(raw) - 1)
    assert refused.value.status == 413



@pytest.mark.parametrize("encoding", ["br", "deflate", "ident", "gzip, br"])
def test_intake_refuses_any_encoding_but_gzip_and_identity_with_415(encoding):
    from posdiag.collector import intake

    with pytest.raises(intake.Refused, match="unsupported Content-Encoding") as refused:
        intake.decode(json.dumps(make_report("lane-01")).encode(), encoding, 1 << 20)
    assert refused.value.status == 415


def test_intake_refuses_a_gzip_body_with_trailing_data_or_cut_short_and_says_which():
    from posdiag.collector import intake

    raw = json.dumps(make_report("lane-01")).encode()
    packed = gzip.compress(raw)
    for body, words, cap in ((packed + b"junk", "trailing data after the gzip stream", 1 << 20),
                             (packed + packed, "trailing data", 1 << 20), (packed[:-8], "truncated (no end of stream)", 1 << 20),
                             (packed[:-8], "truncated (no end of stream)", len(raw))):  # all of the limit, then cut
        with pytest.raises(intake.Refused, match=re.escape(words)) as refused:
            intake.decode(body, "gzip", cap)
        assert refused.value.status == 400
    assert intake.decode(packed, "gzip", 1 << 20).terminal_id == "lane-01"


def _store(storage, report: dict, received: str | None = None) -> tuple[str, bool]:
    from posdiag.collector import intake

    return storage.store_report(intake.decode(json.dumps(report).encode(), "", 10**6), received)


def test_a_stored_report_gives_the_incidents_a_fact_only_when_a_fault_starts_goes_on_or_ends(tmp_path):
    """A healthy terminal staying healthy, a retry and a report arriving after a newer one change no
    incident: nothing is queued and the keeper has nothing to apply."""
    from posdiag.collector.storage import open_storage
    from posdiag.collector.storage.chains import Rules
    from posdiag.core.timefmt import utc_iso

    storage = open_storage(f"sqlite:///{tmp_path / 'collector.db'}")
    try:
        storage.migrate()
        storage.add_terminal("lane-1", "store-1", "hash-1")
        rules = Rules(window_s=600, site_min_terminals=2, fleet_min_sites=2)
        now = time.time()
        assert _store(storage, make_report("lane-1", verdict="healthy", cause="none", started=now - 300)) == ("stored", False)
        assert storage.apply_incident_facts(rules, 100, 5.0) == (0, False)
        fault = make_report("lane-1", started=now - 200)
        assert _store(storage, fault) == ("stored", True)
        assert _store(storage, fault) == ("duplicate", False)
        late = make_report("lane-1", verdict="healthy", cause="none", started=now - 250)
        assert _store(storage, late) == ("stored", False)  # older than the fault: the state stays a fault
        assert storage.get_terminal("lane-1")["top_cause"] == "network.wan"
        storage.add_terminal("lane-2", "store-1", "hash-2")
        assert _store(storage, make_report("lane-2", started=now - 190)) == ("stored", True)
        # both faults in one go; they open a site incident, and with no webhook set no message is written
        assert storage.apply_incident_facts(rules, 100, 5.0) == (2, False)
        assert [i["scope"] for i in storage.incidents(since=utc_iso(now - 3600))] == ["site"]
        later = utc_iso(now + 3600)  # seen since then: none; open ones whatever their age only when recent ones are asked
        assert storage.incidents(since=later) == [] and len(storage.incidents(since=later, recent=True)) == 1
        assert _store(storage, make_report("lane-1", verdict="healthy", cause="none", started=now - 100)) == ("stored", True)
        assert storage.apply_incident_facts(rules, 100, 5.0) == (1, False)
        assert storage.apply_incident_facts(rules, 100, 5.0) == (0, False)
    finally:
        storage.close()


@pytest.mark.parametrize(("verdict", "cause", "blames"), [
    ("fault", "network.wan", True), ("degraded", "disk.full", True), ("healthy", "network.wan", False),
    ("fault", "none", False), ("fault", "", False), ("fault", None, False), (None, "network.wan", False)])
def test_a_report_or_state_blames_a_cause_when_it_is_not_healthy_and_names_one(verdict, cause, blames):
    from posdiag.collector.storage.base import _names_a_fault

    assert _names_a_fault(verdict, cause) is blames


def test_reports_are_listed_100_a_page_unless_a_limit_says_otherwise(tmp_path):
    from posdiag.collector.storage import open_storage

    storage = open_storage(f"sqlite:///{tmp_path / 'collector.db'}")
    try:
        storage.migrate()
        now = time.time()
        for i in range(101):
            _store(storage, make_report("lane-1", started=now - 1000 + i))
        assert len(storage.list_reports()) == 100 and len(storage.list_reports(limit=101)) == 101
    finally:
        storage.close()


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_body_declared_over_the_limit_is_refused_before_it_is_sent_and_one_streamed_over_it_as_it_comes(fleet):
    """``--max-body-bytes`` 4096: a Content-Length of 4097 is answered at once, its body never read; a
    chunked body is counted as it arrives; exactly 4096 bytes either way are read (and judged as JSON)."""
    import http.client

    f = fleet(max_body_bytes=4096)
    token = f.terminal("lane-01", "store-1")
    parts = urlsplit(f.url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=15)
    try:
        conn.putrequest("POST", "/api/v1/reports")
        conn.putheader("Authorization", f"Bearer {token}")
        conn.putheader("Content-Length", "4097")
        conn.endheaders()  # and not one byte of the body
        answer = conn.getresponse()
        assert answer.status == 413
        assert json.loads(answer.read()) == {"error": "body too large: 4097 bytes, the limit is 4096"}
    finally:
        conn.close()
    streamed = f.post(token, iter([b"x" * 3000, b"x" * 1097]), gzipped=False)
    assert streamed.status_code == 413
    assert streamed.json() == {"error": "body too large: more than 4096 bytes, the limit is 4096"}
    for body in (b"x" * 4096, iter([b"x" * 3000, b"x" * 1096])):
        read = f.post(token, body, gzipped=False)
        assert read.status_code == 400 and read.json()["error"].startswith("malformed JSON"), read.text
    assert f.stored() == 0
