"""Alerts: open incidents as Prometheus series, and the webhook that hears of each opening and closing
exactly once — signed, retried, across restarts, and from several ``serve`` processes on one database.

The receiver is a real HTTP server on loopback (labs/webhook.py).
"""

from __future__ import annotations

import json
import time

import pytest
import requests
from labs.collectorlab import Fleet, ServeProcess, iso, make_report, run_sql
from labs.helpers import wait_for
from labs.webhook import Receiver
from posdiag.collector import intake
from posdiag.collector.alerts import CLAIM, POLL_S, Alerter, backoff
from posdiag.collector.keeper import Keeper
from posdiag.collector.storage import open_storage
from posdiag.collector.storage.chains import Rules

SECRET = b"a-webhook-key-of-32-bytes-length"
LANES = ("lane-1", "lane-2", "lane-3")


@pytest.fixture
def receiver():
    made = Receiver(SECRET)
    yield made
    made.stop()


@pytest.fixture
def key_file(tmp_path):
    path = tmp_path / "webhook.key"
    path.write_bytes(SECRET + b"\n")
    return str(path)


def _post(f: Fleet, tokens: dict[str, str], verdict: str, url: str | None = None, urls: list[str] | None = None) -> None:
    for n, (tid, token) in enumerate(tokens.items()):
        cause = "none" if verdict == "healthy" else "network.wan"
        target = urls[n % len(urls)] if urls else url
        answer = f.post(token, make_report(tid, "store-1", verdict=verdict, cause=cause), url=target)
        assert answer.status_code == 201, answer.text


def _events(receiver: Receiver) -> list[tuple[str, str]]:
    return [(b["event"], b["incident"]["id"]) for b in receiver.delivered()]


def _quiet(receiver: Receiver, count: int) -> bool:
    """Nothing more arrives over a few polls of every process (a duplicate would have by then)."""
    time.sleep(5)
    return len(receiver.posts) == count


def test_webhook_hears_of_an_incident_opening_and_closing_exactly_once_with_a_valid_signature(fleet, receiver, key_file):
    f = fleet(alert_webhook=receiver.url, alert_secret_file=key_file)
    tokens = {tid: f.terminal(tid, "store-1") for tid in LANES}
    _post(f, tokens, "fault")
    assert wait_for(lambda: len(receiver.delivered()) == 1, 30)
    [opened] = receiver.delivered()
    assert opened["event"] == "incident.open"
    assert {k: opened["incident"][k] for k in ("scope", "cause", "site", "open")} == \
        {"scope": "site", "cause": "network.wan", "site": "store-1", "open": True}
    _post(f, tokens, "healthy")
    assert wait_for(lambda: len(receiver.delivered()) == 2, 30)
    assert _quiet(receiver, 2)
    [(opening, first), (closing, second)] = _events(receiver)
    assert (opening, closing) == ("incident.open", "incident.close") and first == second
    assert receiver.delivered()[1]["incident"]["closed_at"]
    assert all(p["signed"] for p in receiver.posts)
    assert [p["headers"]["X-Posdiag-Event"] for p in receiver.posts] == ["incident.open", "incident.close"]
    operator = f.operator()
    [incident] = f.get("/api/v1/incidents", operator).json()["incidents"]
    assert incident["id"] == first and incident["open"] is False


def test_a_fleet_incidents_message_names_its_first_hundred_sites_and_counts_them_all(fleet, receiver, key_file):
    """A fleet-wide outage over hundreds of stores: the message stays small (100 sites named, in order)
    while ``site_count`` tells the whole extent. At exactly 100 sites every one is named."""
    f = fleet(alert_webhook=receiver.url, alert_secret_file=key_file, fleet_min_sites=100)
    sites = [f"store-{n:03d}" for n in range(101)]
    tokens = {f"lane-{n:03d}": f.terminal(f"lane-{n:03d}", site) for n, site in enumerate(sites)}
    lanes = list(tokens.items())
    for tid, token in lanes[:100]:
        assert f.post(token, make_report(tid, sites[int(tid[-3:])])).status_code == 201
    assert wait_for(lambda: len(receiver.delivered()) == 1, 30)
    opened = receiver.delivered()[0]["incident"]
    assert (opened["scope"], opened["site_count"], opened["sites"]) == ("fleet", 100, sites[:100])
    tid, token = lanes[100]
    assert f.post(token, make_report(tid, sites[100])).status_code == 201
    for tid, token in lanes:
        assert f.post(token, make_report(tid, sites[int(tid[-3:])], verdict="healthy", cause="none")).status_code == 201
    assert wait_for(lambda: len(receiver.delivered()) == 2, 30)
    closed = receiver.delivered()[1]
    assert closed["event"] == "incident.close"
    assert (closed["incident"]["site_count"], closed["incident"]["sites"]) == (101, sites[:100])


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_webhook_retries_a_failing_receiver_with_backoff_and_delivers_once(fleet, receiver, key_file):
    receiver.fail_next = 2
    f = fleet(alert_webhook=receiver.url, alert_secret_file=key_file)
    tokens = {tid: f.terminal(tid, "store-1") for tid in LANES}
    _post(f, tokens, "fault")
    assert wait_for(lambda: len(receiver.delivered()) == 1, 60)
    assert _quiet(receiver, 3)
    assert [p["delivered"] for p in receiver.posts] == [False, False, True]
    assert len({p["headers"]["X-Posdiag-Delivery"] for p in receiver.posts}) == 1  # one message, tried three times
    text = requests.get(f.url + "/metrics", timeout=10).text
    assert 'posdiag_collector_alert_webhook_attempts_total{result="failed"} 2' in text
    assert 'posdiag_collector_alert_webhook_attempts_total{result="sent"} 1' in text


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_receiver_that_hangs_never_holds_up_intake(fleet, receiver, key_file):
    receiver.hold.clear()
    f = fleet(alert_webhook=receiver.url, alert_secret_file=key_file)
    tokens = {tid: f.terminal(tid, "store-1") for tid in LANES}
    _post(f, tokens, "fault")
    assert receiver.holding.wait(30)  # the webhook's post is stuck at the receiver…
    for tid, token in tokens.items():  # …and reports are stored meanwhile
        assert f.post(token, make_report(tid, "store-1", cause="network.wan")).status_code == 201
    assert receiver.holding.is_set()
    receiver.hold.set()
    assert wait_for(lambda: len(receiver.delivered()) == 1, 30)


def test_a_message_waiting_for_a_receiver_survives_a_restart_and_is_posted_once(tmp_path, key_file):
    port_holder = Receiver(SECRET)
    url, port = port_holder.url, port_holder.server.server_address[1]
    port_holder.stop()  # the receiver is down when the incident opens
    db = f"sqlite:///{tmp_path / 'c.db'}"
    flags = ("--alert-webhook", url, "--alert-secret-file", key_file)
    server = ServeProcess(db, *flags)
    f = Fleet(server.url, open_storage(db))
    receiver = None
    try:
        tokens = {tid: f.terminal(tid, "store-1") for tid in LANES}
        _post(f, tokens, "fault", url=server.url)
        assert wait_for(lambda: any(r["attempts"] >= 1 for r in f.storage._select("SELECT attempts FROM alerts")), 30)
        server.stop()
        receiver = Receiver(SECRET, port)
        server = ServeProcess(db, *flags)
        assert wait_for(lambda: len(receiver.delivered()) == 1, 60)
        server.stop()  # delivered: a restart now must not post it again
        server = ServeProcess(db, *flags)
        _post(f, tokens, "healthy", url=server.url)
        assert wait_for(lambda: len(receiver.delivered()) == 2, 30)
        assert _quiet(receiver, 2)
        assert [event for event, _ in _events(receiver)] == ["incident.open", "incident.close"]
    finally:
        server.stop()
        f.storage.close()
        if receiver:
            receiver.stop()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_three_serve_processes_on_one_postgresql_post_each_opening_and_closing_once(db_url, receiver, key_file):
    servers = [ServeProcess(db_url, "--alert-webhook", receiver.url, "--alert-secret-file", key_file) for _ in range(3)]
    f = Fleet(servers[0].url, open_storage(db_url))
    try:
        tokens = {tid: f.terminal(tid, "store-1") for tid in (*LANES, "lane-4", "lane-5", "lane-6")}
        urls = [s.url for s in servers]
        _post(f, tokens, "fault", urls=urls)  # each process takes some of the reports
        _post(f, tokens, "fault", urls=urls[1:] + urls[:1])
        assert wait_for(lambda: len(receiver.delivered()) == 1, 30)
        _post(f, tokens, "healthy", urls=urls[2:] + urls[:2])
        assert wait_for(lambda: len(receiver.delivered()) == 2, 30)
        assert _quiet(receiver, 2)
        assert [event for event, _ in _events(receiver)] == ["incident.open", "incident.close"]
    finally:
        for server in servers:
            server.stop()
        f.storage.close()


@pytest.fixture
def database(tmp_path):
    """An empty collector database on SQLite, with no ``serve`` process: the test drives the workers."""
    storage = open_storage(f"sqlite:///{tmp_path / 'collector.db'}")
    storage.migrate()
    yield storage
    storage.close()


def test_the_webhook_worker_claims_again_at_once_after_a_full_batch_and_waits_a_poll_after_a_short_one(
        database, receiver):
    """A full batch may leave more behind (the backlog of a receiver's outage): the worker comes straight
    back for it. A short batch, or none, means nothing more is due: it waits a poll rather than spin on
    the database."""
    now = iso(time.time())
    assert (CLAIM, POLL_S) == (10, 2.0)  # batches of ten; a poll every 2 s
    for incident in range(1, 12):
        body = json.dumps({"event": "incident.open", "incident": {"id": str(incident)}})
        run_sql(database, "INSERT INTO alerts (incident_id, event, body, created_at, next_at) VALUES (?, 'open', ?, ?, ?)",
                (incident, body, now, now))
    alerter = Alerter(database, receiver.url, SECRET)
    assert (alerter.step(), len(receiver.delivered())) == (0.0, 10)
    assert (alerter.step(), len(receiver.delivered())) == (2.0, 11)
    assert (alerter.step(), len(receiver.posts)) == (2.0, 11)


def _queue(database, created_ago_s: float = 0.0, attempts: int = 0) -> None:
    now = time.time()
    body = json.dumps({"event": "incident.open", "incident": {"id": "1"}})
    run_sql(database, "INSERT INTO alerts (incident_id, event, body, created_at, next_at, attempts) "
            "VALUES (1, 'open', ?, ?, ?, ?)", (body, iso(now - created_ago_s), iso(now), attempts))


@pytest.mark.parametrize(("status", "delivered"), [(200, True), (204, True), (299, True), (300, False), (302, False),
                                                   (404, False)])
def test_a_receiver_has_the_message_when_it_answers_2xx_and_only_then(database, receiver, status, delivered):
    receiver.status = status
    _queue(database)
    Alerter(database, receiver.url, SECRET).step()
    [row] = database._select("SELECT sent_at, attempts, last_error FROM alerts")
    assert (row["sent_at"] is not None, row["attempts"]) == (delivered, 1)
    assert row["last_error"] == (None if delivered else f"HTTP {status}")


def test_a_receiver_that_redirects_is_a_failed_attempt_and_is_not_followed(database, receiver):
    """The webhook posts where it was told, nowhere else: a redirect (307 keeps the body) is not followed."""
    receiver.status, receiver.location = 307, receiver.url
    _queue(database)
    Alerter(database, receiver.url, SECRET).step()
    [row] = database._select("SELECT sent_at, attempts, last_error FROM alerts")
    assert (row["sent_at"], row["attempts"], row["last_error"]) == (None, 1, "HTTP 307") and len(receiver.posts) == 1


def test_a_receiver_that_takes_a_few_seconds_to_answer_still_has_the_message(database, receiver):
    """A slow receiver is given 10 s to answer (5 s to take the connection), not just a moment."""
    import threading

    from posdiag.collector import alerts

    assert alerts.TIMEOUT_S == (5.0, 10.0)
    receiver.hold.clear()
    threading.Timer(1.5, receiver.hold.set).start()
    _queue(database)
    Alerter(database, receiver.url, SECRET).step()
    [row] = database._select("SELECT sent_at, attempts, last_error FROM alerts")
    assert row["sent_at"] is not None and row["last_error"] is None


@pytest.mark.parametrize(("content", "words"), [
    (b"k" * 4096, None), (b"k" * 4097, "larger than 4096 bytes"), (b"\n " + b"k" * 16 + b" \n", None),
    (b" " + b"k" * 15 + b"\n", "fewer than 16 bytes: not a key")])
def test_a_webhook_key_is_16_bytes_to_4_kib_around_its_white_space(tmp_path, content, words):
    from posdiag.collector.alerts import SecretError, read_secret

    path = tmp_path / "webhook.key"
    path.write_bytes(content)
    if words is None:
        assert read_secret(str(path)) == content.strip()
    else:
        with pytest.raises(SecretError, match=words):
            read_secret(str(path))


def test_a_failed_attempts_error_is_kept_to_500_characters(database):
    _queue(database)
    [message] = database.claim_alerts(iso(time.time()), iso(time.time() + 60))
    database.alert_failed(message["id"], "e" * 499 + "f" + "g" * 100, iso(time.time() + 5), iso(time.time()))
    [row] = database._select("SELECT last_error, attempts FROM alerts")
    assert (row["last_error"], row["attempts"]) == ("e" * 499 + "f", 1)


def test_a_receiver_that_cannot_be_reached_is_a_failed_attempt_named_by_its_kind(database):
    """The URL may carry a token: what is kept of the failure is its kind, never the exception's text."""
    from labs.collectorlab import listening_socket

    closed = listening_socket()
    port = closed.getsockname()[1]
    closed.close()  # nothing listens there now
    _queue(database)
    alerter = Alerter(database, f"http://127.0.0.1:{port}/hook?token=s3cret", SECRET)
    alerter.step()
    [row] = database._select("SELECT sent_at, attempts, last_error, next_at FROM alerts")
    assert (row["sent_at"], row["attempts"], row["last_error"]) == (None, 1, "ConnectionError") and row["next_at"]
    assert alerter.results == {"sent": 0, "failed": 1, "given_up": 0}


def test_a_message_being_posted_is_leased_to_its_process_for_a_minute(database, receiver):
    """docs/collector.md: another process posts it again only after the lease (a minute)."""
    import threading

    from posdiag.core.timefmt import parse_utc_iso

    _queue(database)
    receiver.hold.clear()  # the receiver takes its time answering
    first = threading.Thread(target=Alerter(database, receiver.url, SECRET).step)
    started = time.time()
    first.start()
    try:
        assert wait_for(receiver.holding.is_set, 30)
        [row] = database._select("SELECT lease_until FROM alerts")
        assert started + 60 - 1 <= parse_utc_iso(row["lease_until"]) <= time.time() + 60
        assert Alerter(database, receiver.url, SECRET).step() == POLL_S  # another process: nothing to claim
    finally:
        receiver.hold.set()
        first.join(30)
    assert len(receiver.posts) == 1 and database._select("SELECT lease_until FROM alerts")[0]["lease_until"] is None


@pytest.mark.parametrize(("age_s", "given_up"), [(86400 - 60, False), (86400 + 60, True)])
def test_a_message_the_receiver_refuses_is_tried_again_for_a_day_then_given_up(database, receiver, age_s, given_up):
    """Tried five times already, a sixth failure waits 16 to 32 s (1 s doubled five times, jittered)."""
    from posdiag.core.timefmt import parse_utc_iso

    receiver.fail_next = 1
    _queue(database, age_s, attempts=5)
    alerter = Alerter(database, receiver.url, SECRET)
    before = time.time()
    alerter.step()
    after = time.time()
    [row] = database._select("SELECT sent_at, next_at, given_up_at, attempts FROM alerts")
    assert row["sent_at"] is None and (row["given_up_at"] is not None) == given_up and row["attempts"] == 6
    assert alerter.results == {"sent": 0, "failed": int(not given_up), "given_up": int(given_up)}
    if not given_up:
        assert before + 16 - 1 <= parse_utc_iso(row["next_at"]) <= after + 32


@pytest.mark.parametrize(("attempts", "retry_after", "shortest", "longest"), [
    (1, None, 0.5, 1.0), (2, None, 1.0, 2.0), (4, None, 4.0, 8.0), (9, None, 128.0, 256.0), (10, None, 150.0, 300.0),
    (30, None, 150.0, 300.0),
    (1, "120", 120.0, 120.0), (9, "30", 128.0, 256.0), (1, " 45 ", 45.0, 45.0), (1, "100000", 300.0, 300.0),
    (1, "soon", 0.5, 1.0), (1, "-5", 0.5, 1.0)])
def test_a_refused_message_waits_twice_as_long_each_time_up_to_five_minutes_or_as_the_receiver_asks(
        monkeypatch, attempts, retry_after, shortest, longest):
    """Full jitter: between half and all of 1 s doubled per attempt, at most 300 s; Retry-After (whole
    seconds) is honoured, up to the same 300 s. The jitter's two ends are taken in turn."""
    from posdiag.collector import alerts

    for end, expected in ((0, shortest), (1, longest)):
        monkeypatch.setattr(alerts.random, "uniform", lambda low, high, end=end: (low, high)[end])
        assert backoff(attempts, retry_after) == expected


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_keeper_that_will_not_wait_applies_nothing_and_wakes_no_one_while_another_process_applies_facts(db_url):
    """One process at a time applies incident facts: the others' keepers skip their turn (no message
    written, so the webhook worker is not woken); a read, which waits its turn, then applies them."""
    from posdiag.collector.storage.postgres import KEEPER_LOCK

    storage = open_storage(db_url)
    try:
        storage.migrate()
        run_sql(storage, "INSERT INTO incident_facts (terminal_id, site, cause, at, newest) "
                "VALUES ('lane-1', 'store-1', 'network.wan', ?, 1)", (iso(time.time() - 60),))
        rules = Rules(600, 2, 3, alerts=True)
        with storage._connection(write=True) as other:  # another process, in the middle of its batch
            other.execute("SELECT pg_advisory_xact_lock(%s)", (KEEPER_LOCK,))
            assert storage.apply_incident_facts(rules, 100, 5.0) == (0, False)
        assert storage.apply_incident_facts(rules, 100, 5.0, wait=True) == (1, False)
    finally:
        storage.close()


def test_the_incident_keeper_wakes_the_webhook_worker_when_it_wrote_a_message_and_only_then(database):
    """An opening is posted at once, not at the worker's next poll; a batch that opened nothing does not
    wake it (it would look for messages after every batch the keeper applies)."""
    for tid in LANES:
        database.add_terminal(tid, "store-1", f"hash-{tid}")
    woken: list[bool] = []
    keeper = Keeper(database, Rules(600, 2, 3, alerts=True), lambda: woken.append(True))

    def store(tid: str) -> None:
        report = json.dumps(make_report(tid, "store-1", cause="network.wan")).encode()
        database.store_report(intake.decode(report, "", 1 << 20), received=iso(time.time()))
        keeper.catch_up()

    keeper.catch_up()  # nothing queued
    store("lane-1")  # one failing terminal of the site: no incident yet
    assert woken == []
    store("lane-2")  # a second one: the site's incident opens, its message is written
    assert woken == [True]
    assert [r["event"] for r in database._select("SELECT event FROM alerts")] == ["open"]


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_open_incidents_are_prometheus_series_by_scope_cause_and_site_until_they_close(fleet):
    from prometheus_client.parser import text_string_to_metric_families

    f = fleet()
    tokens = {tid: f.terminal(tid, "store-1") for tid in LANES}
    fleet_wide = {f"{site}-lane": f.terminal(f"{site}-lane", site) for site in ("store-7", "store-8", "store-9")}

    def series() -> dict[tuple, float]:
        text = requests.get(f.url + "/metrics", timeout=10).text
        return {tuple(sorted(s.labels.items())): s.value for family in text_string_to_metric_families(text)
                for s in family.samples if s.name == "posdiag_incident_open"}

    assert series() == {}
    _post(f, tokens, "fault")
    for tid, token in fleet_wide.items():
        assert f.post(token, make_report(tid, tid.split("-lane")[0], cause="host.service_down")).status_code == 201
    assert series() == {(("cause", "network.wan"), ("scope", "site"), ("site", "store-1")): 1,
                        (("cause", "host.service_down"), ("scope", "fleet"), ("site", "")): 1}
    _post(f, tokens, "healthy")
    assert series() == {(("cause", "host.service_down"), ("scope", "fleet"), ("site", "")): 1}


def _facts(storage, *facts: tuple[str, str, int]) -> None:
    """Queue incident facts (terminal, site, newest) of one cause, a minute ago, as intake does."""
    at = iso(time.time() - 60)
    for tid, site, newest in facts:
        run_sql(storage, "INSERT INTO incident_facts (terminal_id, site, cause, at, newest) VALUES (?, ?, 'network.wan', ?, ?)",
                (tid, site, at, newest))


def test_an_incident_of_late_reports_only_is_listed_but_announces_nothing(database):
    """Two terminals' late reports (each has a newer one) make the site's incident, but nothing of it
    still fails: no opening is posted, so no closing will be either."""
    _facts(database, ("lane-1", "store-1", 0), ("lane-2", "store-1", 0))
    assert database.apply_incident_facts(Rules(600, 2, 3, alerts=True), 100, 5.0) == (2, False)
    [incident] = database._select("SELECT scope, qualified_at, announced FROM incidents WHERE scope = 'site'")
    assert incident["qualified_at"] and not incident["announced"]
    assert database._select("SELECT event FROM alerts") == []


def test_a_site_incident_inside_an_open_fleet_incident_is_posted_once_as_the_fleet_s(database):
    """Three sites fail: the fleet incident opens and is posted. A second terminal of one site then makes
    that site's incident, covered by the fleet one: no message of its own, opening or closing."""
    rules = Rules(600, 2, 3, alerts=True)
    _facts(database, ("a-1", "store-a", 1), ("b-1", "store-b", 1), ("c-1", "store-c", 1))
    assert database.apply_incident_facts(rules, 100, 5.0) == (3, True)
    _facts(database, ("a-2", "store-a", 1))
    assert database.apply_incident_facts(rules, 100, 5.0) == (1, False)
    rows = database._select("SELECT i.scope, i.covered, a.event FROM incidents i LEFT JOIN alerts a ON a.incident_id = i.id "
                            "WHERE i.qualified_at IS NOT NULL ORDER BY i.scope")
    assert [(r["scope"], r["covered"], r["event"]) for r in rows] == [("fleet", 0, "open"), ("site", 1, None)]

    def healthy(*tids: str) -> list[tuple[str, str]]:
        """The terminals' next reports are healthy (no cause): the messages written by then."""
        _facts(database, *((tid, f"store-{tid[0]}", 0) for tid in tids))
        run_sql(database, "UPDATE incident_facts SET cause = NULL, newest = 1 WHERE newest = 0")
        database.apply_incident_facts(rules, 100, 5.0)
        return [(r["scope"], r["event"]) for r in database._select(
            "SELECT i.scope, a.event FROM alerts a JOIN incidents i ON a.incident_id = i.id ORDER BY a.event")]

    assert healthy("b-1") == [("fleet", "open")]  # three terminals still fail: still open
    assert healthy("a-1", "a-2", "c-1") == [("fleet", "close"), ("fleet", "open")]


def test_a_webhook_body_is_written_once_as_utf_8_json_with_its_keys_in_order(database):
    """The stored body is what is signed and posted: a Chinese site name as UTF-8 (a chat receiver shows
    the raw text), keys sorted, so the same incident always gives the same bytes."""
    _facts(database, ("lane-1", "门店-1", 1), ("lane-2", "门店-1", 1))
    assert database.apply_incident_facts(Rules(600, 2, 3, alerts=True), 100, 5.0) == (2, True)
    [row] = database._select("SELECT body FROM alerts")
    assert '"site": "门店-1"' in row["body"] and "\\u" not in row["body"]
    body = json.loads(row["body"])
    assert list(body) == sorted(body) and list(body["incident"]) == sorted(body["incident"])
