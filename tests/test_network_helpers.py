"""The small pieces the differential checks stand on, against real loopback peers and real files:
DNS retries side by side, the last-known-address record, DF echoes on loopback."""

from __future__ import annotations

import json
import os
import socket
import threading
import time

import pytest
from posdiag.probes._dnswire import DnsTimeout, query
from posdiag.probes.network import _known


class LossyResolver:
    """A UDP resolver on loopback that drops the first ``drop`` questions, then answers NOERROR."""

    def __init__(self, drop: int) -> None:
        self.drop, self.seen = drop, 0
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(0.1)
        self.address = f"127.0.0.1#{self.sock.getsockname()[1]}"
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            self.seen += 1
            if self.seen <= self.drop:
                continue
            # header: same id, QR + RD + RA, NOERROR, the question echoed, one A record 192.0.2.7
            reply = data[:2] + b"\x81\x80" + b"\x00\x01\x00\x01\x00\x00\x00\x00" + data[12:]
            reply += b"\xc0\x0c\x00\x01\x00\x01\x00\x00\x00\x3c\x00\x04" + bytes([192, 0, 2, 7])
            self.sock.sendto(reply, peer)

    def __enter__(self) -> LossyResolver:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(1)
        self.sock.close()


def test_a_lost_question_is_asked_again_within_the_same_timeout():
    with LossyResolver(drop=1) as resolver:
        started = time.monotonic()
        answer = query(resolver.address, "pay.example", timeout_s=0.9, resend_after_s=0.3)
        elapsed = time.monotonic() - started
    assert answer.rcode == "NOERROR" and answer.addresses == ("192.0.2.7",)
    assert resolver.seen == 2
    assert 0.25 < elapsed < 0.85  # the retry went out at 0.3 s, not after a whole timeout


def test_a_silent_resolver_costs_one_timeout_however_many_tries():
    with LossyResolver(drop=100) as resolver:
        started = time.monotonic()
        with pytest.raises(DnsTimeout):
            query(resolver.address, "pay.example", timeout_s=0.6, resend_after_s=0.2)
        elapsed = time.monotonic() - started
    assert resolver.seen == 3
    assert elapsed < 0.9


def test_last_known_addresses_are_kept_newest_first_and_written_only_on_change(tmp_path):
    state = str(tmp_path / "state")
    assert _known.load(state) == {}
    assert _known.remember(state, {"pay.example": "192.0.2.7"}) is True
    path = tmp_path / "state" / _known.FILE_NAME
    first = path.stat().st_mtime_ns
    time.sleep(0.01)
    assert _known.remember(state, {"pay.example": "192.0.2.7"}) is False
    assert path.stat().st_mtime_ns == first  # nothing new, nothing written (flash storage)
    assert _known.remember(state, {"pay.example": "192.0.2.8", "backup.example": "192.0.2.9"}) is True
    assert _known.load(state) == {"pay.example": ("192.0.2.8", "192.0.2.7"), "backup.example": ("192.0.2.9",)}
    assert not [n for n in os.listdir(tmp_path / "state") if n.endswith(".tmp")]


def test_a_damaged_record_reads_as_empty_and_is_replaced(tmp_path):
    (tmp_path / _known.FILE_NAME).write_text("{not json")
    assert _known.load(str(tmp_path)) == {}
    assert _known.remember(str(tmp_path), {"pay.example": "192.0.2.7"}) is True
    assert json.loads((tmp_path / _known.FILE_NAME).read_text())["hosts"]["pay.example"]["addresses"] == ["192.0.2.7"]


def test_an_unwritable_state_dir_is_not_an_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert _known.remember(str(blocker / "state"), {"pay.example": "192.0.2.7"}) is False


@pytest.mark.root
def test_df_echoes_of_every_size_come_back_on_loopback():
    from posdiag.probes.network._icmp import echo_batch

    rtts = echo_batch("127.0.0.1", [64, 576, 1500, 1500], time.monotonic() + 1.0, spread_s=0.05)
    assert all(r is not None and r >= 0 for r in rtts), rtts


def test_silent_tcp_handshakes_alone_are_not_counted_again_by_the_path_probe():
    """The TCP probe reports its own silent connects; the path probe adds path.no_answer only when
    echoes went unanswered too, so one observation is not weighed twice for the WAN."""
    from posdiag.core.settings import PaymentHost
    from posdiag.probes.network._common import Target
    from posdiag.probes.network.path import PathProbe, Samples

    plan = (Target(0, PaymentHost(host="198.18.2.2")), "198.18.2.2")
    assert PathProbe.no_answer(plan, Samples("tcp", [None] * 24, tcp_sent=24)) is None
    code, _, data = PathProbe.no_answer(plan, Samples("icmp", [None] * 24, icmp_sent=24, tcp_sent=24))
    assert code == "path.no_answer" and data["icmp_sent"] == 24
    assert PathProbe.no_answer(plan, Samples("icmp", [None, 3.5], icmp_sent=2)) is None
