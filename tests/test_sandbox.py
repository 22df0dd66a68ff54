"""A POS log or reader that a service sandbox hides is reported as hidden, with the drop-in that opens it,
and never as missing — told by the marks systemd's sandbox leaves, rebuilt here without systemd: the
mounts of ProtectHome= and PrivateTmp= in a private mount namespace, DevicePolicy= as a real device
cgroup. (tests/test_boot.py shows the same under the real unit, in a booted Debian.)
"""

from __future__ import annotations

import errno
import os
import subprocess
from pathlib import Path

import pytest
from labs.commands import IN_CI, diagnose_in_namespace
from labs.helpers import codes_of, probe_of, top_cause
from posdiag.core.settings import ReaderSettings, Settings
from posdiag.probes._mounts import Mount, mount_of, read_mounts
from posdiag.probes._sandbox import hidden_path, refused_device
from posdiag.probes.base import Observation
from posdiag.probes.reader.serial_port import SerialProbe

#: systemd's inaccessible folder as ProtectHome=yes mounts it over /home (under /run, a tmpfs of its own)
INACCESSIBLE = "systemd/inaccessible/dir"
#: the unit's own /tmp as PrivateTmp=yes mounts it over /tmp and /var/tmp
PRIVATE_TMP = "systemd-private-4d2e3f14e53149cca51d1f2f3dc7a662-posdiag.service-LW5wP2/tmp"


def finding(report: dict, probe: str, code: str) -> dict:
    return next(f for f in probe_of(report, probe)["findings"] if f["code"] == code)


# The till's own /home (or /var/tmp) with the POS log in it: a tmpfs of this namespace, not the machine's.
TILL_FOLDER = 'mount -t tmpfs till "$1" && mkdir "$1/pos" && echo "2026-12-06 10:00:00 code=0" > "$1/pos/tx.log"'
#: systemd's mount over it: an empty folder of a tmpfs of its own ($2), bound over $1
SANDBOX_MOUNT = 'mount -t tmpfs run "$2" && mkdir -p "$2/$3" && chmod 000 "$2/$3" && mount --bind "$2/$3" "$1"'


@pytest.mark.root
def test_a_log_under_home_hidden_by_protecthome_names_the_dropin_that_opens_it(config_file, tmp_path):
    config = config_file(txlog={"path": "/home/pos/tx.log"})
    (tmp_path / "run").mkdir()

    seen = diagnose_in_namespace(TILL_FOLDER, "/home", config=config, only="txlog")
    hidden = diagnose_in_namespace(f"{TILL_FOLDER} && {SANDBOX_MOUNT}", "/home", str(tmp_path / "run"), INACCESSIBLE,
                                   config=config, only="txlog")

    assert codes_of(seen, "txlog") == [], "the till's log is read where nothing hides it"
    assert probe_of(seen, "txlog")["metrics"]["lines_read"] == 1
    assert codes_of(hidden, "txlog") == ["txlog.hidden_by_sandbox"]
    found = finding(hidden, "txlog", "txlog.hidden_by_sandbox")
    # The log's folder, so that a rotated log (a new file in it) is seen too; ProtectHome=yes cannot hold a bind.
    assert found["data"]["dropin"] == ["[Service]", "ProtectHome=tmpfs", "BindReadOnlyPaths=/home/pos"]
    assert found["data"]["setting"] == "ProtectHome" and found["data"]["unit"] == "posdiag.service"
    assert "systemctl edit posdiag" in found["message"] and "ProtectHome=tmpfs" in found["message"]
    assert top_cause(hidden) == "config.invalid"
    assert any("systemctl edit posdiag" in step for step in hidden["diagnosis"]["causes"][0]["remediation"])


@pytest.mark.root
def test_a_log_under_var_tmp_hidden_by_privatetmp_names_the_unit_from_its_private_folder(config_file, tmp_path):
    config = config_file(txlog={"path": "/var/tmp/pos/tx.log"})
    (tmp_path / "run").mkdir()
    private = PRIVATE_TMP.replace("posdiag.service", "pos-watch.service")

    hidden = diagnose_in_namespace(f"{TILL_FOLDER} && {SANDBOX_MOUNT}", "/var/tmp", str(tmp_path / "run"), private,
                                   config=config, only="txlog")

    found = finding(hidden, "txlog", "txlog.hidden_by_sandbox")
    assert found["data"]["setting"] == "PrivateTmp"
    assert found["data"]["unit"] == "pos-watch.service", "the unit is the one whose private /tmp this is"
    assert found["data"]["dropin"] == ["[Service]", "BindReadOnlyPaths=/var/tmp/pos"]
    assert "systemctl edit pos-watch" in found["message"]


@pytest.mark.root
def test_a_reader_port_under_a_private_tmp_names_a_writable_bind(config_file, tmp_path):
    """A reader reached through a pty link a bridge keeps under /var/tmp: the port needs a bind that can be
    written to, not a read-only one."""
    config = config_file(reader={"kind": "serial", "port": "/var/tmp/pos/ttyV0", "sysfs_root": str(tmp_path / "none")})
    (tmp_path / "run").mkdir()
    hidden = diagnose_in_namespace(f"{TILL_FOLDER} && {SANDBOX_MOUNT}", "/var/tmp", str(tmp_path / "run"), PRIVATE_TMP,
                                   config=config, only="reader.serial")
    found = finding(hidden, "reader.serial", "reader.hidden_by_sandbox")
    assert found["data"]["setting"] == "PrivateTmp" and found["data"]["dropin"] == ["[Service]", "BindPaths=/var/tmp/pos"]


@pytest.mark.root
def test_a_log_that_is_not_there_without_a_sandbox_stays_missing(config_file):
    config = config_file(txlog={"path": "/home/pos/tx.log"})
    report = diagnose_in_namespace('mount -t tmpfs till "$1"', "/home", config=config, only="txlog")
    assert codes_of(report, "txlog") == ["txlog.missing"]


def devices_cgroup(name: str) -> Path:
    """A cgroup of the v1 device controller under this process's own, for DevicePolicy's refusals."""
    own = next((line.split(":", 2)[2].strip() for line in Path("/proc/self/cgroup").read_text().splitlines()
                if line.split(":")[1] == "devices"), None)
    if own is None or not Path("/sys/fs/cgroup/devices").is_dir():
        message = "no cgroup v1 device controller here (DevicePolicy= is enforced with BPF on cgroup v2)"
        pytest.fail(message) if IN_CI else pytest.skip(message)
    path = Path("/sys/fs/cgroup/devices") / own.lstrip("/") / name
    path.mkdir()
    return path


@pytest.mark.root
def test_a_reader_port_the_device_policy_refuses_names_the_device_allow_that_opens_it(config_file, tmp_path):
    # A USB serial port (major 188): its driver is not loaded here, so only the device cgroup tells the answers apart.
    port = tmp_path / "ttyUSB0"
    subprocess.run(["mknod", str(port), "c", "188", "0"], check=True)
    config = config_file(reader={"kind": "serial", "port": str(port), "sysfs_root": str(tmp_path / "no-sysfs")})
    cgroup = devices_cgroup(f"posdiag-test-{os.getpid()}")
    try:
        (cgroup / "devices.deny").write_text("c 188:* rwm")  # what DevicePolicy=closed does to a port it does not list
        allowed = diagnose_in_namespace("true", config=config, only="reader.serial")
        refused = diagnose_in_namespace('echo $$ > "$1/cgroup.procs"', str(cgroup), config=config, only="reader.serial")
    finally:
        cgroup.rmdir()

    assert codes_of(allowed, "reader.serial") == ["reader.port_missing"], "no driver: the port vanishes when opened"
    assert codes_of(refused, "reader.serial") == ["reader.hidden_by_sandbox"]
    found = finding(refused, "reader.serial", "reader.hidden_by_sandbox")
    assert found["data"]["setting"] == "DevicePolicy"
    assert found["data"]["dropin"] == ["[Service]", f"DeviceAllow={port} rw"]
    assert top_cause(refused) == "config.invalid"


# --- the mount table, read as the kernel walks it (pure logic on a written mountinfo) ---------------

MOUNTINFO = """\
20 1 254:0 / / rw - ext4 /dev/vda rw
30 20 254:1 / /home/pos rw - ext4 /dev/vdb rw
40 20 0:43 /systemd/inaccessible/dir /home ro - tmpfs tmpfs rw
50 20 0:40 / /tmp rw - tmpfs tmpfs rw
51 50 0:40 /systemd-private-0abc-posdiag.service-Ab12Cd/tmp /tmp rw - tmpfs tmpfs rw
60 20 0:50 / /srv/my\\040pos rw - tmpfs tmpfs ro
"""


@pytest.fixture
def mountinfo(tmp_path: Path) -> str:
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    return str(path)


def test_a_mount_shadowed_by_a_later_one_on_its_parent_is_not_where_a_path_ends(mountinfo):
    table = read_mounts(mountinfo)
    assert mount_of("/home/pos/tx.log", table).id == 40, "the host's /home/pos lies under the sandbox's /home"
    assert mount_of("/tmp/x", table).id == 51, "the topmost of two mounts stacked on /tmp"
    assert mount_of("/srv/my pos/tx.log", table).id == 60, "mountinfo's octal escapes are read back"
    assert mount_of("/var/log/pos.log", table).id == 20


def test_a_mountinfo_line_is_read_around_its_optional_fields_and_a_cut_or_garbled_line_is_skipped(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text("36 35 98:0 /srv/pos\\011x /mnt/my\\040pos rw,noatime shared:1 master:2 - ext4 /dev/sda2 "
                    "rw,errors=remount-ro\n"
                    "37 35 98:1 / /cut rw - ext4 /dev/sdb1\n"  # no superblock options: cut short
                    "38 35 98:2 / /garbled rw ext4 /dev/sdc1 rw\n")  # no separator
    assert read_mounts(str(path)) == [Mount(36, 35, "/srv/pos\tx", "/mnt/my pos", "ext4", ("rw", "errors=remount-ro"),
                                            "98:0", "/dev/sda2")]


def test_a_file_right_in_tmp_is_bound_alone_not_the_whole_folder(mountinfo, tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/system.slice/posdiag.service\n")
    assert hidden_path("/tmp/pos.log", mountinfo=mountinfo, cgroup=str(cgroup)).lines == ("BindReadOnlyPaths=/tmp/pos.log",)
    assert hidden_path("/tmp/pos/ttyV0", device=True, mountinfo=mountinfo).lines == ("BindPaths=/tmp/pos",)
    assert hidden_path("/home/tx.log", mountinfo=mountinfo).lines == ("ProtectHome=tmpfs", "BindReadOnlyPaths=/home/tx.log")
    assert hidden_path("/srv/my pos/tx.log", mountinfo=mountinfo) is None, "a plain tmpfs hides nothing"


def test_a_plain_tmpfs_on_tmp_is_no_sandbox(tmp_path):
    """/tmp as many systems mount it, a tmpfs of their own: what is not there is missing, not hidden."""
    path = tmp_path / "mountinfo"
    path.write_text("20 1 254:0 / / rw - ext4 /dev/vda rw\n50 20 0:40 / /tmp rw - tmpfs tmpfs rw\n")
    assert hidden_path("/tmp/pos/tx.log", mountinfo=str(path)) is None


@pytest.mark.parametrize(("point", "root", "setting"), [
    ("/home", "/systemd/inaccessible/dir", "ProtectHome"), ("/root", "/systemd/inaccessible/dir", "ProtectHome"),
    ("/run/user", "/systemd/inaccessible/dir", "ProtectHome"),
    ("/tmp", "/systemd-private-0abc-posdiag.service-Ab12Cd/tmp", "PrivateTmp"),
    ("/var/tmp", "/systemd-private-0abc-posdiag.service-Ab12Cd/tmp", "PrivateTmp"),
    ("/srv", "/systemd/inaccessible/dir", None), ("/home", "/systemd-private-0abc-posdiag.service-Ab12Cd/tmp", None)],
    ids=["home", "root", "run-user", "tmp", "var-tmp", "another-folder-made-inaccessible", "a-private-tmp-on-home"])
def test_each_folder_protecthome_and_privatetmp_cover_is_said_hidden_by_its_setting(tmp_path, point, root, setting):
    path = tmp_path / "mountinfo"
    path.write_text(f"20 1 254:0 / / rw - ext4 /dev/vda rw\n40 20 0:43 {root} {point} ro - tmpfs tmpfs rw\n")
    hidden = hidden_path(f"{point}/pos/tx.log", mountinfo=str(path))
    assert (hidden.setting if hidden else None) == setting


@pytest.mark.parametrize("folder", ["/home", "/root", "/run/user"])
def test_each_folder_protecthome_covers_is_read_as_hidden_where_the_inaccessible_folder_sits_on_it(tmp_path, folder):
    path = tmp_path / "mountinfo"
    path.write_text(f"20 1 254:0 / / rw - ext4 /dev/vda rw\n40 20 0:43 /systemd/inaccessible/dir {folder} ro - tmpfs tmpfs rw\n")
    hidden = hidden_path(f"{folder}/pos/tx.log", mountinfo=str(path), cgroup=str(tmp_path / "no-cgroup"))
    assert hidden is not None and hidden.setting == "ProtectHome"
    assert hidden.lines == ("ProtectHome=tmpfs", f"BindReadOnlyPaths={folder}/pos") and hidden.unit == "posdiag.service"


def test_a_plain_tmpfs_on_home_is_no_sandbox(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text("20 1 254:0 / / rw - ext4 /dev/vda rw\n40 20 0:43 / /home rw - tmpfs tmpfs rw\n")
    assert hidden_path("/home/pos/tx.log", mountinfo=str(path)) is None


def test_an_inaccessible_folder_elsewhere_than_home_hides_nothing(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text("20 1 254:0 / / rw - ext4 /dev/vda rw\n40 20 0:43 /systemd/inaccessible/dir /srv ro - tmpfs tmpfs rw\n")
    assert hidden_path("/srv/pos/tx.log", mountinfo=str(path)) is None


def _error(number: int) -> OSError:
    return OSError(number, os.strerror(number))


def test_only_eperm_on_a_device_node_is_the_device_policys_refusal(tmp_path):
    cgroup = tmp_path / "cgroup"
    cgroup.write_text("0::/system.slice/pos-diag.service\n")
    refused = refused_device("/dev/null", _error(errno.EPERM), cgroup=str(cgroup))
    assert refused is not None and refused.setting == "DevicePolicy" and refused.unit == "pos-diag.service"
    assert refused.lines == ("DeviceAllow=/dev/null rw",)
    assert refused_device("/dev/null", _error(errno.EACCES)) is None, "file permissions answer EACCES"
    plain = tmp_path / "ttyV0"
    plain.write_text("")
    assert refused_device(str(plain), _error(errno.EPERM)) is None, "not a device node"
    assert refused_device(str(tmp_path / "gone"), _error(errno.EPERM)) is None


@pytest.mark.parametrize(("number", "text", "code"), [
    (errno.EPERM, "could not open port", "reader.hidden_by_sandbox"),
    (errno.EACCES, "could not open port", "reader.permission_denied"),
    (None, "[Errno 13] Permission denied: '/dev/null'", "reader.permission_denied"),
    (errno.EBUSY, "could not open port", "reader.port_locked"),
    (errno.EAGAIN, "could not open port", "reader.port_locked"),
    (None, "Could not exclusively lock port /dev/null", "reader.port_locked"),
    (errno.ENXIO, "could not open port", "reader.port_missing"),
    (errno.EIO, "could not open port", "reader.open_failed"),
], ids=["eperm", "eacces", "permission-text", "ebusy", "eagain", "lock-text", "enxio", "eio"])
def test_a_port_that_will_not_open_is_told_by_its_error(number, text, code):
    """The device policy's EPERM, file permissions' EACCES, another program's lock, a vanished device: each its
    own answer, told by the error number or, where pyserial gives none, by its words."""
    error = OSError(number, text) if number else OSError(text)
    obs = Observation()
    SerialProbe(Settings(reader=ReaderSettings(kind="serial", port="/dev/null"))).report_open_error(obs, "/dev/null", error)
    assert [f.code for f in obs.findings] == [code]
