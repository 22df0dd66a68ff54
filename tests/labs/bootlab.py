"""A till booted for real: a Debian root with the package installed and systemd as PID 1, in systemd-nspawn.

The root is a cached one (packaging/test-root --boot) behind an overlay (``labs.debian.DebianRoot``);
``setup`` runs chrooted into it first (``dpkg -i``, the till's configuration), then
``systemd-nspawn --boot`` starts its systemd, which starts posdiag.service as on any boot: under the
unit's real sandbox, capabilities, device policy and memory limit. Commands run inside with
``nsenter`` into the container's namespaces, as root or as one of its users.

Three things make the container a till rather than a chroot with an init:

* Its network is a namespace the test made (``--network-namespace-path``), never this machine's.
* Its cgroups are its own. On a host with the cgroup v1 controllers (this machine's hybrid layout),
  nspawn mounts them read-only into a container, and then systemd cannot apply MemoryMax= or
  DevicePolicy= at all. The container gets cgroups made for it in the memory and device
  controllers, mounted writable, and is started in a cgroup of its own in every hierarchy it
  writes to, so that two tills booted at once (two test runs on one machine) never share one.
* What a till has and a bare container lacks: the kernel log (/dev/kmsg, to read only) and CAP_SYSLOG
  in the container's bounding set, which the unit gives reader.events.

``booted_site`` builds the whole store for tests/test_boot.py and bench/boot_bench.py: the network,
a push server, and the till configured to watch a POS log and push to it.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from labs import child_env
from labs.debian import DebianRoot, cached_root, need, unavailable
from labs.helpers import make_certs, toml_dumps, wait_for
from labs.netlab import HOST_ADDR, Lab

CGROUP_FS = Path("/sys/fs/cgroup")
#: controllers systemd in the container must write to: MemoryMax= and DevicePolicy=
WRITABLE = ("memory", "devices")


def own_cgroups() -> dict[str, str]:
    """This process's cgroup in each hierarchy it is in, by the hierarchy's folder in /sys/fs/cgroup."""
    own = {}
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        folder = "unified" if controllers == "" else controllers.removeprefix("name=")
        own[folder] = path
    return own


class BootedTill:
    """One booted container; ``boot`` starts it, ``shutdown`` (or leaving the ``with``) powers it off."""

    def __init__(self, root: DebianRoot, netns: str, tag: str) -> None:
        self.root, self.netns, self.tag = root, netns, tag
        self.cgroups: dict[str, Path] = {}
        self.proc: subprocess.Popen | None = None
        self.pid1 = 0
        self.console = root.packages.parent / "console.log"

    def __enter__(self) -> BootedTill:
        return self

    def __exit__(self, *exc: object) -> None:
        self.shutdown()

    # --- booting ----------------------------------------------------------------------------------
    def make_cgroups(self) -> None:
        own = own_cgroups()
        if not all((CGROUP_FS / c / "cgroup.procs").exists() for c in WRITABLE) or not set(WRITABLE) <= set(own):
            unavailable("the boot test needs the cgroup v1 memory and device controllers (this machine's layout)")
        for folder in ("systemd", "unified", *WRITABLE):
            if folder in own and (CGROUP_FS / folder / "cgroup.procs").exists():
                path = CGROUP_FS / folder / own[folder].lstrip("/") / self.tag
                path.mkdir()
                self.cgroups[folder] = path
        # The kernel log is this machine's: the till may read it, never write to it (its journald would).
        (self.cgroups["devices"] / "devices.deny").write_text("c 1:11 w")

    def boot(self, setup: str, timeout_s: float = 120) -> None:
        """Run ``setup`` chrooted into the root (the packages folder at /mnt), then boot it until systemd
        says the system is up."""
        self.make_cgroups()
        join = " && ".join(f"echo $$ > {shlex.quote(str(p / 'cgroup.procs'))}" for p in self.cgroups.values())
        options = [f"--network-namespace-path=/run/netns/{self.netns}", f"--bind={self.root.packages}:/mnt",
                   "--bind-ro=/dev/kmsg", "--capability=CAP_SYSLOG", "--tmpfs=/sys/fs/cgroup",
                   *(f"--bind={self.cgroups[c]}:/sys/fs/cgroup/{c}" for c in WRITABLE)]
        nspawn = ('exec systemd-nspawn --register=no --keep-unit --quiet --console=passive --boot -D "$4" '
                  + " ".join(shlex.quote(o) for o in options))
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen(self.root.argv(setup, before_chroot=join, after=nspawn), env=self.root.ENV,
                                         stdin=subprocess.DEVNULL, stdout=console, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + timeout_s
        self.pid1 = self._wait(self._init_pid, deadline, "systemd did not start in the container")
        self._wait(lambda: self.sh("systemctl is-system-running --wait").stdout.strip() in ("running", "degraded"),
                   deadline, "the container did not finish booting")

    def _init_pid(self) -> int:
        """The container's PID 1 seen from here: nspawn's child once it has become systemd."""
        assert self.proc is not None
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        for pid in (children.read_text().split() if children.exists() else []):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "systemd":
                return int(pid)
        return 0

    def _wait(self, ready: Any, deadline: float, failure: str) -> Any:
        while time.monotonic() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise AssertionError(f"the container ended ({self.proc.returncode}): {self.log()}")
            found = ready()
            if found:
                return found
            time.sleep(0.2)
        raise AssertionError(f"{failure}: {self.log()}")

    def log(self) -> str:
        return self.console.read_text(errors="replace")[-3000:] if self.console.exists() else ""

    def shutdown(self) -> None:
        """Power the container off (nspawn passes SIGTERM on as systemd's own shutdown), then drop its cgroups."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        for path in self.cgroups.values():
            for folder in sorted((p for p in path.rglob("*") if p.is_dir()), key=lambda p: -len(p.parts)):
                folder.rmdir()
            path.rmdir()
        self.cgroups.clear()

    # --- inside --------------------------------------------------------------------------------------
    def sh(self, command: str, user: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess:
        """``command`` by /bin/sh in the container, as root or as ``user`` with that user's groups."""
        as_user = ["setpriv", "--reuid", user, "--regid", user, "--init-groups"] if user else []
        return subprocess.run(["nsenter", "--target", str(self.pid1), "--all", *as_user, "/bin/sh", "-c", command],
                              capture_output=True, text=True, env=self.root.ENV, timeout=timeout)

    def ok(self, command: str, user: str | None = None) -> str:
        proc = self.sh(command, user)
        assert proc.returncode == 0, f"{command}: {proc.stdout}{proc.stderr}"
        return proc.stdout

    def json(self, command: str, user: str | None = None) -> Any:
        return json.loads(self.ok(command, user))

    def report(self, command: str, user: str | None = None) -> dict:
        """A report a command prints; its exit code is the verdict's (0 healthy, 1 degraded, 2 fault)."""
        proc = self.sh(command, user)
        assert proc.returncode in (0, 1, 2) and proc.stdout.startswith("{"), proc.stdout + proc.stderr
        return json.loads(proc.stdout)

    def history(self) -> list[dict]:
        """The daemon's stored reports, newest first."""
        return self.json("posdiag history --json")

    def status(self, user: str | None = None) -> dict:
        return self.json("posdiag status --json", user)

    def write(self, path: str, text: str, mode: str = "0644") -> None:
        """A file in the container, written through the shared folder (/mnt inside)."""
        staged = self.root.packages / Path(path).name
        staged.write_text(text)
        self.ok(f"install -D -m {mode} /mnt/{shlex.quote(staged.name)} {shlex.quote(path)}")


# --- a till on a network of its own, pushing to a server, as the boot test and bench use it -----------

TOKEN = "boot-test-token-1f6c"
POS_LOG = "/var/log/pos/transactions.log"
TECHNICIAN, VISITOR = "tech", "visitor"  # in group posdiag, and not
PAYMENT_PORT = 8583

#: chrooted into the root before it boots: the package, the till's files (from /mnt), its people
SETUP = f"""set -e
dpkg -i /mnt/posdiag.deb >/dev/null
install -m 0644 /mnt/posdiag.toml /etc/posdiag/posdiag.toml
install -m 0600 -o posdiag -g posdiag /mnt/token /etc/posdiag/token
install -m 0644 /mnt/push-ca.pem /etc/posdiag/push-ca.pem
install -d -m 0755 /var/log/pos && touch {POS_LOG}
useradd --create-home --groups posdiag {TECHNICIAN}
useradd --create-home {VISITOR}
"""


def configuration(server_url: str, **changes: dict) -> str:
    """The till's /etc/posdiag/posdiag.toml: a payment host behind the router, the POS log, push;
    ``changes`` override keys by section."""
    sections: dict[str, Any] = {
        "terminal": {"id": "lane-07", "site": "store-042"},
        "payment_hosts": [{"name": "acquirer", "host": HOST_ADDR, "port": PAYMENT_PORT, "tls": False}],
        "network": {"ping_count": 3},
        "system": {"max_load_per_cpu": 1000},  # the machine is shared: its load says nothing about the unit
        "txlog": {"path": POS_LOG},
        "server": {"url": server_url, "token_file": "/etc/posdiag/token", "ca_file": "/etc/posdiag/push-ca.pem"},
    }
    for section, keys in changes.items():
        sections[section] = {**sections.get(section, {}), **keys}
    return toml_dumps(sections)


class PushServer:
    """labs.push_server in the terminal's namespace, on the loopback the till shares with it."""

    def __init__(self, lab: Lab, folder: Path) -> None:
        certs = make_certs(folder, "127.0.0.1")
        self.ca = Path(certs["ca"]).read_text()
        cert, key = certs["valid"]
        self.proc = subprocess.Popen(["ip", "netns", "exec", lab.term, sys.executable, "-m", "labs.push_server",
                                      "--cert", cert, "--key", key, "--token", TOKEN], env=child_env(), text=True,
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE)
        ready = self.proc.stdout.readline().split() if self.proc.stdout else []
        if ready[:1] != ["ready"]:
            self.stop()
            raise RuntimeError(f"the push server did not start: {ready}")
        self.url = f"https://127.0.0.1:{ready[1]}"

    def stored(self) -> int:
        """Reports the server has stored."""
        assert self.proc.stdin and self.proc.stdout
        self.proc.stdin.write("count\n")
        self.proc.stdin.flush()
        return int(self.proc.stdout.readline().split()[0])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


@dataclass
class Site:
    lab: Lab
    push: PushServer
    till: BootedTill


@contextmanager
def booted_site(deb: Path, folder: Path) -> Iterator[Site]:
    """The store: terminal ─ router ─ payment host (labs.netlab), no unprivileged ICMP in the terminal's
    namespace (only CAP_NET_RAW sends echoes), a push server on its loopback, and the till booted in it
    with the package ``deb``, up once its boot sweep is stored."""
    need("ip", "nft", "systemd-nspawn", "nsenter", "unshare")
    lower = cached_root(deb, "--boot")
    tag = f"{os.getpid() % 100000}"
    packages = folder / "packages"
    packages.mkdir(parents=True)
    shutil.copy(deb, packages / "posdiag.deb")
    with Lab(tag=f"b{tag}") as lab:
        lab.exec(lab.term, "sysctl", "-qw", "net.ipv4.ping_group_range=1 0")
        lab.peer(lab.host, "tcp", "--bind", HOST_ADDR, "--port", str(PAYMENT_PORT))
        push = PushServer(lab, folder)
        try:
            (packages / "posdiag.toml").write_text(configuration(push.url))
            (packages / "token").write_text(TOKEN + "\n")
            (packages / "push-ca.pem").write_text(push.ca)
            with BootedTill(DebianRoot(lower, folder / "overlay", packages), lab.term, f"posdiag-boot-{tag}") as till:
                till.boot(SETUP)
                # Type=notify: the unit is up once the daemon listens; its boot sweep is stored a moment later.
                if not wait_for(till.history, timeout=60, interval=0.2):
                    raise AssertionError(f"no boot sweep stored: {till.ok('journalctl -u posdiag -o cat --no-pager')}")
                yield Site(lab, push, till)
        finally:
            push.stop()
