"""Did a failed connect leave this terminal at all? What tells the terminal's own packet filter from
the far end and the path, using only what an unprivileged process sees.

A rule in the terminal's own output path acts before any packet is on the wire, in three ways:

* it drops or rejects *everything* to the host: a datagram's send fails at once with EPERM (no
  packet leaves; TCP, which retransmits, only times out) — :func:`refused_here`;
* it answers a TCP connect itself, with a reset or an ICMP "unreachable", or drops it, while other
  packets to the same host still leave (a rule for TCP alone, or for one port).

The second kind is told by one hop (:func:`one_hop`): connects sent with a TTL of 1 cannot get
beyond the first router, which answers what reaches it with ICMP "time exceeded" — and a datagram to
the same host with the same TTL, sent just after, shows that it does. A TTL-1 connect that the first
router never answered, or that got a reset or an "unreachable" sent from one of the terminal's own
addresses, did not get as far as the first router: it was stopped inside the terminal. A connect
that left gets "time exceeded" like the datagram, so a far host's reset and a router's silence keep
their own meaning. IPv4, when the route to the host goes through a router; a router that sends no
"time exceeded" leaves the question open.
"""

from __future__ import annotations

import errno
import os
import select
import socket
import time
from contextlib import ExitStack
from dataclasses import dataclass

from posdiag.probes.network._icmp import IP_RECVERR, IcmpError, queued_icmp_error

#: How a send that never left the terminal fails: its own packet filter or security software said no.
_REFUSED_HERE = {errno.EPERM, errno.EACCES}
#: TTL-1 connects sent before the datagram: one lost on the store's wire does not make a drop.
SYNS = 2
#: After the first router has answered the datagram, the connects (sent before it) get this long more.
GRACE_S = 0.05


@dataclass(frozen=True)
class Stopped:
    """A connect this terminal stopped itself. ``sign``: ``send_refused`` (a datagram's send failed
    with ``error``), ``answered`` (a TTL-1 connect was answered, ``answer`` "reset" or "unreachable",
    from inside the terminal) or ``dropped`` (no TTL-1 connect reached the first router). ``first_hop``
    is the router that answered the TTL-1 datagram: proof that packets which leave are answered."""

    sign: str
    error: str = ""
    answer: str = ""
    first_hop: str = ""


def refused_here(address: str, port: int) -> str | None:
    """Does this terminal itself refuse to send to ``address``? One empty UDP datagram tells: a rule
    that drops or rejects the host in the terminal's own output path (a packet filter, security
    software) fails the send at once with EPERM, and no packet leaves — while TCP, which retransmits,
    only times out. Needs no privilege and reads no rule set. The OS's words for the refusal, else None."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as sock:
        try:
            sock.sendto(b"", (address, port))
        except OSError as exc:
            if exc.errno in _REFUSED_HERE:
                return exc.strerror or str(exc)
    return None


def stopped_here(address: str, port: int, wait_s: float, via_router: bool) -> Stopped | None:
    """How this terminal stopped connects to ``address``:``port`` itself, or None when nothing shows it
    did (they left, or the first router cannot tell). ``via_router``: the route to ``address`` goes
    through a router (on the store's own subnet a TTL of 1 reaches the host, and tells nothing)."""
    refusal = refused_here(address, port)
    if refusal:
        return Stopped("send_refused", error=refusal)
    return one_hop(address, port, wait_s) if via_router and ":" not in address else None


def one_hop(address: str, port: int, wait_s: float) -> Stopped | None:
    """Send :data:`SYNS` TCP connects and then one UDP datagram to ``address``:``port``, all with a TTL
    of 1, and compare what comes back within ``wait_s`` (see the module's docstring)."""
    deadline = time.monotonic() + wait_s
    with ExitStack() as stack:
        syns = [stack.enter_context(_ttl1(socket.SOCK_STREAM)) for _ in range(SYNS)]
        started = [sock.connect_ex((address, port)) for sock in syns]
        probe = stack.enter_context(_ttl1(socket.SOCK_DGRAM))
        try:
            probe.sendto(b"", (address, port))
        except OSError:
            return None
        first_hop = _time_exceeded_from(probe, deadline)
        if first_hop is None or _is_own(first_hop):
            return None
        grace_end = min(deadline, time.monotonic() + GRACE_S)
        return _judge([_outcome(sock, code, grace_end) for sock, code in zip(syns, started, strict=True)], first_hop)


def _ttl1(kind: int) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind)
    sock.setblocking(False)
    sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, 1)
    sock.setsockopt(socket.IPPROTO_IP, IP_RECVERR, 1)
    return sock


def _time_exceeded_from(sock: socket.socket, deadline: float) -> str | None:
    """The router that answered the datagram with "time exceeded" before ``deadline``, or None."""
    while (left := deadline - time.monotonic()) > 0:
        select.select([sock], [], [], left)  # a queued error makes the socket readable
        try:
            error = queued_icmp_error(sock)
        except OSError:
            return None
        if error is not None:
            return error.sender if error.time_exceeded else None
    return None


@dataclass(frozen=True)
class _Outcome:
    """What one TTL-1 connect got: ``errno`` (0: connected, or still waiting), the ICMP error if any."""

    errno: int
    icmp: IcmpError | None
    connected: bool = False


def _outcome(sock: socket.socket, started: int, until: float) -> _Outcome:
    """``started``: what connect_ex itself returned (an error it reported at once is not in SO_ERROR)."""
    _, writable, _ = select.select([], [sock], [], max(0.0, until - time.monotonic()))
    code = sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
    if not code and started not in (0, errno.EINPROGRESS):
        code = started
    try:
        icmp = queued_icmp_error(sock)
    except OSError:
        icmp = None
    return _Outcome(code, icmp, connected=bool(writable) and not code)


def _judge(outcomes: list[_Outcome], first_hop: str) -> Stopped | None:
    """Stopped inside the terminal only if no connect got as far as the first router."""
    if any(o.connected or (o.icmp and o.icmp.time_exceeded) for o in outcomes):
        return None  # it left (the first router answered it as it answered the datagram), or it connected
    for o in outcomes:
        if o.errno == errno.ECONNREFUSED and o.icmp is None:
            return Stopped("answered", error=os.strerror(o.errno), answer="reset", first_hop=first_hop)
        if o.icmp and _is_own(o.icmp.sender):
            return Stopped("answered", error=os.strerror(o.errno or errno.EHOSTUNREACH), answer="unreachable",
                           first_hop=first_hop)
    if all(o.errno == 0 and o.icmp is None for o in outcomes):  # none connected (above): all still waiting
        return Stopped("dropped", first_hop=first_hop)
    return None


def _is_own(address: str) -> bool:
    """Is ``address`` one of this terminal's own? The kernel routes a datagram to its own address
    from that very address (no packet is sent: connecting a UDP socket only picks the route)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            sock.connect((address, 9))
        except OSError:
            return False
        return sock.getsockname()[0] == address
