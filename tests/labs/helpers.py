"""Test helpers: a TOML writer for configs, and small real peers (an NTP responder, fillers)."""

from __future__ import annotations

import contextlib
import errno
import socket
import struct
import threading
import time
from pathlib import Path
from typing import Any

NTP_EPOCH_OFFSET = 2208988800


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return "'" + v + "'" if "'" not in v and "\n" not in v else '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    raise TypeError(f"cannot write {v!r} as TOML")


def toml_dumps(sections: dict[str, Any]) -> str:
    """Enough TOML for posdiag configs: tables of scalars/lists, and arrays of tables."""
    out = []
    for name, body in sections.items():
        tables = body if isinstance(body, list) else [body]
        for table in tables:
            out.append(f"[[{name}]]" if isinstance(body, list) else f"[{name}]")
            out += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
            out.append("")
    return "\n".join(out)


def write_config(path: Path, sections: dict[str, Any]) -> Path:
    path.write_text(toml_dumps(sections))
    return path


class NtpResponder:
    """A real SNTP server on 127.0.0.1 that answers with our clock shifted by ``offset_s``.

    ``silent`` makes it swallow requests (an NTP server that does not answer); ``spoil`` makes it
    answer wrongly: ``short`` (47 bytes), ``client`` (mode 3), ``kiss`` (stratum 0, RATE), ``origin``
    (another request's origin time); ``broadcast`` answers in mode 5, as a broadcast server does (not wrong).
    ``delay_s`` is a network's round trip: half of it before the request is stamped, half after the reply;
    ``hold_s`` the server's own time between stamping the request and stamping its reply.
    """

    def __init__(self, offset_s: float = 0.0, silent: bool = False, spoil: str = "", host: str = "127.0.0.1",
                 port: int = 0, delay_s: float = 0.0, hold_s: float = 0.0) -> None:
        self.offset_s = offset_s
        self.delay_s, self.hold_s = delay_s, hold_s
        self.silent = silent
        self.spoil = spoil
        self.host = host
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((host, port))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self.requests = 0

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(2)
        self.sock.close()

    def _stamp(self) -> bytes:
        t = time.time() + self.offset_s + NTP_EPOCH_OFFSET
        return struct.pack("!II", int(t), int((t % 1) * 2**32))

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, peer = self.sock.recvfrom(512)
            except TimeoutError:
                continue
            except OSError:
                return
            self.requests += 1
            if self.silent or len(data) < 48:
                continue
            time.sleep(self.delay_s / 2)
            received = self._stamp()
            mode, stratum = {"client": (0x23, 2), "kiss": (0x24, 0), "broadcast": (0x25, 2)}.get(self.spoil, (0x24, 2))
            header = bytes([mode, stratum, 6, 0xEC]) + bytes(8) + (b"RATE" if self.spoil == "kiss" else b"LOCL") + received
            origin = bytes(8) if self.spoil == "origin" else data[40:48]
            time.sleep(self.hold_s)
            reply = header + origin + received + self._stamp()
            time.sleep(self.delay_s / 2)
            self.sock.sendto(reply[:47] if self.spoil == "short" else reply, peer)


def fill_filesystem(path: Path) -> int:
    """Write until the filesystem says ENOSPC. Returns the bytes written."""
    written = 0
    chunk = b"\0" * 65536
    # Unbuffered: a buffered file would try to write what ENOSPC left in its buffer again when closed,
    # and raise there, depending on how the filesystem's free space happened to line up with the chunks.
    with open(path / "ballast", "wb", buffering=0) as fh:
        try:
            while True:
                written += fh.write(chunk) or 0
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
    # Small writes may still fit in the last partial block: take those too.
    try:
        with open(path / "ballast", "ab", buffering=0) as fh:
            while True:
                fh.write(b"\0" * 512)
    except OSError:
        pass
    return written


def exhaust_inodes(path: Path) -> int:
    """Create empty files until the filesystem has no inode left. Returns how many were created."""
    n = 0
    while True:
        try:
            (path / f"f{n}").touch()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC, exc
            return n
        n += 1


def remount_read_only(path: Path) -> None:
    import subprocess

    subprocess.run(["mount", "-o", "remount,ro", str(path)], check=True)


@contextlib.contextmanager
def pids_cgroup(max_pids: int):
    """A cgroup of this test's own that lets at most ``max_pids`` tasks (processes and threads) exist:
    a process moved into it gets ``can't start new thread`` for real once it has that many. Yields the
    file a process writes its pid to to join it (root; cgroup v1's pids hierarchy or cgroup v2)."""
    import os

    v1 = Path("/sys/fs/cgroup/pids")
    root = v1 if (v1 / "cgroup.procs").exists() else Path("/sys/fs/cgroup")
    if root != v1 and "pids" not in (root / "cgroup.subtree_control").read_text().split():
        (root / "cgroup.subtree_control").write_text("+pids")
    group = root / f"posdiag-test-{os.getpid()}-{time.monotonic_ns()}"
    group.mkdir()
    try:
        (group / "pids.max").write_text(str(max_pids))
        yield group / "cgroup.procs"
    finally:
        for pid in (group / "cgroup.procs").read_text().split():  # nothing of ours may outlive the test
            os.kill(int(pid), 9)
        wait_for(lambda: not (group / "cgroup.procs").read_text().strip(), 5)
        group.rmdir()


@contextlib.contextmanager
def hung_control_socket(path: str):
    """A daemon's control socket at ``path`` that takes every connection and never answers (a hung daemon)."""
    hung = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    hung.bind(path)
    hung.listen(4)
    held: list[socket.socket] = []
    threading.Thread(target=lambda: held.append(hung.accept()[0]), daemon=True).start()
    try:
        yield
    finally:
        for conn in held:
            conn.close()
        hung.close()


def wait_for(predicate, timeout: float = 5.0, interval: float = 0.02) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval)
    return False


PAYMENT_NAME = "pay.acquirer.test"


def make_certs(folder: Path, name: str = PAYMENT_NAME, *more_names: str) -> dict:
    """Certificates for the payment host, made by trustme: valid, expired, not yet valid, expiring in
    3 days, for another name, and one from a CA the terminal does not trust. Returns
    {kind: (cert path, key path), "ca": trusted CA path}."""
    import datetime

    import trustme

    ca, rogue = trustme.CA(), trustme.CA()
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    issued = {
        "valid": ca.issue_cert(name, *more_names),
        "expired": ca.issue_cert(name, not_before=now - 30 * day, not_after=now - day),
        "not_yet_valid": ca.issue_cert(name, not_before=now + 10 * day, not_after=now + 40 * day),
        "expiring": ca.issue_cert(name, not_before=now - day, not_after=now + 3 * day),
        "wrong_name": ca.issue_cert("other.acquirer.test"),
        "untrusted": rogue.issue_cert(name, *more_names),
    }
    paths: dict = {}
    for kind, leaf in issued.items():
        cert, key = folder / f"{kind}.pem", folder / f"{kind}.key"
        leaf.cert_chain_pems[0].write_to_path(str(cert))
        leaf.private_key_pem.write_to_path(str(key))
        paths[kind] = (str(cert), str(key))
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    paths["ca"] = str(folder / "ca.pem")
    return paths


def probe_of(report: dict, name: str) -> dict:
    return next(p for p in report["probes"] if p["name"] == name)


def codes_of(report: dict, name: str) -> list[str]:
    return [f["code"] for f in probe_of(report, name)["findings"]]


def top_cause(report: dict) -> str:
    return report["diagnosis"]["causes"][0]["id"]


def unwrapped(text: str) -> str:
    """Text with every space and line break taken out: reports wrap at 80 display columns wherever a
    line runs long, so a test looks for a sentence in this form, not for where a line happened to break."""
    return "".join(text.split())
