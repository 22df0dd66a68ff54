"""The Debian package on a terminal: built by packaging/build-deb, lintian-clean, installed, run,
upgraded over itself and purged without a trace; the hardened unit verified and scored.

Two kinds of till, both disposable:
- A real Debian root (Essential packages plus the package's Depends, made once by
  packaging/test-root with mmdebstrap and cached outside the repository), seen
  through an overlay so that the cached root never changes and the overlay's upper layer is exactly
  what the package left: ``dpkg -i`` and ``posdiag`` run chrooted into it.
- A bare root that dpkg installs into with ``--root`` and ``--force-script-chrootless`` (dpkg's
  supported way to install into a root that is not running, as image builders do; the maintainer
  scripts honour $DPKG_ROOT). Its dpkg database holds the package's dependencies as the host has
  them. The installed command runs at its real path, /usr/bin/posdiag → /opt/posdiag/bin/posdiag,
  in a private mount namespace whose /opt is the root's.

The package is built once per session (the ``deb`` fixture, tests/conftest.py), or taken from
$POSDIAG_DEB when .ci/run has built it already; the roots and their overlay are in ``labs.debian``.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
from pathlib import Path

import pytest
from labs.commands import REPO
from labs.debian import DebianRoot, cached_root, depends_of, need
from posdiag.agent import __version__

UNIT = REPO / "packaging" / "posdiag.service"
MAN = REPO / "packaging" / "posdiag.8"
MAN_ZH = REPO / "packaging" / "posdiag.zh_CN.8"
#: Directories a Debian base system already has (base-files, systemd): the package must leave them.
BASE_DIRS = ("etc/systemd/system", "lib/systemd/system", "opt", "run", "usr/bin", "usr/share/doc",
             "usr/share/lintian/overrides", "usr/share/man/man8", "var/lib/systemd", "var/log", "var/tmp")


class Root:
    """A disposable root: a dpkg database that knows the package's dependencies as the host has them
    installed, the base directories, and the accounts a base system has."""

    def __init__(self, path: Path, deb: Path) -> None:
        self.path = path
        dependencies = depends_of(deb)
        admin = path / "var/lib/dpkg"
        (admin / "info").mkdir(parents=True)
        (admin / "updates").mkdir()
        (admin / "available").touch()
        status = subprocess.run(["dpkg-query", "-s", *dependencies, "base-files"], capture_output=True,
                                text=True, check=True).stdout
        (admin / "status").write_text(status)
        names = subprocess.run(["dpkg-query", "-f", "${binary:Package}\\n", "-W", *dependencies],
                               capture_output=True, text=True, check=True).stdout.split()
        for name in names:
            (admin / "info" / f"{name}.list").touch()
        for d in BASE_DIRS:
            (path / d).mkdir(parents=True, exist_ok=True)
        listed = sorted({"/" + "/".join(Path(d).parts[:i]) for d in BASE_DIRS for i in range(1, len(Path(d).parts) + 1)})
        (admin / "info" / "base-files.list").write_text("/.\n" + "\n".join(listed) + "\n")
        etc = path / "etc"
        etc.joinpath("passwd").write_text("root:x:0:0:root:/root:/bin/bash\n"
                                          "nobody:x:65534:65534:nobody:/nonexistent:/usr/sbin/nologin\n")
        etc.joinpath("group").write_text("root:x:0:\ndialout:x:20:\nnogroup:x:65534:\n")
        etc.joinpath("shadow").write_text("root:*:20000:0:99999:7:::\nnobody:*:20000:0:99999:7:::\n")
        etc.joinpath("gshadow").write_text("root:*::\ndialout:*::\nnogroup:*::\n")

    def dpkg(self, *args: str) -> subprocess.CompletedProcess:
        proc = subprocess.run(["dpkg", f"--root={self.path}", "--force-script-chrootless", *args],
                              capture_output=True, text=True, timeout=300)
        assert proc.returncode == 0, proc.stdout + proc.stderr
        assert "warning" not in proc.stderr, proc.stderr
        return proc

    def run(self, *argv: str) -> subprocess.CompletedProcess:
        """Run a command with this root's /opt mounted at /opt, in a mount namespace of its own."""
        script = ('mount -t tmpfs posdiag-test /opt && mkdir /opt/posdiag && '
                  'mount --bind "$1/opt/posdiag" /opt/posdiag && shift && exec "$@"')
        env = {"PATH": "/usr/sbin:/usr/bin:/sbin:/bin", "LANG": "C.UTF-8"}
        env.update({k: v for k, v in os.environ.items() if k.startswith("POSDIAG_")})
        return subprocess.run(["unshare", "--mount", "--propagation", "private", "sh", "-c", script, "sh",
                               str(self.path), *argv], capture_output=True, text=True, env=env, timeout=120)

    def posdiag(self, *args: str) -> subprocess.CompletedProcess:
        """The installed command: this root's /usr/bin/posdiag, a symlink into /opt/posdiag."""
        return self.run(str(self.path / "usr/bin/posdiag"), *args)

    def files(self) -> set[str]:
        return {str(p.relative_to(self.path)) for p in self.path.rglob("*")}

    def account(self, name: str) -> dict[str, str]:
        """The lines naming ``name`` in each account database of this root."""
        return {db: line for db in ("passwd", "group", "shadow", "gshadow")
                for line in (self.path / "etc" / db).read_text().splitlines() if name in line.split(":")}


@pytest.fixture
def till(deb: Path, tmp_path: Path) -> Root:
    need("dpkg", "dpkg-query", "useradd", "unshare", "deb-systemd-helper")
    return Root(tmp_path / "root", deb)


def upgrade_of(deb: Path, tmp_path: Path) -> Path:
    """The same package with a higher Debian revision: what a fleet roll-out of a rebuild installs."""
    tree = tmp_path / "upgrade"
    subprocess.run(["dpkg-deb", "-R", str(deb), str(tree)], check=True)
    control = tree / "DEBIAN" / "control"
    control.write_text(re.sub(r"^Version: (.*)-(\d+)$", lambda m: f"Version: {m[1]}-{int(m[2]) + 1}",
                              control.read_text(), flags=re.M))
    out = tmp_path / "upgrade.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(tree), str(out)], check=True, capture_output=True)
    return out


@pytest.fixture
def debian_root(deb: Path, tmp_path: Path) -> DebianRoot:
    """$POSDIAG_TEST_ROOT, or the root packaging/test-root made for this package before."""
    need("unshare", "chroot")
    (tmp_path / "packages").mkdir()
    return DebianRoot(cached_root(deb), tmp_path / "overlay", tmp_path / "packages")


@pytest.mark.root
def test_debian_root_installs_runs_upgrades_and_purges_without_a_trace(deb, debian_root, tmp_path):
    till = debian_root
    shutil.copy(deb, till.packages / "posdiag.deb")
    shutil.copy(upgrade_of(deb, tmp_path), till.packages / "posdiag-upgrade.deb")

    proc = till.sh("dpkg -i /mnt/posdiag.deb")
    assert proc.returncode == 0 and "warning" not in proc.stderr, proc.stdout + proc.stderr
    assert "dialout" in till.ok("id -nG posdiag").split()
    assert till.ok("stat -c %U:%G:%a /var/lib/posdiag").strip() == "posdiag:posdiag:750"
    assert till.ok("readlink /etc/systemd/system/multi-user.target.wants/posdiag.service").strip() \
        == "/lib/systemd/system/posdiag.service"
    # The default lookup finds the package's configuration; the daemon's own user can run it all.
    assert till.ok("posdiag config check").startswith("/etc/posdiag/posdiag.toml: OK")
    proc = till.sh("setpriv --reuid posdiag --regid posdiag --init-groups posdiag diagnose --json")
    assert proc.returncode in (0, 1, 2), proc.stderr
    assert json.loads(proc.stdout)["agent_version"] == __version__

    till.ok("echo '# edited by the admin' >> /etc/posdiag/posdiag.toml && "
            "echo reports > /var/lib/posdiag/history.sqlite3 && chown posdiag: /var/lib/posdiag/history.sqlite3")
    uid = till.ok("id -u posdiag")
    proc = till.sh("dpkg -i /mnt/posdiag-upgrade.deb")
    assert proc.returncode == 0 and " over (" in proc.stdout, proc.stdout + proc.stderr
    assert till.ok("tail -n 1 /etc/posdiag/posdiag.toml").strip() == "# edited by the admin"
    assert till.ok("stat -c %U /var/lib/posdiag/history.sqlite3; cat /var/lib/posdiag/history.sqlite3").split() \
        == ["posdiag", "reports"]
    assert till.ok("id -u posdiag") == uid

    till.ok("dpkg --purge posdiag")
    assert till.sh("getent passwd posdiag; getent group posdiag").stdout == ""
    assert till.left_behind() == []


def unit_sandbox(capabilities: list[str]) -> tuple[str, str]:
    """The unit's confinement, so far as it can be had without systemd: (mounts to make before the
    chroot, the command prefix in it). Its user and groups, only ``capabilities`` (ambient, as
    AmbientCapabilities= gives them), no new privileges, everything read-only but ReadWritePaths=,
    StateDirectory= and RuntimeDirectory= (ProtectSystem=strict), the host's /dev/kmsg. The seccomp
    filter, the device cgroup and the namespaces are systemd's own and are not mimicked."""
    unit = unit_settings()
    user, group = unit["User"][0], unit["Group"][0]
    caps = "".join(",+" + c.lower().removeprefix("cap_") for c in capabilities)
    writable = " ".join([*unit["ReadWritePaths"], "/var/lib/posdiag", "/run/posdiag"])
    mounts = ('touch "$4/dev/kmsg" && mount --bind /dev/kmsg "$4/dev/kmsg" && mount -t tmpfs tmpfs "$4/run" && '
              f'chroot "$4" install -d -m 0750 -o {user} -g {group} /run/posdiag && '
              f'for d in {writable}; do mount --bind "$4$d" "$4$d"; done && '
              'mount -o remount,bind,ro "$4/run" && mount -o remount,bind,ro "$4"')
    prefix = (f"exec setpriv --reuid {user} --regid {group} --groups {','.join(unit['SupplementaryGroups'])} "
              f"--inh-caps -all{caps} --ambient-caps -all{caps} --bounding-set -all{caps} --no-new-privs")
    return mounts, prefix


def as_the_unit(till: DebianRoot, config: str, capabilities: list[str]) -> dict:
    """``posdiag diagnose`` as the unit would run it."""
    mounts, prefix = unit_sandbox(capabilities)
    proc = till.sh(f"{prefix} posdiag diagnose --json --config {config}", before_chroot=mounts)
    assert proc.returncode in (0, 1, 2) and proc.stdout.startswith("{"), proc.stderr
    return json.loads(proc.stdout)


@pytest.mark.root
def test_daemon_starts_and_keeps_history_as_the_unit_runs_it(deb, debian_root):
    """ExecStart= in the unit's confinement: READY, a first sweep, its report in the history, a clean stop."""
    till = debian_root
    shutil.copy(deb, till.packages / "posdiag.deb")
    till.ok("dpkg -i /mnt/posdiag.deb")
    exec_start = unit_settings()["ExecStart"][0]
    mounts, prefix = unit_sandbox(unit_settings()["AmbientCapabilities"][0].split())
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
        name = f"posdiag-test-{os.getpid()}"
        notify.bind("\0" + name)
        notify.settimeout(60)
        daemon = subprocess.Popen(till.argv(f"{prefix} {exec_start}", mounts), env={**till.ENV, "NOTIFY_SOCKET": "@" + name},
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        try:
            messages = [notify.recv(4096).decode()]
            while not any(m.startswith("STATUS=") for m in messages):
                messages.append(notify.recv(4096).decode())
        finally:
            daemon.terminate()
            out, err = daemon.communicate(timeout=60)
    assert any("READY=1" in m for m in messages), messages
    assert daemon.returncode == 0, err
    history = json.loads(till.ok("posdiag history --json"))
    assert len(history) >= 1 and history[0]["trigger"] == "boot"
    assert till.ok("stat -c %U /var/lib/posdiag/history.sqlite3").strip() == "posdiag"


@pytest.mark.root
def test_the_units_privileges_are_what_icmp_the_kernel_log_and_the_disk_probe_need(deb, debian_root):
    """With the unit's two capabilities ICMP and the kernel log work; without them they do not (so
    neither is there for nothing); and ProtectSystem's read-only / is not mistaken for a failing disk."""
    from labs.helpers import codes_of, probe_of

    till = debian_root
    shutil.copy(deb, till.packages / "posdiag.deb")
    till.ok("dpkg -i /mnt/posdiag.deb")
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        (till.packages / "unit.toml").write_text(
            "[[payment_hosts]]\nname = 'loopback'\nhost = '127.0.0.1'\n"
            f"port = {listener.getsockname()[1]}\ntls = false\n"
            "[network]\ngateway = 'off'\nping_count = 2\n"
            "[reader]\nkind = 'usb'\nusb = 'dead:beef'\n"
            "[disk]\npaths = ['/', '/var/tmp']\nmin_free_mb = 1\n")
        (till.packages / "unit.toml").chmod(0o644)
        full = as_the_unit(till, "/mnt/unit.toml", unit_settings()["AmbientCapabilities"][0].split())
        bare = as_the_unit(till, "/mnt/unit.toml", [])

    assert "path.icmp_unavailable" not in codes_of(full, "network.path")
    assert probe_of(full, "network.path")["summary"].startswith("icmp:")  # measured with ICMP echo, not TCP
    assert "path.icmp_unavailable" in codes_of(bare, "network.path")
    assert "reader.kernel_log_denied" not in codes_of(full, "reader.events")
    assert "reader.kernel_log_denied" in codes_of(bare, "reader.events")
    disk = probe_of(full, "disk")
    assert [(f["code"], f["data"]["path"]) for f in disk["findings"]] == [("disk.write_not_permitted", "/")]
    assert "write_fsync_ms[/var/tmp]" in disk["metrics"]


def test_version_of_the_package_is_the_agents(deb):
    fields = subprocess.run(["dpkg-deb", "-f", str(deb), "Package", "Version", "Architecture"],
                            capture_output=True, text=True, check=True).stdout
    assert f"Version: {__version__}-1" in fields
    arch = subprocess.run(["dpkg", "--print-architecture"], capture_output=True, text=True).stdout.strip()
    assert deb.name == f"posdiag_{__version__}-1_{arch}.deb"


def test_package_is_lintian_clean(deb):
    need("lintian")
    proc = subprocess.run(["lintian", "--no-tag-display-limit", str(deb)], capture_output=True, text=True, timeout=300)
    tags = [line for line in proc.stdout.splitlines() if line[:2] in ("E:", "W:")]
    assert tags == [], "\n".join(tags)


@pytest.mark.root
def test_installed_package_diagnoses_from_its_own_environment(deb, till):
    till.dpkg("-i", str(deb))

    account = till.account("posdiag")
    assert account["passwd"].endswith(":/var/lib/posdiag:/usr/sbin/nologin")
    uid, gid = (int(v) for v in account["passwd"].split(":")[2:4])
    assert uid < 1000, "a system account"
    assert "posdiag" in next(line for line in (till.path / "etc/group").read_text().splitlines()
                             if line.startswith("dialout:")).split(":")[3].split(",")
    state = (till.path / "var/lib/posdiag").stat()
    assert (state.st_uid, state.st_gid, state.st_mode & 0o777) == (uid, gid, 0o750)
    wants = till.path / "etc/systemd/system/multi-user.target.wants/posdiag.service"
    assert os.readlink(wants) == "/lib/systemd/system/posdiag.service", "the unit is enabled"
    assert (till.path / "etc/posdiag/posdiag.toml").read_bytes() == (REPO / "config/posdiag.toml").read_bytes()

    where = till.run("/opt/posdiag/bin/python", "-c", "import posdiag.agent, psutil, sys; "
                     "print(posdiag.agent.__file__, psutil.__file__, sys.base_prefix)")
    assert where.returncode == 0, where.stderr
    agent_file, psutil_file, base = where.stdout.split()
    assert agent_file.startswith("/opt/posdiag/lib/") and psutil_file.startswith("/opt/posdiag/lib/")
    assert base == "/usr", "Debian's python3, not the one that runs the tests"

    proc = till.posdiag("diagnose", "--json", "--config", str(till.path / "etc/posdiag/posdiag.toml"))
    assert proc.returncode in (0, 1, 2), proc.stderr
    report = json.loads(proc.stdout)
    assert report["agent_version"] == __version__
    assert {p["name"]: p["status"] for p in report["probes"]}["memory"] in ("ok", "warn", "fail")
    # The package carries the compiled Chinese catalogue (not its source) and speaks it.
    locale = till.run("/opt/posdiag/bin/python", "-c", "import posdiag.core.i18n as i; print(i.catalogue_path('zh_CN'))")
    mo = Path(locale.stdout.strip())
    assert mo.name == "posdiag.mo" and (till.path / mo.relative_to("/")).is_file(), locale.stderr
    assert not list((till.path / "opt/posdiag").rglob("*.po")), "the catalogue's source has no place on a till"
    chinese = till.posdiag("diagnose", "--lang", "zh_CN", "--config", str(till.path / "etc/posdiag/posdiag.toml"))
    assert "结论：" in chinese.stdout and "处理步骤：" in chinese.stdout, chinese.stdout + chinese.stderr
    # posdiag(8) in Chinese where man looks for a zh_CN reader, readable without a warning
    need("man")
    page = subprocess.run(["man", "--warnings", "-l", "-Tutf8", str(till.path / "usr/share/man/zh_CN/man8/posdiag.8.gz")],
                          capture_output=True, text=True, timeout=60, env={**os.environ, "MANWIDTH": "80", "LANG": "C.UTF-8"})
    assert page.returncode == 0 and page.stderr == "", page.stderr
    text = re.sub(".\b", "", page.stdout)  # without man's overstrike for bold
    assert "名称" in text and "posdiag watch" in text and "退出状态" in text


@pytest.mark.root
def test_upgrade_over_itself_keeps_config_state_and_account(deb, till, tmp_path):
    till.dpkg("-i", str(deb))
    conf = till.path / "etc/posdiag/posdiag.toml"
    edited = conf.read_text().replace("interval_s = 300", "interval_s = 120") + "# edited by the admin\n"
    conf.write_text(edited)
    history = till.path / "var/lib/posdiag/history.sqlite3"
    history.write_bytes(b"reports of this till")
    account = till.account("posdiag")

    newer = upgrade_of(deb, tmp_path)
    proc = till.dpkg("-i", str(newer))
    assert "Unpacking posdiag" in proc.stdout and " over (" in proc.stdout

    assert conf.read_text() == edited
    assert history.read_bytes() == b"reports of this till"
    assert till.account("posdiag") == account, "the same uid, not a second account"
    assert not any(p.name == "posdiag.toml.dpkg-new" for p in conf.parent.iterdir())
    assert till.posdiag("--version").stdout.strip() == f"posdiag {__version__}"


@pytest.mark.root
def test_purge_leaves_nothing_behind(deb, till):
    before = till.files()
    till.dpkg("-i", str(deb))
    assert till.posdiag("diagnose", "--config", str(till.path / "etc/posdiag/posdiag.toml"),
                    "--only", "memory").returncode in (0, 1, 2)
    (till.path / "etc/posdiag/token").write_text("secret")  # the admin's own files go too
    (till.path / "var/lib/posdiag/history.sqlite3").write_bytes(b"reports")
    (till.path / "var/log/posdiag").mkdir()

    till.dpkg("--purge", "posdiag")

    # dpkg's own bookkeeping, and the one-generation backups (passwd- ...) that useradd/userdel keep.
    left = {f for f in till.files() - before
            if not f.startswith("var/lib/dpkg/") and not re.fullmatch(r"etc/(passwd|group|shadow|gshadow)-", f)}
    assert left == set()
    assert till.account("posdiag") == {}
    assert "posdiag" not in (till.path / "etc/group").read_text()
    assert not any("posdiag" in f for f in till.files())
    assert not (till.path / "var/lib/dpkg/info/posdiag.list").exists()


@pytest.mark.root
def test_installed_unit_verifies(deb, till):
    """systemd-analyze verify needs the unit's programs and man page: those of the installed tree."""
    need("systemd-analyze", "man")
    till.dpkg("-i", str(deb))
    unit = till.path / "verify" / "posdiag.service"
    unit.parent.mkdir()
    text = (till.path / "lib/systemd/system/posdiag.service").read_text()
    unit.write_text(text.replace("ExecStart=/usr/bin/posdiag", f"ExecStart={till.path}/opt/posdiag/bin/posdiag"))
    proc = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True, timeout=60,
                          env={**os.environ, "MANPATH": str(till.path / "usr/share/man")})
    assert proc.returncode == 0 and proc.stderr.strip() == "", proc.stderr


def test_unit_exposure_is_below_3():
    need("systemd-analyze")
    proc = subprocess.run(["systemd-analyze", "security", "--offline=yes", "--no-pager", str(UNIT)],
                          capture_output=True, text=True, timeout=60)
    exposure = re.search(r"Overall exposure level for posdiag\.service: (\d+\.\d+)", proc.stdout)
    assert exposure, proc.stdout + proc.stderr
    assert float(exposure[1]) < 3.0, proc.stdout


def unit_settings() -> dict[str, list[str]]:
    settings: dict[str, list[str]] = {}
    for line in UNIT.read_text().splitlines():
        if "=" in line and not line.startswith("#"):
            key, _, value = line.partition("=")
            settings.setdefault(key, []).append(value)
    return settings


def test_unit_leaves_the_probes_what_they_need():
    unit = unit_settings()
    assert unit["AmbientCapabilities"] == unit["CapabilityBoundingSet"] == ["CAP_NET_RAW CAP_SYSLOG"]  # ICMP, /dev/kmsg
    assert unit["SupplementaryGroups"] == ["dialout"]  # serial readers
    assert {"char-ttyS rw", "char-ttyUSB rw", "char-ttyACM rw", "/dev/kmsg r"} <= set(unit["DeviceAllow"])
    assert unit["ProtectKernelLogs"] == ["no"] and unit["ProtectProc"] == ["default"] and unit["ProcSubset"] == ["all"]
    assert "AF_NETLINK" in unit["RestrictAddressFamilies"][0]  # psutil's getifaddrs()
    assert "adjtimex" in unit["SystemCallFilter"][0].split()  # the clock probe's sync state
    assert "/var/tmp" in unit["ReadWritePaths"][0].split()  # a default [disk] path's write test
    assert unit["User"] == ["posdiag"] and unit["Type"] == ["notify"] and unit["Restart"] == ["on-failure"]


@pytest.mark.parametrize("man", [MAN, MAN_ZH], ids=["en", "zh_CN"])
def test_man_page_is_clean_and_names_every_command(man):
    need("groff")
    proc = subprocess.run(["groff", "-K", "utf8", "-Tutf8", "-ww", "-man", "-z", str(man)], capture_output=True,
                          text=True, timeout=60)
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    from posdiag.agent.cli import build_parser

    page = man.read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    for command in sub.choices:
        assert re.search(rf"^\.B {command}\b", page, flags=re.M), f"posdiag {command} is not in posdiag(8)"
    for code in range(4):
        assert re.search(rf"^\.B {code}$", page, flags=re.M), f"exit status {code} is not in posdiag(8)"

