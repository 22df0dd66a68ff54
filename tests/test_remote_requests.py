"""Remote requests with the real agent: a ``posdiag run`` daemon pushing to and polling a real
``posdiag-collector serve`` over HTTPS on loopback, and an operator asking it for a diagnosis or a
support bundle. Also what the till does when the collector is down, hangs, or says "later"."""

from __future__ import annotations

import http.server
import io
import json
import select
import socket
import tarfile
import threading
import time
import types

import pytest
from labs.commands import run_cli
from labs.helpers import wait_for
from posdiag.agent import remote_client
from posdiag.agent.remote import BACKOFF_FACTOR_CAP, MIN_GAP_S, RemoteRequests, next_wait_s


def status(daemon) -> dict:
    rc, out, err = daemon.cli("status", "--json")
    assert rc == 0, err
    return json.loads(out)


def test_an_operators_diagnose_request_is_answered_by_a_remote_sweep_pushed_at_once(desk):
    d = desk()
    till = d.till("lane-07")
    asked = d.ask("lane-07", "diagnose")
    done = d.settled(asked["request_id"], timeout=60)
    assert done["state"] == "done", (done, till.output())
    report = d.get(f"/api/v1/reports/{done['report_id']}").json()
    assert report["trigger"] == "remote" and report["request_id"] == asked["request_id"]
    assert report["terminal"]["id"] == "lane-07"
    history = [(r.report_id, r.trigger) for r in till.reports()]
    assert [rid for rid, trigger in history if trigger == "remote"] == [done["report_id"]]  # one sweep, however often polled
    assert [e["event"] for e in done["events"]] == ["asked", "delivered", "done"]
    remote = status(till)["remote"]
    assert remote["enabled"] is True and remote["poll_s"] == 5.0 and remote["diagnoses"] == 1
    assert remote["last_result"] == "200" and remote["failures"] == 0


def test_a_bundle_request_uploads_the_tills_masked_bundle_for_the_operator_to_download(desk):
    d = desk()
    home = d.register("lane-07")
    token = (home / "token").read_text().strip()
    (home / "pos.log").write_text(f"2026-12-01 10:00:00 txn=1 code=0 note=pasted {token} by mistake\n"
                                  "2026-12-01 10:00:05 txn=2 code=2824 pan=4111111111111111\n")
    config = d.config("lane-07")
    from labs.daemonlab import DaemonProcess

    till = DaemonProcess(config, home / "state", start_timeout_s=20)
    d.tills.append(till)
    asked = d.ask("lane-07", "bundle")
    done = d.settled(asked["request_id"], timeout=90)
    assert done["state"] == "done" and done["bundle_url"], (done, till.output())
    download = d.get(done["bundle_url"])
    assert download.status_code == 200 and len(download.content) == done["bundle_bytes"]
    with tarfile.open(fileobj=io.BytesIO(download.content), mode="r:gz") as tar:
        members = {m.name: tar.extractfile(m).read().decode() for m in tar.getmembers()}
    assert {"posdiag-bundle/summary.txt", "posdiag-bundle/config.toml.json", "posdiag-bundle/pos.log"} <= set(members)
    assert "terminal: lane-07" in members["posdiag-bundle/summary.txt"]
    assert "pasted <redacted> by mistake" in members["posdiag-bundle/pos.log"]  # masked on the till, as posdiag bundle does
    assert "pan=411111******1111" in members["posdiag-bundle/pos.log"]  # card data too
    assert not any(token in text or "4111111111111111" in text for text in members.values())
    assert not list(home.joinpath("state").glob("remote-bundle-*"))  # the till keeps no copy
    assert token not in till.output()
    assert ("operator:alice", "downloaded") in [(e["actor"], e["event"]) for e in d.request(asked["request_id"])["events"]]


def test_a_till_never_fetches_or_answers_another_terminals_request(desk):
    d = desk()
    till = d.till("lane-07")
    d.register("lane-08")  # registered, its till switched off
    theirs = d.ask("lane-08", "bundle")
    ours = d.ask("lane-07", "diagnose")
    assert d.settled(ours["request_id"])["state"] == "done"  # lane-07 has polled since lane-08's was asked
    assert d.request(theirs["request_id"])["state"] == "pending"
    # Even told the id, lane-07's own client is refused as if the request did not exist.
    server = types.SimpleNamespace(url=d.url, token_file=str(d.folder / "lane-07" / "token"),
                                   ca_file=d.certs["ca"], timeout_s=10.0)
    client = remote_client.Client(server)
    refused = remote_client.fail(client, theirs["request_id"], "not mine")
    assert refused.result == "404" and refused.settled and not refused.ok
    answer = client.call("PUT", f"/api/v1/requests/{theirs['request_id']}/bundle", b"\x1f\x8b fake", "application/gzip")
    assert answer[0] == 404
    assert d.request(theirs["request_id"])["state"] == "pending"
    assert [e["actor"] for e in d.request(theirs["request_id"])["events"]] == ["operator:alice"]
    assert status(till)["remote"]["bundles"] == 0


def test_a_request_no_till_fetches_in_time_expires_and_poll_s_0_turns_polling_off(desk):
    d = desk("--request-expiry-min", "0.05")  # 3 s
    till = d.till("lane-07", server={"poll_s": 0})
    assert status(till)["remote"]["enabled"] is False
    asked = d.ask("lane-07", "diagnose")
    expired = d.settled(asked["request_id"], timeout=30)
    assert expired["state"] == "expired" and expired["delivered_at"] is None
    # Turned on by a reload: the till fetches new requests, never the expired one. The collector is
    # started again with its default expiry first, or a new request could expire between two polls.
    d.serve_again()
    d.config("lane-07", server={"poll_s": 5})
    d.reload(till)
    assert wait_for(lambda: status(till)["remote"]["enabled"], 15), till.output()
    fresh = d.ask("lane-07", "diagnose")
    assert fresh["request_id"] != asked["request_id"]
    assert d.settled(fresh["request_id"])["state"] == "done", till.output()
    assert d.request(asked["request_id"])["state"] == "expired"
    assert [r.trigger for r in till.reports()].count("remote") == 1


def test_polling_survives_the_collector_being_down_and_the_next_push_asks_again_at_once(desk):
    d = desk()
    d.register("lane-07")
    config = d.config("lane-07", server={"poll_s": 60})
    d.server.stop()  # the port now refuses connections
    from labs.daemonlab import DaemonProcess

    till = DaemonProcess(config, config.parent / "state", start_timeout_s=20)
    d.tills.append(till)
    assert wait_for(lambda: status(till)["remote"].get("last_result") == "connection refused", 30), till.output()
    assert status(till)["remote"]["failures"] >= 1
    assert run_cli("trigger", "--config", str(config))[0] in (0, 1, 2)  # a sweep runs all the same
    d.serve_again()
    back = time.monotonic()
    # The outbox drains within retry_max_s, and that push asks for requests at once: long before the
    # next poll of a 60 s interval in backoff.
    assert wait_for(lambda: status(till)["remote"].get("last_result") == "200", 40), till.output()
    assert time.monotonic() - back < 40
    assert status(till)["remote"]["failures"] == 0
    log = till.output()
    assert "cannot ask the central server (connection refused, attempt 1)" in log
    assert "the central server answers again" in log
    assert (config.parent / "token").read_text().strip() not in log


def test_a_collector_that_hangs_never_holds_up_a_sweep(desk, tmp_path):
    d = desk()
    d.register("lane-07")
    hole = socket.create_server(("127.0.0.1", 0))  # accepts connections (the kernel does), never answers
    config = d.config("lane-07", server={"url": f"https://127.0.0.1:{hole.getsockname()[1]}", "timeout_s": 30})
    from labs.daemonlab import DaemonProcess

    till = DaemonProcess(config, config.parent / "state", start_timeout_s=20)
    d.tills.append(till)
    try:
        assert wait_for(lambda: len(till.senders()) >= 1, 15)  # a poll (and a push) hang on the hole
        started = time.monotonic()
        rc, out, err = run_cli("trigger", "--config", str(config), "--json")
        assert rc in (0, 1, 2), err
        assert json.loads(out)["trigger"] == "on-demand"
        assert time.monotonic() - started < 25  # well inside the 30 s a hung request waits
    finally:
        hole.close()


class _Trickler(threading.Thread):
    """A central server on loopback that answers a poll one byte every 0.1 s, so slowly that no single
    read of the client ever times out and the answer never ends."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.hung_up = threading.Event()  # the client went away in the middle of the answer

    def run(self) -> None:
        conn, _ = self.sock.accept()
        with conn:
            while b"\r\n\r\n" not in conn.recv(65536):
                pass
            try:
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n")
                while True:
                    conn.sendall(b" ")
                    time.sleep(0.1)
            except OSError:
                self.hung_up.set()


def test_a_poll_the_server_trickles_forever_is_given_up_after_twice_the_timeout_and_ten_seconds(tmp_path):
    """Each read of the answer comes within timeout_s, so only the daemon's own bound on the poll's process
    ends it: the poll counts as failed, says so in the status, and its process is gone."""
    from posdiag.core.settings import ServerSettings

    server = _Trickler()
    server.start()
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    settings = types.SimpleNamespace(server=ServerSettings(url=server.url, token_file=str(token), timeout_s=1.0),
                                     daemon=types.SimpleNamespace(state_dir=str(tmp_path)))
    poller = RemoteRequests(settings, None, lambda request_id: None)
    try:
        poller._poll()
    finally:
        server.sock.close()
    assert poller.status()["last_result"] == "no answer within 12 s" and poller.status()["failures"] == 1
    assert poller.proc is None and server.hung_up.wait(10)


class _Busy(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.server.seen.append((self.path, self.headers.get("Authorization")))
        self.send_response(503)
        self.send_header("Retry-After", "120")
        self.send_header("Content-Length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def log_message(self, *args) -> None:
        pass


def test_the_servers_retry_after_is_honoured_and_failed_polls_back_off(tmp_path):
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Busy)
    httpd.seen = []
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    try:
        server = types.SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", token_file=str(token),
                                       ca_file="", timeout_s=5.0)
        outcome = remote_client.poll(remote_client.Client(server))
    finally:
        httpd.shutdown()
    assert httpd.seen == [("/api/v1/requests/pending", "Bearer tok-123456")]
    assert not outcome.ok and outcome.result == "503" and outcome.retry_after_s == 120
    assert next_wait_s(30, 1, outcome.retry_after_s) >= 120
    waits = [next_wait_s(30, 0) for _ in range(200)]
    assert min(waits) >= 27 and max(waits) <= 30  # at least every poll_s, never in step with the fleet
    for failures in range(1, 12):
        ceiling = 30 * min(2 ** failures, BACKOFF_FACTOR_CAP)
        assert all(ceiling / 2 <= next_wait_s(30, failures) <= ceiling for _ in range(50))
    # docs/push.md: twice as long each time, up to ten times poll_s
    assert max(next_wait_s(30, 3) for _ in range(200)) > 200  # a third failure in a row: up to 8 × 30 s
    assert max(next_wait_s(30, 9) for _ in range(200)) <= 300  # never past 10 × 30 s


def test_a_request_fetched_again_before_it_is_answered_is_acted_on_once():
    asked: list[str] = []
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://x", poll_s=30.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, asked.append)
    for _ in range(3):
        poller._act("6f1c2a4e-0000-4000-8000-000000000001", "diagnose")
    assert asked == ["6f1c2a4e-0000-4000-8000-000000000001"] and poller.summary["diagnoses"] == 1



def test_the_journal_says_the_server_answers_again_once_when_it_does_and_never_while_it_fails():
    """A run of failed polls, then one that works: "answers again" is logged once, on the poll that
    worked, with the failures before it; not on a failed poll, nor on one after a good one."""
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://x", poll_s=30.0, timeout_s=5.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, lambda request_id: None)
    journal = _journal_of_polls(poller, [False] * 3 + [True] * 2)
    assert [any("answers again" in line for line in lines) for lines in journal] == [False, False, False, True, False]
    assert journal[-1] == [] and poller.failures == 0


def _journal_of_polls(poller: RemoteRequests, answers: list[bool]) -> list[list[str]]:
    """What the journal says at each poll, each answered as ``answers`` says (ok, or connection refused)."""
    import logging

    outcomes = iter([remote_client.Outcome(True, "200") if ok else remote_client.Outcome(False, "connection refused")
                     for ok in answers])
    poller._run_client = lambda *args, **kwargs: next(outcomes)
    records: list[logging.LogRecord] = []
    heard = logging.Handler(logging.INFO)
    heard.emit = records.append  # the daemon's logger may not propagate (agent/logs.py): listen on it itself
    log = logging.getLogger("posdiag")
    level = log.level
    log.addHandler(heard)
    log.setLevel(logging.INFO)
    journal = []
    try:
        for _ in answers:
            records.clear()
            poller._poll()
            journal.append([r.getMessage() for r in records])
    finally:
        log.removeHandler(heard)
        log.setLevel(level)
    return journal


def test_an_outage_of_the_central_server_is_logged_at_the_1st_2nd_4th_and_8th_failed_poll():
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://x", poll_s=30.0, timeout_s=5.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, lambda request_id: None)
    journal = _journal_of_polls(poller, [False] * 8 + [True])
    said = [[line for line in lines if "cannot ask the central server" in line] for lines in journal]
    assert [bool(lines) for lines in said] == [True, True, False, True, False, False, False, True, False]
    assert "(connection refused, attempt 4)" in said[3][0] and poller.summary["failures"] == 0


def test_the_256_latest_requests_are_remembered_and_the_oldest_forgotten_first():
    """A till keeps the ids of the last 256 requests it acted on: a 257th pushes out the oldest (asked
    again, it is acted on again), never the newest (which a poll may well return once more)."""
    asked: list[str] = []
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://x", poll_s=30.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, asked.append)
    ids = [f"6f1c2a4e-0000-4000-8000-{n:012d}" for n in range(258)]
    for request_id in ids[:256]:
        poller._act(request_id, "diagnose")
    poller._act(ids[0], "diagnose")  # 256 remembered: the first still is
    assert asked == ids[:256]
    poller._act(ids[256], "diagnose")  # the 257th: the oldest is forgotten, the newest kept
    poller._act(ids[256], "diagnose")
    poller._act(ids[1], "diagnose")
    assert asked == ids[:257] and len(poller.handled) == 256
    poller._act(ids[0], "diagnose")
    assert asked == [*ids[:257], ids[0]]

class _ConnectProxy(threading.Thread):
    """A minimal HTTP CONNECT proxy on loopback that records what it was asked to reach."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        self.asked: list[str] = []

    def run(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.tunnel, args=(client,), daemon=True).start()

    def tunnel(self, client: socket.socket) -> None:
        head = b""
        while b"\r\n\r\n" not in head:
            head += client.recv(4096)
        line = head.split(b"\r\n", 1)[0].decode()
        self.asked.append(line)
        host, port = line.split()[1].rsplit(":", 1)
        upstream = socket.create_connection((host, int(port)))
        client.sendall(b"HTTP/1.1 200 Connection established\r\n\r\n")
        pair = {client: upstream, upstream: client}
        while True:
            ready, _, _ = select.select(list(pair), [], [], 10)
            if not ready:
                break
            data = ready[0].recv(65536)
            if not data:
                break
            pair[ready[0]].sendall(data)
        client.close()
        upstream.close()


def test_the_till_asks_through_the_https_proxy_of_its_environment_as_its_pushes_do(desk, monkeypatch):
    d = desk()
    d.register("lane-07")
    proxy = _ConnectProxy()
    proxy.start()
    for name in ("no_proxy", "NO_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("https_proxy", f"http://127.0.0.1:{proxy.port}")
    server = types.SimpleNamespace(url=d.url, token_file=str(d.folder / "lane-07" / "token"), ca_file=d.certs["ca"],
                                   timeout_s=10.0)
    outcome = remote_client.poll(remote_client.Client(server))
    proxy.sock.close()
    assert outcome.ok and outcome.requests == [], outcome
    assert [line.rsplit(" ", 1)[0] for line in proxy.asked] == [f"CONNECT 127.0.0.1:{d.url.rsplit(':', 1)[1]}"]


def test_a_poll_that_falls_due_while_a_push_sender_runs_waits_for_it():
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://127.0.0.1:9", poll_s=30.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, lambda request_id: None, sending=lambda: True)
    poller.kick()  # due at once (a push asks), but a sender runs: a moment's sleep instead of a process
    poller._step()
    assert poller.summary["polls"] == 0 and poller.proc is None and poller.kicked


def test_polls_asked_for_by_pushes_come_no_closer_together_than_the_minimum_gap():
    """A burst of pushes (a backlog flushed after an outage) kicks the poller after each one: the first
    kick after a quiet spell polls at once, a kick right after a poll waits out the gap instead."""
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://127.0.0.1:9", poll_s=30.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, lambda request_id: None)
    poller.last_poll = time.monotonic() - MIN_GAP_S - 1
    poller.kick()
    assert poller._due_in() <= 0  # due
    poller.last_poll = time.monotonic()  # a poll just went out
    poller.kick()
    assert 0 < poller._due_in() <= MIN_GAP_S
    poller._step()  # the kick's wake ends the sleep at once: no poll, no process, still asked for
    assert poller.summary["polls"] == 0 and poller.proc is None and poller.kicked


class _Scripted(http.server.BaseHTTPRequestHandler):
    """Answers every request with the server's ``answer`` (status, headers, body) and records the request."""

    def _answer(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        self.server.seen.append((self.command, self.path, self.rfile.read(length)))
        self.server.headers_seen.append(dict(self.headers))
        status, headers, body = self.server.answer
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    do_GET = do_POST = do_PUT = _answer

    def log_message(self, *args) -> None:
        pass


@pytest.fixture
def scripted(tmp_path):
    """A plain-HTTP central server on loopback that answers what the test sets, and a client of it."""
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Scripted)
    httpd.seen, httpd.headers_seen, httpd.answer = [], [], (200, {}, b"{}")
    threading.Thread(target=httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    server = types.SimpleNamespace(url=f"http://127.0.0.1:{httpd.server_address[1]}", token_file=str(token),
                                   ca_file="", timeout_s=5.0)
    httpd.client = remote_client.Client(server)
    yield httpd
    httpd.shutdown()
    httpd.server_close()


def _pending(*requests) -> bytes:
    return json.dumps({"requests": list(requests)}).encode()


def test_a_poll_keeps_only_well_formed_requests_and_at_most_twenty(scripted):
    good = [{"request_id": f"r{n}", "kind": "diagnose"} for n in range(21)]
    scripted.answer = (200, {}, _pending({"kind": "bundle"}, {"request_id": "r-no-kind"}, "kind", ["request_id"],
                                         *good[:2]))
    outcome = remote_client.poll(scripted.client)
    assert outcome.ok and outcome.result == "200" and outcome.requests == good[:2]
    scripted.answer = (200, {}, _pending(*good))  # one over the limit: the 21st waits for the next poll
    assert remote_client.poll(scripted.client).requests == good[:20]
    scripted.answer = (200, {}, _pending(*good[:19]))  # under it: all of them
    assert remote_client.poll(scripted.client).requests == good[:19]


@pytest.mark.parametrize(("size", "ok"), [(remote_client.MAX_ANSWER_BYTES, True),
                                          (remote_client.MAX_ANSWER_BYTES + 1, False)])
def test_a_poll_answer_larger_than_256_kib_is_refused(scripted, size, ok):
    assert remote_client.MAX_ANSWER_BYTES == 256 * 1024
    body = _pending({"request_id": "r1", "kind": "diagnose"})
    scripted.answer = (200, {}, body[:-1] + b" " * (size - len(body)) + b"}")
    outcome = remote_client.poll(scripted.client)
    assert (outcome.ok, outcome.result) == ((True, "200") if ok else (False, "200: not a list of requests"))


@pytest.mark.parametrize(("status", "header", "retry_after_s"), [
    (503, "120", 120.0), (429, "30", 30.0),
    (503, "3600", 3600.0), (503, "3601", 3600.0), (429, "86400", 3600.0),  # never more than an hour
    (500, "120", None), (404, "120", None),  # only "busy" and "too many" carry a wait
    (503, "soon", None), (503, "-5", None),
])
def test_a_poll_honours_retry_after_only_on_busy_answers_and_for_at_most_an_hour(scripted, status, header,
                                                                                   retry_after_s):
    scripted.answer = (status, {"Retry-After": header}, b"{}")
    outcome = remote_client.poll(scripted.client)
    assert (outcome.ok, outcome.result, outcome.retry_after_s) == (False, str(status), retry_after_s)


@pytest.mark.parametrize(("status", "ok", "settled", "retry_after_s"), [
    (200, True, True, None), (201, True, True, None),
    (404, False, True, None), (409, False, True, None), (410, False, True, None), (413, False, True, None),
    (429, False, False, 60.0), (503, False, False, 60.0), (500, False, False, 60.0), (502, False, False, 60.0),
])
def test_what_the_servers_answer_to_a_failure_or_bundle_means_for_the_till(scripted, status, ok, settled,
                                                                            retry_after_s):
    """Accepted: done. Refused for good (gone, taken, too large): done, not tried again. Busy or broken
    server: tried again, after its Retry-After."""
    scripted.answer = (status, {"Retry-After": "60"}, b"{}")
    outcome = remote_client.fail(scripted.client, "6f1c2a4e-0000-4000-8000-000000000001", "no reader")
    assert (outcome.ok, outcome.result, outcome.settled, outcome.retry_after_s) == (ok, str(status), settled,
                                                                                    retry_after_s)


def test_a_failure_told_to_the_server_is_masked_and_cut_at_500_characters(scripted):
    scripted.answer = (200, {}, b"{}")
    remote_client.fail(scripted.client, "r/1", "card 4111111111111111 refused " + "x" * 600)
    method, path, body = scripted.seen[-1]
    error = json.loads(body)["error"]
    assert (method, path) == ("POST", "/api/v1/requests/r%2F1/failure")
    assert len(error) == 500 and "4111111111111111" not in error and error.startswith("card ")
    remote_client.fail(scripted.client, "r1", "y" * 499)
    assert json.loads(scripted.seen[-1][2])["error"] == "y" * 499


def test_a_server_that_cannot_be_reached_is_a_failed_poll_never_a_crash(tmp_path):
    closed = socket.socket()
    closed.bind(("127.0.0.1", 0))
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there: the connection is refused
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    server = types.SimpleNamespace(url=f"http://127.0.0.1:{port}", token_file=str(token), ca_file="", timeout_s=5.0)
    outcome = remote_client.poll(remote_client.Client(server))
    assert (outcome.ok, outcome.result, outcome.settled) == (False, "connection refused", False)


def test_the_client_process_says_in_one_json_line_and_exit_3_that_the_token_cannot_be_used(tmp_path, capsys):
    """What the daemon reads of a remote_client that cannot start: one JSON line, masked, and status 3."""
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o644)  # others may read it: refused, as push refuses it
    server = {"url": "http://127.0.0.1:9", "token_file": str(token), "ca_file": "", "timeout_s": 1.0}
    assert remote_client.main(["--server", json.dumps(server), "poll"]) == 3
    said = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert said["ok"] is False and said["result"].startswith("setup: ") and "readable by group or others" in said["result"]
    assert "tok-123456" not in said["result"]


def test_a_plain_http_server_is_asked_through_the_environments_http_proxy_by_its_whole_url(scripted, monkeypatch,
                                                                                           tmp_path):
    """Behind a plain proxy the request line carries the whole URL (the proxy here answers itself; nothing
    listens at the URL, so only the proxy can answer)."""
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", f"http://127.0.0.1:{scripted.server_address[1]}")
    scripted.answer = (200, {}, _pending({"request_id": "r1", "kind": "diagnose"}))
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    server = types.SimpleNamespace(url="http://127.0.0.2:9/base", token_file=str(token), ca_file="", timeout_s=5.0)
    outcome = remote_client.poll(remote_client.Client(server))
    assert outcome.ok and outcome.requests == [{"request_id": "r1", "kind": "diagnose"}]
    assert scripted.seen[-1][:2] == ("GET", "http://127.0.0.2:9/base/api/v1/requests/pending")


def test_a_bundle_that_cannot_be_made_or_is_too_large_is_told_to_the_server_as_a_failure(scripted, config_file,
                                                                                        tmp_path, monkeypatch):
    """The operator who asked hears why there is no bundle (told to the server, settled), and no half-made
    archive is left in the state directory."""
    state = tmp_path / "state"
    state.mkdir()
    scripted.answer = (200, {}, b"{}")
    outcome = remote_client.bundle(scripted.client, "r1", str(tmp_path / "missing.toml"), str(state))
    assert (outcome.ok, outcome.settled) == (False, True) and outcome.error.startswith("bundle not made: ")
    method, path, body = scripted.seen[-1]
    assert (method, path) == ("POST", "/api/v1/requests/r1/failure")
    assert json.loads(body)["error"].startswith("the bundle could not be made: ")
    assert remote_client.MAX_BUNDLE_BYTES == 8 * 1024 * 1024  # "at most 8 MiB is sent" (docs/push.md)
    monkeypatch.setattr(remote_client, "MAX_BUNDLE_BYTES", 1)  # any bundle is more than a till may send
    outcome = remote_client.bundle(scripted.client, "r2", str(config_file()), str(state))
    assert (outcome.ok, outcome.settled, outcome.error) == (False, True, "bundle too large")
    method, path, body = scripted.seen[-1]
    assert (method, path) == ("POST", "/api/v1/requests/r2/failure") and "more than the 1 a till sends" in body.decode()
    assert list(state.iterdir()) == []


def test_a_bundle_request_is_made_by_its_own_process_remembered_once_settled_and_an_unknown_kind_ignored():
    """A bundle takes its own remote_client process, given four timeouts and two minutes; a server that
    did not settle it (busy) gets it again at the next poll; a kind this till does not know is remembered
    and never acted on. A failure told to the server takes two timeouts and ten seconds. (The client
    processes are recorded, not started: the bookkeeping is pure logic.)"""
    asked: list[str] = []
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://x", poll_s=30.0, timeout_s=5.0),
                                     daemon=types.SimpleNamespace(state_dir="/var/lib/posdiag"))
    poller = RemoteRequests(settings, "/etc/posdiag/posdiag.toml", asked.append)
    started: list[tuple] = []
    answers = iter([remote_client.Outcome(False, "503", settled=False), remote_client.Outcome(True, "201", settled=True),
                    remote_client.Outcome(True, "200", settled=True)])

    def run_client(command: str, *args: str, timeout_s: float) -> remote_client.Outcome:
        started.append((command, *args, timeout_s))
        return next(answers)

    poller._run_client = run_client
    for _ in range(3):
        poller._act("r-b", "bundle")
    assert started == [("bundle", "r-b", "--state-dir", "/var/lib/posdiag", "--config", "/etc/posdiag/posdiag.toml",
                        140.0)] * 2  # the first was not settled: made again; the second was: not a third time
    assert poller.summary["bundles"] == 1 and "r-b" in poller.handled
    poller._act("r-x", "reboot")
    poller._act("r-x", "reboot")
    assert asked == [] and "r-x" in poller.handled and len(started) == 2
    poller._tell_failure("r-d", "the report could not be stored")
    assert started[-1] == ("fail", "r-d", "the report could not be stored", 20.0) and poller.summary["failed"] == 1


@pytest.mark.parametrize(("url", "https", "host", "port", "base"), [
    ("https://collector.example/", True, "collector.example", 443, ""),
    ("http://collector.example", False, "collector.example", 80, ""),
    ("https://collector.example:8443/posdiag/", True, "collector.example", 8443, "/posdiag"),
    ("http://10.0.0.5:8080/a/b", False, "10.0.0.5", 8080, "/a/b")])
def test_the_client_asks_the_servers_own_port_or_the_schemes_default_under_its_path(tmp_path, url, https, host, port,
                                                                                    base):
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    client = remote_client.Client(types.SimpleNamespace(url=url, token_file=str(token), ca_file="", timeout_s=5.0))
    assert (client.https, client.host, client.port, client.base) == (https, host, port, base)
    assert (client.context is not None) is https


def test_a_proxy_named_without_a_port_is_asked_on_3128_and_no_proxy_is_honoured(tmp_path, monkeypatch):
    """As the sender's requests reads the environment: ``http_proxy=proxy.lan`` is http://proxy.lan:3128;
    a host in ``no_proxy`` is asked directly. (Connections are only made here, never opened.)"""
    for name in ("no_proxy", "NO_PROXY", "https_proxy", "HTTPS_PROXY", "http_proxy", "HTTP_PROXY"):
        monkeypatch.delenv(name, raising=False)
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)

    def client(url: str) -> remote_client.Client:
        return remote_client.Client(types.SimpleNamespace(url=url, token_file=str(token), ca_file="", timeout_s=5.0))

    monkeypatch.setenv("http_proxy", "proxy.lan")
    monkeypatch.setenv("https_proxy", "http://proxy.lan:8080")
    conn, prefix = client("http://collector.lan/api")._connection()
    assert (conn.host, conn.port, prefix) == ("proxy.lan", 3128, "http://collector.lan:80")
    conn, prefix = client("https://collector.lan")._connection()
    assert (conn.host, conn.port, conn._tunnel_host, conn._tunnel_port, prefix) == ("proxy.lan", 8080, "collector.lan",
                                                                                   443, "")
    monkeypatch.setenv("no_proxy", "collector.lan")
    conn, prefix = client("https://collector.lan")._connection()
    assert (conn.host, conn.port, prefix) == ("collector.lan", 443, "")


def test_without_a_push_sender_a_due_poll_goes_out_and_its_requests_are_acted_on_then_not_again_before_poll_s():
    """A poller of a daemon that pushes nothing polls when due; the next poll waits about poll_s. (The
    client process is recorded, not started: the scheduling is pure logic.)"""
    asked: list[str] = []
    settings = types.SimpleNamespace(server=types.SimpleNamespace(url="https://127.0.0.1:9", poll_s=30.0, timeout_s=5.0),
                                     daemon=types.SimpleNamespace(state_dir="/nonexistent"))
    poller = RemoteRequests(settings, None, asked.append)
    poller._run_client = lambda *args, **kwargs: remote_client.Outcome(
        True, "200", requests=[{"request_id": "r-1", "kind": "diagnose"}])
    poller._step()  # never polled: due at once
    assert asked == ["r-1"] and poller.summary["polls"] == 1 and 27 <= poller._due_in() <= 30
    poller.wake.set()  # woken early (a reload, say): not due, no poll
    poller._step()
    assert poller.summary["polls"] == 1 and asked == ["r-1"]
    poller.last_poll -= 31  # poll_s has passed since
    poller._step()
    assert poller.summary["polls"] == 2 and asked == ["r-1"]  # asked again, acted on once


# --- edges of the poller and the client (2) --------------------------------------------------------------
def _poller(tmp_path, config_path=None, **server):
    """A poller of https://127.0.0.1:9 every 30 s (timeout 5 s) whose client calls are recorded, not run."""
    settings = types.SimpleNamespace(server=types.SimpleNamespace(**{"url": "https://127.0.0.1:9", "poll_s": 30.0,
                                                                     "timeout_s": 5.0, **server}),
                                     daemon=types.SimpleNamespace(state_dir=str(tmp_path)))
    asked: list[str] = []
    poller = RemoteRequests(settings, config_path, asked.append)
    poller.calls, poller.answers, poller.asked = [], [], asked

    def run_client(command, *args, timeout_s):
        poller.calls.append((command, args, timeout_s))
        return poller.answers.pop(0) if poller.answers else remote_client.Outcome(True, "200", requests=[])

    poller._run_client = run_client
    return poller


def test_a_kicked_poll_waits_out_two_seconds_and_a_scheduled_one_its_own_wait(tmp_path):
    poller = _poller(tmp_path)
    assert poller._due_in() == 0.0  # never polled: at once
    poller.last_poll, poller.next_after = time.monotonic(), 30.0
    assert 29.0 <= poller._due_in() <= 30.0
    poller.last_poll = time.monotonic() - 10.0
    assert 19.0 <= poller._due_in() <= 20.0
    poller.kick()
    assert poller._due_in() == 0.0  # 10 s since the last poll: past the gap
    poller.last_poll = time.monotonic()
    assert 1.5 <= poller._due_in() <= 2.0  # a poll just went out: the kick waits 2 s, not 30
    poller.last_poll = time.monotonic() - 1.0
    assert 0.5 <= poller._due_in() <= 1.0


def test_polling_is_on_only_with_a_url_and_a_poll_s_above_zero(tmp_path):
    assert _poller(tmp_path, poll_s=0.5).enabled()
    assert not _poller(tmp_path, poll_s=0.0).enabled()
    assert not _poller(tmp_path, url="").enabled()
    assert _poller(tmp_path).status()["enabled"] is True and _poller(tmp_path).status()["poll_s"] == 30.0


def test_a_step_polls_when_due_and_otherwise_sleeps_exactly_until_it_is(tmp_path):
    poller = _poller(tmp_path)
    slept: list[float | None] = []
    poller._sleep = slept.append
    poller._step()  # due at once, no sender running (the default): a poll
    assert [c[0] for c in poller.calls] == ["poll"] and slept == [] and poller.summary["polls"] == 1
    poller._step()  # polled just now: sleep until the next is due, not a sender's recheck of 1 s
    assert len(poller.calls) == 1 and len(slept) == 1 and 26.0 <= slept[0] <= 30.0
    poller.server.poll_s = 0.0
    poller._step()
    assert slept[-1] is None  # polling off: asleep until told otherwise


def test_a_poll_counts_itself_and_acts_on_each_request_it_brings(tmp_path):
    poller = _poller(tmp_path, config_path="/etc/posdiag/posdiag.toml")
    poller.answers = [remote_client.Outcome(True, "200", requests=[{"request_id": "r1", "kind": "diagnose"},
                                                                   {"request_id": "r2", "kind": "bundle"}]),
                      remote_client.Outcome(True, "201", settled=True)]
    poller._poll()
    assert poller.asked == ["r1"] and poller.summary["polls"] == 1 and poller.summary["bundles"] == 1
    assert poller.summary["last_result"] == "200" and poller.summary["last_poll_at"]
    assert poller.calls == [("poll", (), 20.0),  # twice timeout_s and 10 s
                            ("bundle", ("r2", "--state-dir", str(tmp_path), "--config", "/etc/posdiag/posdiag.toml"),
                             140.0)]  # four times timeout_s and two minutes: the bundle is made, then sent
    bare = _poller(tmp_path)
    bare._act("r3", "bundle")
    assert bare.calls == [("bundle", ("r3", "--state-dir", str(tmp_path)), 140.0)]


def test_a_sweep_that_went_wrong_is_told_to_the_server_once_and_not_after_stop(tmp_path):
    poller = _poller(tmp_path, poll_s=0.0)
    poller._sleep = lambda seconds: None
    poller.failed_sweep("r1", "no reader")
    poller._step()
    poller._step()
    assert poller.calls == [("fail", ("r1", "no reader"), 20.0)] and poller.summary["failed"] == 1
    poller.failed_sweep("r2", "no reader")
    poller.stopping.set()
    poller._step()
    assert len(poller.calls) == 1


def test_a_client_process_that_says_nothing_readable_is_a_failed_call(tmp_path, monkeypatch):
    poller = RemoteRequests(types.SimpleNamespace(server=types.SimpleNamespace(url="https://127.0.0.1:9", poll_s=30.0,
                                                                               timeout_s=5.0),
                                                  daemon=types.SimpleNamespace(state_dir=str(tmp_path))),
                            None, lambda request_id: None)
    monkeypatch.setattr(remote_client, "argv_for", lambda server, command, *args: ["/bin/sh", "-c", "echo oops; exit 7"])
    outcome = poller._run_client("poll", timeout_s=30)
    assert (outcome.ok, outcome.result) == (False, "remote_client exited with status 7") and poller.proc is None


def test_stopping_the_poller_ends_its_client_in_flight_and_counts_no_poll(tmp_path, monkeypatch):
    monkeypatch.setattr(remote_client, "argv_for", lambda server, command, *args: ["/bin/sleep", "60"])
    poller = RemoteRequests(types.SimpleNamespace(server=types.SimpleNamespace(url="https://127.0.0.1:9", poll_s=30.0,
                                                                               timeout_s=5.0),
                                                  daemon=types.SimpleNamespace(state_dir=str(tmp_path))),
                            None, lambda request_id: None)
    poller.start()
    assert wait_for(lambda: poller.proc is not None, 10)
    proc = poller.proc
    poller.stop()
    assert proc.wait(timeout=10) == -15 and not poller.is_alive()
    assert poller.summary["polls"] == 0 and poller.failures == 0


def _token(tmp_path):
    token = tmp_path / "token"
    token.write_text("tok-123456\n")
    token.chmod(0o600)
    return str(token)


def test_only_a_request_with_a_body_says_its_content_type(scripted):
    scripted.answer = (200, {}, _pending())
    remote_client.poll(scripted.client)
    remote_client.fail(scripted.client, "r1", "no reader")
    get, post = scripted.headers_seen[-2:]
    assert "Content-Type" not in get and post["Content-Type"] == "application/json"
    assert get["Authorization"] == post["Authorization"] == "Bearer tok-123456"


def test_the_client_process_polls_and_tells_failures_and_refuses_an_incomplete_command(scripted, capsys, tmp_path):
    server = json.dumps({"url": f"http://127.0.0.1:{scripted.server_address[1]}", "token_file": _token(tmp_path),
                         "ca_file": "", "timeout_s": 5.0})
    scripted.answer = (200, {}, _pending({"request_id": "r1", "kind": "diagnose"}))
    assert remote_client.main(["--server", server, "poll"]) == 0
    said = json.loads(capsys.readouterr().out.strip())
    assert said["ok"] is True and said["requests"] == [{"request_id": "r1", "kind": "diagnose"}]
    assert scripted.seen[-1][:2] == ("GET", "/api/v1/requests/pending")
    scripted.answer = (201, {}, b"{}")
    assert remote_client.main(["--server", server, "fail", "r2", "no reader"]) == 0
    said = json.loads(capsys.readouterr().out.strip())
    assert (said["ok"], said["settled"]) == (True, True) and scripted.seen[-1][:2] == ("POST", "/api/v1/requests/r2/failure")
    for incomplete in (["--server", server], ["--server", server, "bundle", "r3"]):  # no command; no --state-dir
        with pytest.raises(SystemExit) as refused:
            remote_client.main(incomplete)
        assert refused.value.code == 2



def test_a_bundle_exactly_at_the_tills_limit_goes_and_one_byte_over_does_not(scripted, config_file, tmp_path,
                                                                            monkeypatch):
    """The bundle's size varies from one to the next: the limit is set to each real bundle's own size."""
    from posdiag.agent import bundle as bundles

    (tmp_path / "pos.log").write_text("")
    config = str(config_file(txlog={"path": str(tmp_path / "pos.log")}))
    state = tmp_path / "state"
    state.mkdir(exist_ok=True)
    scripted.answer = (201, {}, b"{}")
    made = bundles.make_bundle

    def limited_to(over: int):
        """The real bundle, with the till's limit set to its size less ``over`` bytes."""
        def make(*args, **kwargs):
            path, size = made(*args, **kwargs)
            monkeypatch.setattr(remote_client, "MAX_BUNDLE_BYTES", size - over)
            return path, size
        return make

    monkeypatch.setattr(bundles, "make_bundle", limited_to(0))
    sent = remote_client.bundle(scripted.client, "r1", config, str(state))
    assert (sent.ok, sent.settled) == (True, True) and scripted.seen[-1][0] == "PUT"
    monkeypatch.setattr(bundles, "make_bundle", limited_to(1))
    refused = remote_client.bundle(scripted.client, "r2", config, str(state))
    assert (refused.ok, refused.settled, refused.error) == (False, True, "bundle too large")
    assert scripted.seen[-1][:2] == ("POST", "/api/v1/requests/r2/failure") and not list(state.glob("remote-bundle-*"))
