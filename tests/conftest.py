"""Shared fixtures: real peers and real faults, built by the tests themselves.

Root-only tests (mounts, network namespaces, nft) are marked ``root``. Without root they skip —
except under ``CI=true``, where CI runs as root and a skip would hide a broken environment, so
there they fail instead.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest
from labs import REPO
from labs.commands import IN_CI, diagnose_json, run_cli, run_posdiag  # noqa: F401 - fixtures and tests use them
from labs.helpers import make_certs, write_config


def pytest_configure(config: pytest.Config) -> None:
    """Every probe run by the tests, in this process or a child, logs findings it did not declare."""
    import tempfile

    from posdiag.probes.base import CONTRACT_LOG_ENV

    # Text is English unless a test asks for another language: the host's locale must not decide.
    for name in ("LC_ALL", "LC_MESSAGES", "LANGUAGE"):
        os.environ.pop(name, None)
    os.environ["LANG"] = "C.UTF-8"
    # The installed package reads the compiled catalogues; an edited .po counts without a reinstall.
    from catalogues import compile_to

    compile_to(REPO / "core" / "locale")

    if not os.environ.get(CONTRACT_LOG_ENV):
        fd, path = tempfile.mkstemp(prefix="posdiag-contract-", suffix=".log")
        os.close(fd)
        os.environ[CONTRACT_LOG_ENV] = path


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run when any probe emitted a finding its declaration does not allow."""
    from posdiag.probes.base import CONTRACT_LOG_ENV

    log = Path(os.environ.get(CONTRACT_LOG_ENV, ""))
    broken = sorted(set(log.read_text().splitlines())) if log.is_file() else []
    if broken:
        session.config.get_terminal_writer().line(
            "probes emitted findings they do not declare (probe, code, severity, declared):\n  " + "\n  ".join(broken),
            red=True)
        session.exitstatus = 1


def pytest_runtest_setup(item: pytest.Item) -> None:
    if item.get_closest_marker("root") and os.geteuid() != 0:
        if IN_CI:
            pytest.fail("root-only test cannot run: CI must run as root (CI=true forbids skipping)")
        pytest.skip("needs root (mounts, network namespaces, nft)")


@pytest.fixture
def config_file(tmp_path: Path):
    """Factory: write a posdiag.toml from section dicts; state stays inside tmp_path."""

    def make(**sections) -> Path:
        sections.setdefault("daemon", {})
        sections["daemon"].setdefault("state_dir", str(tmp_path / "state"))
        sections["daemon"].setdefault("control_socket", str(tmp_path / "control.sock"))
        sections.setdefault("disk", {}).setdefault("paths", [str(tmp_path)])
        sections["disk"].setdefault("min_free_mb", 1)
        # The CI box is shared: its load says nothing about the code under test (tests of the load
        # rule set their own threshold).
        sections.setdefault("system", {}).setdefault("max_load_per_cpu", 1000)
        # Nor does its kernel log: what other tests wrote there (an oops, I/O errors) or a hung task
        # of a loaded box is not this test's terminal. Tests of the kernel log name /dev/kmsg.
        if "kernel_log" not in sections["system"]:
            (tmp_path / "kmsg").touch()
            sections["system"]["kernel_log"] = str(tmp_path / "kmsg")
        return write_config(tmp_path / "posdiag.toml", sections)

    return make


@pytest.fixture(scope="session")
def push_certs(tmp_path_factory):
    """A CA that terminals trust, a rogue one, and a server certificate of each for 127.0.0.1."""
    made = make_certs(tmp_path_factory.mktemp("push-certs"), "127.0.0.1", "localhost")
    return {"good": made["valid"], "rogue": made["untrusted"], "ca": made["ca"]}


@pytest.fixture
def tmpfs(tmp_path: Path):
    """Factory: mount a small tmpfs (a real filesystem that really fills up); unmounted afterwards."""
    mounts: list[Path] = []

    def make(size: str = "2m", inodes: int | None = None, name: str = "fs") -> Path:
        target = tmp_path / name
        target.mkdir()
        opts = f"size={size}" + (f",nr_inodes={inodes}" if inodes else "")
        subprocess.run(["mount", "-t", "tmpfs", "-o", opts, "posdiag-test", str(target)], check=True)
        mounts.append(target)
        return target

    yield make
    for target in reversed(mounts):
        subprocess.run(["umount", "-l", str(target)], check=False)


@pytest.fixture
def ntp_server():
    """Factory: an SNTP responder on loopback whose clock is ``offset_s`` away from ours."""
    from labs.helpers import NtpResponder

    servers: list[NtpResponder] = []

    def make(offset_s: float = 0.0, **kw) -> NtpResponder:
        srv = NtpResponder(offset_s, **kw)
        srv.start()
        servers.append(srv)
        return srv

    yield make
    for srv in servers:
        srv.stop()


@pytest.fixture
def lab():
    """terminal ─ router ─ payment host, in network namespaces of this test's own (root)."""
    import shutil

    from labs.netlab import Lab

    missing = [tool for tool in ("ip", "nft", "setpriv") if shutil.which(tool) is None]
    if missing:
        message = f"missing {', '.join(missing)}: apt-get install iproute2 nftables util-linux (.ci/run does)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    with Lab() as built:
        yield built


@pytest.fixture(scope="session")
def deb(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Debian package of this checkout, built once for the packaging and boot tests (labs.debian)."""
    from labs.debian import build_deb

    return build_deb(tmp_path_factory.mktemp("dist"))


@pytest.fixture(scope="session")
def certs(tmp_path_factory):
    """Payment-host certificates made by trustme (see helpers.make_certs)."""
    from labs.helpers import make_certs

    return make_certs(tmp_path_factory.mktemp("certs"))


# The collector's fixtures (PostgreSQL, a running collector, Chromium) live in their own module.
from labs.collector_fixtures import browser, db_url, fleet, pg_cluster  # noqa: E402,F401


@pytest.fixture(autouse=True)
def _english_between_tests():
    """A test that ran the CLI in-process with --lang zh_CN must not leave the next one speaking Chinese."""
    yield
    from posdiag.core import i18n

    if i18n.active() != "en":
        i18n.use("en")


@pytest.fixture
def speak_chinese():
    """This process speaks Simplified Chinese for one test (probes run in-process write Chinese), then English again."""
    from posdiag.core import i18n

    yield i18n.use("zh_CN")
    i18n.use("en")


@pytest.fixture
def desk(tmp_path, push_certs):
    """Factory: a help desk (a collector with an operator and a terminal's token) for remote requests."""
    from labs.remotelab import HelpDesk

    started: list[HelpDesk] = []

    def make(*serve_args: str) -> HelpDesk:
        started.append(HelpDesk(tmp_path, push_certs, *serve_args))
        return started[-1]

    yield make
    for d in started:
        d.stop()
