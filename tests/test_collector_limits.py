"""The served stack's own limits, against a real ``serve`` process: a client that sends its headers
slowly, or sends a huge one, or opens connection after connection, cannot take the collector from
the others.
"""

from __future__ import annotations

import re
import socket
import time
from urllib.parse import urlsplit

import pytest
import requests
from labs.collectorlab import ServeProcess
from labs.helpers import wait_for


def _address(server: ServeProcess) -> tuple[str, int]:
    parts = urlsplit(server.url)
    return parts.hostname, parts.port


def _partial(address: tuple[str, int], source: str = "127.0.0.1") -> socket.socket:
    """A connection that starts a request and never finishes its headers."""
    conn = socket.create_connection(address, timeout=10, source_address=(source, 0))
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: a")
    return conn


def _closed(conn: socket.socket) -> bool:
    """True once the server has closed the connection (EOF or reset), whatever it said first."""
    conn.settimeout(0.05)
    try:
        while True:
            data = conn.recv(65536)
            if not data:
                return True
    except TimeoutError:
        return False
    except OSError:
        return True


def _closed_while_trickling(conn: socket.socket) -> bool:
    """Start a request and send a header line now and then, for up to 30 s: True once the server closed
    the connection (the deadline is for the whole header, however steadily it comes)."""
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
    started = time.monotonic()
    while not _closed(conn) and time.monotonic() - started < 30:
        try:
            conn.sendall(b"X-Drip: 1\r\n")
        except OSError:
            break
        time.sleep(0.3)
    return _closed(conn)


def _healthz_from(address: tuple[str, int], source: str) -> bytes:
    with socket.create_connection(address, timeout=10, source_address=(source, 0)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        return conn.recv(4096).split(b"\r\n")[0]


def _answered_once(address: tuple[str, int]) -> socket.socket:
    """A kept-alive connection whose first request has been answered in full: the next one may follow."""
    conn = socket.create_connection(address, timeout=10)
    conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    data = b""
    while b"\r\n\r\n" not in data:
        data += conn.recv(4096)
    head, _, body = data.partition(b"\r\n\r\n")
    length = int(re.search(rb"(?i)\r\ncontent-length: *(\d+)", head).group(1))
    while len(body) < length:
        body += conn.recv(4096)
    assert head.startswith(b"HTTP/1.1 200"), head
    return conn


@pytest.fixture
def served(tmp_path):
    servers: list[ServeProcess] = []

    def start(*flags: str) -> ServeProcess:
        server = ServeProcess(f"sqlite:///{tmp_path / 'c.db'}", *flags)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()


def test_connections_that_never_finish_their_headers_are_closed_after_the_header_timeout(served):
    server = served()  # the default: 10 s for a request's headers
    address = _address(server)
    idle = [_partial(address) for _ in range(20)]
    try:
        assert wait_for(lambda: all(_closed(c) for c in idle), 60, interval=0.2)
        assert requests.get(server.url + "/healthz", timeout=10).status_code == 200
    finally:
        for conn in idle:
            conn.close()


def test_trickling_header_bytes_does_not_keep_a_connection_open(served):
    server = served("--header-timeout-s", "2")
    with socket.create_connection(_address(server), timeout=10) as conn:
        assert _closed_while_trickling(conn)


def test_a_client_cannot_hold_more_connections_than_its_share_and_others_still_get_in(served):
    server = served("--header-timeout-s", "60")  # the default share: 64 connections a client
    address = _address(server)
    held = [_partial(address) for _ in range(72)]
    try:
        assert wait_for(lambda: sum(_closed(c) for c in held) >= 8, 15, interval=0.2)
        assert _healthz_from(address, "127.0.0.2").endswith(b"200 OK")  # another client is served meanwhile
        assert sum(_closed(c) for c in held) == 8  # the 64 first are kept
    finally:
        for conn in held:
            conn.close()
    assert wait_for(lambda: _healthz_from(address, "127.0.0.1").endswith(b"200 OK"), 15, interval=0.2)
    time.sleep(0.5)  # every close of the first round counted off
    again = [_partial(address) for _ in range(72)]  # its share is whole again, and no more than whole
    try:
        assert wait_for(lambda: sum(_closed(c) for c in again) >= 8, 15, interval=0.2)
        time.sleep(0.3)
        assert sum(_closed(c) for c in again) == 8
    finally:
        for conn in again:
            conn.close()


def test_a_header_larger_than_the_limit_is_refused_with_431_before_it_is_read_in_full(served):
    server = served()  # the default: 16 KiB of request line and headers
    with socket.create_connection(_address(server), timeout=10) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536)
        status = conn.recv(4096).split(b"\r\n")[0]
    assert status.startswith(b"HTTP/1.1 431")
    normal = requests.get(server.url + "/healthz", headers={"X-Normal": "b" * 4000}, timeout=10)
    assert normal.status_code == 200 and "server" not in normal.headers  # the stack does not name itself


def test_the_served_stack_keeps_an_idle_connection_5_s_and_its_limits_default_to_the_settings():
    from posdiag.collector import served
    from posdiag.collector.settings import Settings

    made = served.config(object(), Settings(db_url="sqlite:///c.db"))
    assert (made.timeout_keep_alive, made.timeout_graceful_shutdown, made.server_header) == (5, 5, False)
    assert made.limit_concurrency == 4096  # --max-connections
    assert made.limits == served.Limits() == served.Limits(header_timeout_s=10.0, max_header_bytes=16384,
                                                            max_connections_per_client=64)


def test_the_next_request_on_a_kept_alive_connection_meets_the_header_size_limit_too(served):
    server = served()
    with _answered_once(_address(server)) as conn:
        conn.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * 65536)
        status = conn.recv(4096).split(b"\r\n")[0]
    assert status.startswith(b"HTTP/1.1 431")


def test_the_next_request_on_a_kept_alive_connection_meets_the_header_deadline_too(served):
    """The deadline starts again with the next request's first byte: trickling its headers on a
    connection that was answered once does not keep it open either."""
    server = served("--header-timeout-s", "2")
    with _answered_once(_address(server)) as conn:
        assert _closed_while_trickling(conn)


def test_a_share_of_0_connections_per_client_is_no_limit(served):
    """Behind a proxy every connection comes from one address: --max-connections-per-client 0 turns the share off."""
    server = served("--header-timeout-s", "60", "--max-connections-per-client", "0")
    address = _address(server)
    held = [_partial(address) for _ in range(72)]
    try:
        assert _healthz_from(address, "127.0.0.1").endswith(b"200 OK")
        assert not any(_closed(c) for c in held)
    finally:
        for conn in held:
            conn.close()


HEAD = b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\nX-Big: "


def _status_of(address: tuple[str, int], size: int, split: bool) -> bytes:
    """The status line answered to a request whose line and headers, up to the blank line that ends
    them, are ``size`` bytes: sent whole, or with its last four bytes a moment later."""
    request = HEAD + b"a" * (size - len(HEAD) - 4) + b"\r\n\r\n"
    with socket.create_connection(address, timeout=10) as conn:
        conn.sendall(request[:-4] if split else request)
        if split:
            time.sleep(0.5)  # read by the server on its own before the end of the headers follows
            conn.sendall(request[-4:])
        return conn.recv(4096).split(b"\r\n")[0]


@pytest.mark.parametrize("split", [False, True], ids=["in-one-read", "in-two-reads"])
def test_headers_of_exactly_the_limit_are_read_and_one_byte_more_is_refused(served, split):
    """--max-header-bytes counts the request line and headers however they arrive: a whole request in
    one read is measured as well as one that trickles in."""
    address = _address(served("--max-header-bytes", "1024"))
    assert _status_of(address, 1024, split).endswith(b"200 OK")
    assert _status_of(address, 1025, split).startswith(b"HTTP/1.1 431")


@pytest.mark.parametrize("db_url", ["sqlite"], indirect=True)
def test_a_client_is_counted_while_it_holds_connections_and_forgotten_once_it_holds_none(fleet):
    """The per-client count keeps no entry for an address that has gone: a process serving many
    terminals over months does not grow a table of every address it ever saw."""
    f = fleet()
    clients = f.server.server.config.clients
    held = [_partial(_address(f)) for _ in range(3)]
    try:
        assert wait_for(lambda: clients.get("127.0.0.1") == 3, 10, interval=0.05), dict(clients)
    finally:
        for conn in held:
            conn.close()
    assert wait_for(lambda: "127.0.0.1" not in clients, 10, interval=0.05), dict(clients)
