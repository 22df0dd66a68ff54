"""``posdiag-collector`` as operators run it: its commands, migrations at start, several processes on one database."""

from __future__ import annotations

import json
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time

import pytest
import requests
from labs.collectorlab import REPO, Fleet, ServeProcess, iso, make_report
from posdiag.collector import cli, intake
from posdiag.collector.storage import open_storage
from posdiag.collector.storage.base import StorageError, migrations, statements

LATEST = max(version for version, _ in migrations("sqlite"))


def run(*args: str) -> tuple[int, str, str]:
    import io

    out, err = io.StringIO(), io.StringIO()
    rc = cli.main(list(args), out, err)
    return rc, out.getvalue(), err.getvalue()


def test_collector_add_terminal_prints_the_token_alone_and_stores_only_its_hash(tmp_path):
    db = tmp_path / "c.db"
    rc, out, err = run("add-terminal", "lane-01", "--site", "store-1", "--db", f"sqlite:///{db}")
    assert rc == 0, err
    token = out.strip()
    assert out == token + "\n" and len(token) >= 43
    rc, out2, _ = run("add-operator", "alice", "--db", f"sqlite:///{db}")
    assert rc == 0 and out2.strip() != token
    dump = "\n".join(sqlite3.connect(db).iterdump())
    assert token not in dump and out2.strip() not in dump
    assert "lane-01" in dump


def test_collector_commands_fail_with_a_message_and_no_traceback(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    assert run("add-terminal", "lane-01", "--db", db)[0] == 0
    rc, out, err = run("add-terminal", "lane-01", "--db", db)
    assert (rc, out) == (1, "") and "exists already" in err
    rc, _, err = run("revoke-terminal", "lane-99", "--db", db)
    assert rc == 1 and "no terminal 'lane-99'" in err
    rc, _, err = run("add-terminal", "bad id!", "--db", db)
    assert rc == 1 and "not a valid name" in err
    rc, _, err = run("add-operator", "x", "--db", "mysql://nope")
    assert rc == 1 and "unsupported database URL" in err
    rc, _, err = run("add-operator", "x", "--db", f"sqlite:///{tmp_path / 'missing' / 'c.db'}")
    assert rc == 1 and "does not exist" in err
    rc, _, err = run("add-operator", "x", "--db", "sqlite:///")
    assert rc == 1 and "sqlite URL names no file" in err
    done = subprocess.run([sys.executable, "-m", "posdiag.collector", "serve", "--db", "postgresql://nobody@127.0.0.1:1/x",
                           "--listen", "127.0.0.1:0"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1
    assert "cannot connect to PostgreSQL" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.parametrize(("name", "taken"), [("a" * 128, True), ("a" * 129, False), ("till:7@store-1.lan_2", True),
                                           (".lane", False), ("lane 1", False), ("lane/1", False)])
def test_a_terminal_or_operator_name_is_up_to_128_letters_digits_and_a_few_marks(tmp_path, name, taken):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    for command in ("add-terminal", "add-operator"):
        rc, out, err = run(command, name, "--db", db)
        assert (rc == 0) is taken, err
        assert taken or ("not a valid name" in err and "(at most 128)" in err and out == "")


def test_collector_revoke_terminal_locks_a_running_collector_out(tmp_path):
    db = f"sqlite:///{tmp_path / 'c.db'}"
    token = run("add-terminal", "lane-01", "--db", db)[1].strip()
    server = ServeProcess(db)
    try:
        f = Fleet(server.url, open_storage(db))
        assert f.post(token, make_report("lane-01")).status_code == 201
        assert run("revoke-terminal", "lane-01", "--db", db)[0] == 0
        refused = f.post(token, make_report("lane-01"))
        assert refused.status_code == 401 and "revoked" in refused.json()["error"]
        assert f.stored() == 1
        f.storage.close()
    finally:
        server.stop()


def test_collector_migrates_at_start_and_a_second_start_is_harmless(db_url):
    first = ServeProcess(db_url)
    try:
        assert any(f"schema migrated to version {LATEST}" in line for line in first.lines)
        assert requests.get(first.url + "/healthz", timeout=10).json()["schema_version"] == LATEST
    finally:
        assert first.stop() in (0, -signal.SIGTERM)  # uvicorn re-raises SIGTERM once it has shut down cleanly
        assert "Traceback" not in "".join(first.lines)
    second = ServeProcess(db_url)
    try:
        assert not any("schema migrated" in line for line in second.lines)
        assert requests.get(second.url + "/healthz", timeout=10).json()["schema_version"] == LATEST
    finally:
        second.stop()
    storage = open_storage(db_url)
    try:
        assert storage._select("SELECT count(*) AS n FROM schema_version")[0]["n"] == len(migrations("sqlite"))
    finally:
        storage.close()


def test_a_migration_that_fails_half_way_changes_nothing_and_the_next_start_completes_it(db_url):
    """An upgrade whose migration fails part-way through (a table of migration 3 left in the way by
    hand) leaves the database as it was, so that once the operator clears the cause the next command
    applies every migration from the start, not a half-applied one again."""
    storage = open_storage(db_url)
    try:
        with storage._connection(write=True) as conn:
            storage._execute(conn, "CREATE TABLE incident_sites (left_by_hand TEXT)")
        rc, out, err = run("add-operator", "alice", "--db", db_url)
        assert (rc, out) == (1, "") and "incident_sites" in err and "Traceback" not in err
        for table in ("schema_version", "terminals"):
            with pytest.raises(StorageError):
                storage._select(f"SELECT count(*) AS n FROM {table}")
        with storage._connection(write=True) as conn:
            storage._execute(conn, "DROP TABLE incident_sites")
        rc, out, err = run("add-operator", "alice", "--db", db_url)
        assert rc == 0 and out.strip(), err
        assert storage.schema_version() == LATEST
    finally:
        storage.close()


def test_an_upgrade_lists_stored_reports_in_the_order_that_set_each_terminals_state(db_url):
    """Reports stored before their order was kept (schema 4), one of them from a clock 20 h ahead: once
    migrated, a terminal's first listed report is the one its state follows, and new ones follow on."""
    storage = open_storage(db_url)
    try:
        with storage._connection(write=True) as conn:
            storage._execute(conn, "CREATE TABLE schema_version (version INTEGER PRIMARY KEY, applied_at TEXT NOT NULL)")
            for version, sql in migrations(storage.backend)[:4]:
                for statement in statements(sql):
                    conn.execute(statement)
                storage._execute(conn, "INSERT INTO schema_version (version, applied_at) VALUES (?, ?)",
                                 (version, iso(time.time())))
            hour_ago = time.time() - 3600
            rows = [("r-ahead", iso(hour_ago + 20 * 3600), iso(hour_ago), "fault", "network.wan"),
                    ("r-now", iso(hour_ago + 300), iso(hour_ago + 301), "healthy", "none")]
            for report_id, started, received, verdict, cause in rows:
                storage._execute(conn, "INSERT INTO reports (report_id, terminal_id, site, started_at, received_at, verdict, "
                                 "top_cause, agent_version, body) VALUES (?, 'lane-2', 'store-1', ?, ?, ?, ?, '0.1.0', '{}')",
                                 (report_id, started, received, verdict, cause))
            storage._execute(conn, "INSERT INTO terminals (id, site, token_hash, created_at, last_seen_at, verdict, "
                             "top_cause, agent_version, last_started_at, state_at) VALUES ('lane-2', 'store-1', 'h', ?, ?, "
                             "'healthy', 'none', '0.1.0', ?, ?)",
                             (iso(hour_ago - 3600), iso(hour_ago + 301), iso(hour_ago + 300), iso(hour_ago + 300)))
        assert storage.migrate() == list(range(5, LATEST + 1))
        assert storage.get_terminal("lane-2")["last_report_id"] == "r-now"
        listed = storage.list_reports(terminal="lane-2")
        assert [(r["report_id"], r["state_at"]) for r in listed] == [("r-now", iso(hour_ago + 300)),
                                                                     ("r-ahead", iso(hour_ago))]
        report = make_report("lane-2", "store-1", verdict="healthy", cause="none")
        assert storage.store_report(intake.decode(json.dumps(report).encode(), "", 10**6))[0] == "stored"
        assert [r["report_id"] for r in storage.list_reports(terminal="lane-2")] == [report["report_id"], "r-now", "r-ahead"]
        assert storage.get_terminal("lane-2")["last_report_id"] == report["report_id"]
    finally:
        storage.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_serve_processes_on_one_postgresql_start_together_and_store_a_report_sent_to_both_once(db_url):
    servers: list[ServeProcess] = []
    starters = [threading.Thread(target=lambda: servers.append(ServeProcess(db_url))) for _ in range(2)]
    for t in starters:
        t.start()
    for t in starters:
        t.join()
    try:
        assert len(servers) == 2
        storage = open_storage(db_url)
        assert storage._select("SELECT count(*) AS n FROM schema_version")[0]["n"] == len(migrations("postgres"))
        f = Fleet(servers[0].url, storage)
        token = f.terminal("lane-01", "store-1")
        for _ in range(5):
            report = make_report("lane-01")
            barrier = threading.Barrier(6)
            codes: list[int] = []

            def send(url: str, report: dict = report, barrier: threading.Barrier = barrier, codes: list = codes) -> None:
                barrier.wait()
                codes.append(f.post(token, report, url=url).status_code)

            threads = [threading.Thread(target=send, args=(s.url,)) for s in servers for _ in range(3)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            assert sorted(codes) == [200] * 5 + [201]
        assert f.stored() == 5
        storage.close()
    finally:
        for server in servers:
            server.stop()


def test_collector_serves_https_with_a_secure_session_cookie(tmp_path):
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("127.0.0.1")
    cert, key, ca_file = tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    leaf.private_key_and_cert_chain_pem.write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    db = f"sqlite:///{tmp_path / 'c.db'}"
    operator = run("add-operator", "alice", "--db", db)[1].strip()
    server = ServeProcess(db, "--cert", str(cert), "--key", str(key))
    try:
        assert server.url.startswith("https://")
        answer = requests.post(server.url + "/signin", data={"token": operator}, allow_redirects=False, timeout=10,
                               verify=str(ca_file))
        assert answer.status_code == 303
        assert "Secure" in answer.headers["set-cookie"]
    finally:
        server.stop()


def _serve_args(*flags: str):
    return cli._parser().parse_args(["serve", "--db", "sqlite:///c.db", *flags])


def test_serve_without_options_runs_with_the_documented_settings():
    """The command line's defaults are the settings' (which docs/collector.md documents), one by one."""
    from posdiag.collector.settings import Settings

    args = _serve_args()
    assert (args.listen, args.workers, args.access_log, args.cert, args.key) == ("127.0.0.1:8080", 1, False, None, None)
    assert cli._settings(args) == Settings(db_url="sqlite:///c.db")


def test_the_settings_default_to_the_figures_docs_collector_md_gives():
    """Each default as a number, not as the name both the settings and the command line read: a
    megabyte is 1048576 bytes, whatever ``MIB`` says."""
    from dataclasses import asdict

    from posdiag.collector.settings import Settings

    assert asdict(Settings(db_url="sqlite:///c.db")) == {
        "db_url": "sqlite:///c.db", "max_report_bytes": 1048576, "max_body_bytes": 1048576, "incident_window_min": 10,
        "site_min_terminals": 2, "fleet_min_sites": 3, "incident_lookback_h": 24, "silent_after_min": 15,
        "max_inflight": 1000, "db_pool_size": 8, "db_timeout_s": 5, "session_hours": 12, "request_expiry_min": 15,
        "max_bundle_bytes": 8388608, "retain_days": 90, "alert_webhook": None, "alert_secret_file": None,
        "header_timeout_s": 10, "max_header_bytes": 16384, "max_connections_per_client": 64, "max_connections": 4096}


COUNTS = ("workers", "max-report-bytes", "max-body-bytes", "site-min-terminals", "fleet-min-sites", "db-pool-size",
          "max-inflight", "max-bundle-bytes", "retain-days", "max-connections")


@pytest.mark.parametrize("flag", COUNTS)
def test_serve_refuses_a_count_below_one_and_takes_one(flag):
    with pytest.raises(cli.Failure, match=f"^--{flag} must be at least 1$"):
        cli._settings(_serve_args(f"--{flag}", "0"))
    settings = cli._settings(_serve_args(f"--{flag}", "1"))
    assert flag == "workers" or getattr(settings, flag.replace("-", "_")) == 1


# (flag, a value refused, a value taken, words of the refusal): each range's both edges
RANGES = [("--request-expiry-min", "0", "0.01", "--request-expiry-min must lie between 0 and 10080"),
          ("--request-expiry-min", "10080.5", "10080", "--request-expiry-min must lie between 0 and 10080"),
          ("--max-header-bytes", "1023", "1024", "--max-header-bytes must be at least 1024"),
          ("--max-connections-per-client", "-1", "0", "--max-connections-per-client at least 0"),
          ("--header-timeout-s", "0", "0.1", "--header-timeout-s more than 0")]


@pytest.mark.parametrize(("flag", "refused", "taken", "words"), RANGES)
def test_serve_refuses_a_setting_just_outside_its_range_and_takes_its_edge(flag, refused, taken, words):
    with pytest.raises(cli.Failure, match=re.escape(words)):
        cli._settings(_serve_args(flag, refused))
    settings = cli._settings(_serve_args(flag, taken))
    assert getattr(settings, flag[2:].replace("-", "_")) == float(taken)


@pytest.mark.parametrize(("listen", "taken"), [("127.0.0.1:65535", ("127.0.0.1", 65535)), ("[::1]:0", ("::1", 0)),
                                               ("127.0.0.1:65536", None), ("127.0.0.1", None), ("::1:8080", None)])
def test_serve_listens_on_host_and_port_up_to_65535(listen, taken):
    if taken is not None:
        assert cli._listen(listen) == taken
    else:
        with pytest.raises(cli.Failure, match="expected HOST:PORT"):
            cli._listen(listen)


def test_serve_wants_its_certificate_and_key_together_and_both_as_files(tmp_path):
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    base = ("serve", "--db", f"sqlite:///{tmp_path / 'c.db'}", "--listen", "127.0.0.1:0")
    assert "--cert and --key go together" in run(*base, "--cert", str(cert))[2]
    assert "--cert and --key go together" in run(*base, "--key", str(key))[2]
    cert.write_text("a chain")
    rc, out, err = run(*base, "--cert", str(cert), "--key", str(key))
    assert (rc, out) == (1, "") and f"no such file: {key}" in err
    key.write_text("a key")  # both there: the next check speaks (an address in use), not the files
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        rc, _, err = run(*base[:-2], "--listen", f"127.0.0.1:{port}", "--cert", str(cert), "--key", str(key))
    assert rc == 1 and "no such file" not in err and f"cannot listen on 127.0.0.1:{port}" in err


@pytest.mark.parametrize(("url", "secret", "words"), [
    ("http://127.0.0.1:9/hook", None, "--alert-webhook and --alert-secret-file go together"),
    (None, b"k" * 16, "--alert-webhook and --alert-secret-file go together"),
    ("ftp://127.0.0.1/hook", b"k" * 16, "expected an http:// or https:// URL"),
    ("http:///hook", b"k" * 16, "expected an http:// or https:// URL"),
    ("ttp://127.0.0.1/hook", b"k" * 16, "expected an http:// or https:// URL"),
    ("https://127.0.0.1/hook", b"  " + b"k" * 15 + b"\n", "holds fewer than 16 bytes"),
    ("http://127.0.0.1:9/hook", b"k" * 16, None),
    ("https://127.0.0.1/hook", b"k" * 16 + b"\n", None),
])
def test_serve_takes_a_webhook_only_with_a_readable_key_of_16_bytes_or_more(tmp_path, url, secret, words):
    flags = ["--alert-webhook", url] if url else []
    if secret is not None:
        (tmp_path / "key").write_bytes(secret)
        flags += ["--alert-secret-file", str(tmp_path / "key")]
    if words is None:
        assert cli._settings(_serve_args(*flags)).alert_webhook == url
    else:
        with pytest.raises(cli.Failure, match=re.escape(words)):
            cli._settings(_serve_args(*flags))


def test_serve_names_an_unreadable_webhook_key(tmp_path):
    with pytest.raises(cli.Failure, match="--alert-secret-file: cannot read"):
        cli._settings(_serve_args("--alert-webhook", "http://127.0.0.1:9/", "--alert-secret-file", str(tmp_path / "none")))


def test_the_command_exits_2_on_bad_usage_and_0_for_help():
    """A script telling a typo from a failure: argparse's usage errors keep their 2, ``--help`` its 0."""
    import io

    for argv, status in (([], 2), (["serve"], 2), (["frobnicate"], 2), (["--help"], 0), (["serve", "--help"], 0)):
        assert cli.main(argv, io.StringIO(), io.StringIO()) == status, argv
    assert (cli.EXIT_OK, cli.EXIT_ERROR, cli.EXIT_USAGE) == (0, 1, 2)


def test_serve_refuses_a_port_another_program_listens_on_even_one_that_shares_it(tmp_path):
    """Another listener with SO_REUSEPORT on the port would split the terminals' pushes between two
    programs without a word: serve says it cannot listen there instead."""
    with socket.socket() as taken:
        taken.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "posdiag.collector", "serve", "--db", f"sqlite:///{tmp_path / 'c.db'}",
                               "--listen", f"127.0.0.1:{port}"], capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 1 and f"cannot listen on 127.0.0.1:{port}" in done.stderr


def _children(pid: int) -> int:
    """How many processes ``pid`` has started (read from /proc)."""
    from pathlib import Path

    count = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        count += int(fields[1]) == pid
    return count


@pytest.mark.parametrize("workers", [1, 2])
def test_serve_runs_as_many_server_processes_as_workers_and_trusts_a_local_proxys_https(tmp_path, workers):
    """One worker serves in the process itself; more run as children sharing the socket. Behind a
    TLS-terminating proxy on this host, X-Forwarded-Proto: https makes the session cookie Secure
    (docs/collector.md); a plain request's cookie is not."""
    db = f"sqlite:///{tmp_path / 'c.db'}"
    operator = run("add-operator", "alice", "--db", db)[1].strip()
    server = ServeProcess(db, "--workers", str(workers))
    try:
        signin = server.url + "/signin"
        for proto, secure in (("https", True), (None, False)):
            headers = {"X-Forwarded-Proto": proto} if proto else {}
            answer = requests.post(signin, data={"token": operator}, headers=headers, allow_redirects=False, timeout=30)
            assert answer.status_code == 303
            assert ("Secure" in answer.headers["set-cookie"]) is secure
        children = _children(server.proc.pid)  # with workers: theirs, and multiprocessing's resource tracker
        assert children == 0 if workers == 1 else children >= workers
    finally:
        server.stop()


class SlowToConnect:
    """A TCP relay to PostgreSQL that keeps each connection after the first waiting ``delay_s`` before the
    database hears of it: a database slow to take new connections (loaded, or far away)."""

    def __init__(self, port: int, delay_s: float) -> None:
        self.target, self.delay_s, self.accepted = port, delay_s, 0
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.port = self.sock.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.sock.accept()
            except OSError:
                return
            self.accepted += 1
            threading.Thread(target=self._relay, args=(client, self.accepted > 1), daemon=True).start()

    def _relay(self, client: socket.socket, slow: bool) -> None:
        if slow:
            time.sleep(self.delay_s)
        upstream = socket.create_connection(("127.0.0.1", self.target))
        for source, sink in ((client, upstream), (upstream, client)):
            threading.Thread(target=self._pipe, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pipe(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for s in (source, sink):
                s.close()

    def close(self) -> None:
        self.sock.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_the_pools_connections_may_take_up_to_the_database_timeout_to_connect(db_url):
    """Every connection gets the whole ``db_timeout_s`` to be made, the pool's as well as the first: a
    database that takes 3 s to answer a new connection is slow, not down."""
    from urllib.parse import urlsplit

    relay = SlowToConnect(urlsplit(db_url).port, 3.0)
    try:
        storage = open_storage(db_url.replace(f":{urlsplit(db_url).port}/", f":{relay.port}/"), timeout_s=10.0)
        try:
            assert storage.migrate() and relay.accepted >= 2
        finally:
            storage.close()
    finally:
        relay.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgresql_storage_starts_with_a_connection_ready_and_reads_outside_any_transaction(db_url):
    """Opened, it has waited for its first pooled connection (the first request does not); a read is one
    statement in autocommit, no BEGIN left open on the connection, while a write is one transaction."""
    from psycopg.pq import TransactionStatus

    storage = open_storage(db_url, pool_size=2, timeout_s=5.0)
    try:
        assert storage._pool.get_stats()["pool_available"] == 1
        with storage._connection() as conn:
            conn.execute("SELECT 1")
            assert conn.info.transaction_status == TransactionStatus.IDLE
        with storage._connection(write=True) as conn:
            conn.execute("SELECT 1")
            assert conn.info.transaction_status == TransactionStatus.INTRANS
    finally:
        storage.close()


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_a_postgresql_process_holds_db_pool_size_connections_and_a_request_for_one_more_is_overloaded(db_url):
    """--db-pool-size connections at once; past them a request waits db_timeout_s, then is told to come back."""
    from posdiag.collector.storage.base import Overloaded

    storage = open_storage(db_url, pool_size=2, timeout_s=1.0)
    try:
        with storage._connection() as first, storage._connection() as second:
            assert first is not second
            with pytest.raises(Overloaded, match="no database connection free"), storage._connection():
                pass
        storage.ping()  # the connections are back: the next request gets one
    finally:
        storage.close()
