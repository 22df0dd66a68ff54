"""The field guide's remaining causes and the risks ahead (issue #22): kernel crashes written to the real
/dev/kmsg (cleared after), crash records and radio files in the kernel's formats under a test root, I/O
errors on a loop-mounted ext4 disk, a weak signal beside real loss in namespaces, a loopback TLS host whose
certificate expires in three days and a filesystem filling at a steady rate across stored sweeps."""

from __future__ import annotations

import datetime
import shutil
import socket
import ssl
import struct
import subprocess
import threading
import time
import uuid
from contextlib import ExitStack
from pathlib import Path

from harness import Setup, risk_ahead, scenario
from labs import kernel
from labs.helpers import fill_filesystem
from labs.netlab import GATEWAY, Lab
from scenarios_network import build_lab

OOPS = ("BUG: kernel NULL pointer dereference, address: 0000000000000008", "Oops: 0002 [#1] PREEMPT SMP NOPTI")
KMSG = {"kernel_log": "/dev/kmsg"}


def _kernel(stack: ExitStack, *lines: str) -> None:
    kernel.clear()
    kernel.write(*lines)
    stack.callback(kernel.clear)


@scenario("kernel-oops", "system.crashed", group="field", needs_root=True)
def kernel_oops(tmp: Path, stack: ExitStack) -> Setup:
    _kernel(stack, *OOPS)
    return Setup({"system": KMSG})


@scenario("pos-oom-killed", "system.crashed", group="field", needs_root=True)
def pos_oom_killed(tmp: Path, stack: ExitStack) -> Setup:
    _kernel(stack, "Out of memory: Killed process 4242 (posapp) total-vm:812345kB, anon-rss:512000kB, file-rss:0kB")
    return Setup({"system": KMSG, "terminal": {"pos_process": "posapp"}})


@scenario("previous-boot-panic", "system.crashed", group="field")
def previous_boot_panic(tmp: Path, stack: ExitStack) -> Setup:
    pstore = tmp / "root/sys/fs/pstore"
    pstore.mkdir(parents=True)
    (pstore / "dmesg-ramoops-0").write_text("Panic#1 Part1\n<0>Kernel panic - not syncing: Fatal exception\n")
    return Setup({"system": {"host_root": str(tmp / "root")}})


@scenario("pos-crash-loop", "system.crashed", group="field")
def pos_crash_loop(tmp: Path, stack: ExitStack) -> Setup:
    """A POS process killed and started again three times; the daemon's look between sweeps recorded
    each start in the store (as ``posdiag run`` does every ``pos_watch_s``); the fourth still runs."""
    from posdiag.agent.store import Store
    from posdiag.probes._restarts import StartWatch

    binary = tmp / "benchpos"
    shutil.copy(shutil.which("sleep") or "/bin/sleep", binary)
    with Store(tmp / "state") as store:
        for restart in range(4):
            pos = subprocess.Popen([str(binary), "600"])
            stack.callback(pos.wait)
            stack.callback(pos.kill)
            time.sleep(0.05)
            start = StartWatch("benchpos").look()
            assert start is not None
            store.add_pos_start(start)
            if restart < 3:  # it crashed; its supervisor starts it again
                pos.kill()
                pos.wait()
    return Setup({"terminal": {"pos_process": "benchpos"}})


@scenario("cpu-overheating", "system.overload", group="field", needs_root=True)
def cpu_overheating(tmp: Path, stack: ExitStack) -> Setup:
    """The kernel's thermal interrupts in its log: a CPU over its threshold and throttled."""
    _kernel(stack, "CPU0: Core temperature above threshold, cpu clock throttled (total events = 12)",
            "CPU2: Package temperature above threshold, cpu clock throttled (total events = 12)")
    return Setup({"system": KMSG})


@scenario("crash-and-full-disk", "disk.full", group="field", needs_root=True)
def crash_and_full_disk(tmp: Path, stack: ExitStack) -> Setup:
    fs = _mount(tmp, stack, ["-t", "tmpfs", "-o", "size=1m", "posdiag-bench"])
    fill_filesystem(fs)
    _kernel(stack, *OOPS)
    return Setup({"system": KMSG, "disk": {"paths": [str(fs)]}})


def _mount(tmp: Path, stack: ExitStack, args: list[str]) -> Path:
    target = tmp / "fs"
    target.mkdir()
    subprocess.run(["mount", *args, str(target)], check=True)
    stack.callback(subprocess.run, ["umount", "-l", str(target)], check=False)
    return target


@scenario("disk-io-errors", "disk.failing", group="field", needs_root=True)
def disk_io_errors(tmp: Path, stack: ExitStack) -> Setup:
    image = tmp / "disk.img"
    subprocess.run(["truncate", "-s", "16M", str(image)], check=True)
    subprocess.run(["mkfs.ext4", "-q", "-F", str(image)], check=True, capture_output=True)
    fs = _mount(tmp, stack, ["-o", "loop", str(image)])
    device = Path(subprocess.run(["findmnt", "-n", "-o", "SOURCE", str(fs)], capture_output=True, text=True,
                                 check=True).stdout.strip()).name
    _kernel(stack, f"blk_update_request: I/O error, dev {device}, sector 2048 op 0x1:(WRITE) flags 0x800",
            f"EXT4-fs error (device {device}): ext4_find_entry:1455: inode #2: comm posapp: reading directory lblock 0")
    return Setup({"system": KMSG, "disk": {"paths": [str(fs)], "smart": False}})


def _radio_root(root: Path, interface: str, level_dbm: int, gateway: str) -> Path:
    """/proc/net/route, /proc/net/wireless and /sys/class/net/IF as the kernel writes them."""
    (root / "proc/net").mkdir(parents=True)
    hexgw = f"{struct.unpack('<I', socket.inet_aton(gateway))[0]:08X}"
    (root / "proc/net/route").write_text("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow"
                                         f"\tIRTT\n{interface}\t00000000\t{hexgw}\t0003\t0\t0\t600\t00000000\t0\t0\t0\n")
    (root / "proc/net/wireless").write_text(
        "Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
        " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n"
        f"{interface:>6}: 0000   {max(0, level_dbm + 110)}.  {level_dbm}.  -256        0      0      0     12      0        0\n")
    (root / "sys/class/net" / interface / "wireless").mkdir(parents=True)
    (root / "sys/class/net" / interface / "uevent").write_text(f"DEVTYPE=wlan\nINTERFACE={interface}\n")
    return root


@scenario("weak-wifi", "network.weak_signal", group="field")
def weak_wifi(tmp: Path, stack: ExitStack) -> Setup:
    listener = socket.create_server(("127.0.0.1", 0))  # the payment service: connects complete in the backlog
    stack.callback(listener.close)
    root = _radio_root(tmp / "root", "wlan0", -90, "192.0.2.1")
    return Setup({"payment_hosts": [{"name": "primary", "host": "127.0.0.1", "port": listener.getsockname()[1],
                                     "tls": False}], "system": {"host_root": str(root)}})


@scenario("weak-wifi-with-loss", "network.weak_signal", group="field", needs_root=True, samples_loss=True)
def weak_wifi_with_loss(tmp: Path, stack: ExitStack) -> Setup:
    setup = build_lab(tmp, stack, tls=False, fault=lambda lab: Lab.random_loss(lab, 35),
                      network={"tcp_attempts": 8, "ping_count": 30})
    setup.sections["system"] = {"host_root": str(_radio_root(tmp / "root", "t0", -86, GATEWAY))}
    return setup


@scenario("cert-expiring-3d", "none", group="field", check=risk_ahead("tls.expiring_soon"))
def cert_expiring(tmp: Path, stack: ExitStack) -> Setup:
    import trustme

    ca, now = trustme.CA(), datetime.datetime.now(datetime.timezone.utc)
    leaf = ca.issue_cert("pay.test", not_before=now - datetime.timedelta(days=1),
                         not_after=now + datetime.timedelta(days=3))
    ca.cert_pem.write_to_path(str(tmp / "ca.pem"))
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    leaf.configure_cert(ctx)
    server = socket.create_server(("127.0.0.1", 0))
    stack.callback(server.close)

    def serve() -> None:
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            try:
                with ctx.wrap_socket(conn, server_side=True):
                    pass
            except (OSError, ssl.SSLError):
                conn.close()

    threading.Thread(target=serve, daemon=True).start()
    return Setup({"payment_hosts": [{"name": "primary", "host": "127.0.0.1", "port": server.getsockname()[1],
                                     "server_name": "pay.test", "ca_file": str(tmp / "ca.pem")}]})


@scenario("disk-filling-steadily", "none", group="field", needs_root=True, check=risk_ahead("trend.disk_filling"))
def disk_filling(tmp: Path, stack: ExitStack) -> Setup:
    """A tmpfs with 40 MB free now, 10 MB less each stored sweep of the last hour: full in about 40 min."""
    from posdiag.agent.store import Store
    from posdiag.core.timefmt import utc_iso

    fs = _mount(tmp, stack, ["-t", "tmpfs", "-o", "size=64m", "posdiag-bench"])
    (fs / "spool").write_bytes(b"\0" * 24 * 1024 * 1024)
    now = time.time()
    with Store(tmp / "state") as store:
        for i in range(5):
            store.add({"schema": "posdiag.report/1", "report_id": str(uuid.uuid4()), "trigger": "schedule",
                       "started_at": utc_iso(now - 3000 + 600 * i), "duration_s": 0.1, "agent_version": "0.1.0",
                       "terminal": {"id": "bench", "site": "", "hostname": "bench"},
                       "probes": [{"name": "disk", "status": "ok", "duration_s": 0.01, "summary": "", "findings": [],
                                   "metrics": {f"free_mb[{fs}]": 90.0 - 10 * i}}],
                       "diagnosis": {"verdict": "healthy", "causes": [{"id": "none", "title": "", "confidence": 0.95,
                                                                       "evidence": [], "remediation": ["x"]}]}})
    return Setup({"disk": {"paths": [str(fs)]}})
