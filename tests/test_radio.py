"""network.weak_signal: the radio read from files in the kernel's own format under a test root (this
machine has no radio), alone and beside real loss on a path in network namespaces."""

from __future__ import annotations

import json
import socket
import struct
from pathlib import Path

import pytest
from labs.commands import diagnose_json, run_posdiag
from labs.helpers import codes_of, probe_of, top_cause
from labs.netlab import GATEWAY, HOST_ADDR
from posdiag.probes import _radio

WIRELESS_HEAD = ("Inter-| sta-|   Quality        |   Discarded packets               | Missed | WE\n"
                 " face | tus | link level noise |  nwid  crypt   frag  retry   misc | beacon | 22\n")


def radio_root(root: Path, interface: str, *, level_dbm: int | None, gateway: str = "192.0.2.1",
               devtype: str = "wlan") -> Path:
    """/proc/net/route, /proc/net/wireless and /sys/class/net/IF as the kernel writes them, for a
    terminal whose default route leaves through ``interface``."""
    (root / "proc/net").mkdir(parents=True, exist_ok=True)
    hexgw = f"{struct.unpack('<I', socket.inet_aton(gateway))[0]:08X}"
    (root / "proc/net/route").write_text(
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        f"{interface}\t00000000\t{hexgw}\t0003\t0\t0\t600\t00000000\t0\t0\t0\n")
    lines = WIRELESS_HEAD
    if level_dbm is not None:
        quality = max(0, min(70, level_dbm + 110))
        lines += f"{interface:>6}: 0000   {quality}.  {level_dbm}.  -256        0      0      0     12      0        0\n"
    (root / "proc/net/wireless").write_text(lines)
    netdir = root / "sys/class/net" / interface
    (netdir / "wireless").mkdir(parents=True, exist_ok=True)
    (netdir / "uevent").write_text(f"DEVTYPE={devtype}\nINTERFACE={interface}\nIFINDEX=3\n")
    return root


def local_host_config(config_file, root: Path, **network):
    return config_file(payment_hosts=[{"name": "primary", "host": "127.0.0.1", "port": 9, "tls": False}],
                       system={"host_root": str(root)}, network=network)


def test_wifi_signal_and_quality_are_read_from_proc_net_wireless(tmp_path):
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=-67)
    signal = _radio.proc_wireless("wlan0", str(root / "proc/net/wireless"))
    assert signal is not None and signal.dbm == -67 and signal.percent == pytest.approx(61.4, abs=0.1)
    assert _radio.kind_of("wlan0", str(root / "sys")) == "wifi"


@pytest.mark.parametrize(("level", "severity", "rc"), [(-88, "fail", 2), (-79, "warn", 1)])
def test_a_weak_wifi_signal_on_the_payment_route_blames_weak_signal(config_file, tmp_path, level, severity, rc):
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=level)
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    finding = next(f for f in probe_of(report, "network.radio")["findings"] if f["code"] == "radio.weak_signal")
    assert finding["severity"] == severity and finding["data"]["interface"] == "wlan0"
    assert finding["data"]["signal_dbm"] == level
    assert code == rc and top_cause(report) == "network.weak_signal"


@pytest.mark.parametrize("how", ["devtype-and-folder", "folder-only", "devtype-only"])
def test_a_good_signal_is_only_reported(config_file, tmp_path, how):
    """A Wi-Fi interface is known by DEVTYPE=wlan or by its wireless folder: some drivers give only one."""
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=-58, devtype="" if how == "folder-only" else "wlan")
    if how == "devtype-only":
        (root / "sys/class/net/wlan0/wireless").rmdir()
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    assert codes_of(report, "network.radio") == ["radio.signal"] and code == 0


def test_a_wired_route_has_no_radio_to_judge(config_file, tmp_path):
    root = radio_root(tmp_path / "root", "eth0", level_dbm=None, devtype="")
    (root / "sys/class/net/eth0/wireless").rmdir()
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    assert codes_of(report, "network.radio") == ["radio.wired"] and code == 0


def test_a_cellular_link_without_modemmanager_says_its_signal_is_unknown(config_file, tmp_path):
    root = radio_root(tmp_path / "root", "wwan0", level_dbm=None, devtype="wwan")
    (root / "sys/class/net/wwan0/wireless").rmdir()
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    finding = next(f for f in probe_of(report, "network.radio")["findings"])
    if finding["code"] != "radio.signal_unreadable":
        pytest.skip("this machine has ModemManager and a modem on wwan0")
    assert finding["data"]["kind"] == "cellular" and "mmcli" in finding["message"] and code == 0


def test_modemmanager_s_signal_of_the_modem_on_the_interface_is_read():
    modem = {"modem": {"generic": {"ports": ["cdc-wdm0 (qmi)", "wwan0 (net)"], "access-technologies": ["lte"],
                                   "signal-quality": {"recent": "yes", "value": "18"}, "state": "connected"}}}
    signal = _radio.parse_modem(modem, "wwan0")
    assert signal is not None and signal.percent == 18 and signal.technology == "lte"
    assert _radio.parse_modem(modem, "wwan1") is None


def _modem(port: str, technology: str, percent: int) -> str:
    return json.dumps({"modem": {"generic": {"ports": ["cdc-wdm0 (qmi)", f"{port} (net)"],
                                             "access-technologies": [technology],
                                             "signal-quality": {"recent": "yes", "value": str(percent)}}}})


#: ModemManager's command line as it answers with two modems, the second one on wwan0
MMCLI = f"""#!/bin/sh
case "$*" in
  "-L -J") echo '{json.dumps({"modem-list": ["/org/freedesktop/ModemManager1/Modem/0",
                                            "/org/freedesktop/ModemManager1/Modem/3"]})}' ;;
  "-m 0 -J") echo '{_modem("wwan1", "umts", 80)}' ;;
  "-m 3 -J") echo '{_modem("wwan0", "lte", 12)}' ;;
  *) echo "error: unexpected arguments: $*" >&2; exit 1 ;;
esac
"""


def test_of_several_modems_the_one_on_the_interface_is_asked_for_its_signal(tmp_path, monkeypatch):
    (tmp_path / "bin").mkdir()
    mmcli = tmp_path / "bin" / "mmcli"
    mmcli.write_text(MMCLI)
    mmcli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    signal = _radio.modem_signal("wwan0", 2.0)
    assert signal is not None and (signal.percent, signal.technology) == (12, "lte")
    assert _radio.modem_signal("wwan1", 2.0).percent == 80
    assert _radio.modem_signal("wwan7", 2.0) is None  # no modem has that port


def radio_verdict(report: dict) -> tuple[str, str]:
    [finding] = probe_of(report, "network.radio")["findings"]
    return finding["code"], finding["severity"]


@pytest.mark.parametrize(("level", "verdict"), [(-74, ("radio.signal", "info")), (-75, ("radio.weak_signal", "warn")),
                                                (-84, ("radio.weak_signal", "warn")), (-85, ("radio.weak_signal", "fail"))])
def test_a_wifi_signal_is_weak_from_its_limit_and_too_weak_from_ten_db_below_it(config_file, tmp_path, level, verdict):
    """The default limit of -75 dBm: at it the signal is weak, 10 dB below it too weak to work."""
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=level)
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    assert radio_verdict(report) == verdict
    assert probe_of(report, "network.radio")["metrics"]["signal_dbm"] == level


@pytest.mark.parametrize(("percent", "verdict"), [(30, ("radio.signal", "info")), (29, ("radio.weak_signal", "warn")),
                                                  (15, ("radio.weak_signal", "warn")), (14, ("radio.weak_signal", "fail"))])
def test_a_cellular_signal_is_weak_under_its_limit_and_too_weak_under_half_of_it(config_file, tmp_path, monkeypatch,
                                                                                  percent, verdict):
    """The default limit of 30 %, as ModemManager's command line reports the modem on the route's interface."""
    root = radio_root(tmp_path / "root", "wwan0", level_dbm=None, devtype="wwan")
    (root / "sys/class/net/wwan0/wireless").rmdir()
    (tmp_path / "bin").mkdir()
    mmcli = tmp_path / "bin" / "mmcli"
    mmcli.write_text(f"""#!/bin/sh
case "$*" in
  "-L -J") echo '{json.dumps({"modem-list": ["/org/freedesktop/ModemManager1/Modem/0"]})}' ;;
  "-m 0 -J") echo '{_modem("wwan0", "lte", percent)}' ;;
  *) exit 1 ;;
esac
""")
    mmcli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    assert radio_verdict(report) == verdict
    assert probe_of(report, "network.radio")["metrics"]["signal_percent"] == percent


def test_a_weak_signal_reads_as_such_in_chinese(config_file, tmp_path):
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=-90)
    proc = run_posdiag("--lang", "zh_CN", "diagnose", "--only", "network.radio", "--config",
                       str(local_host_config(config_file, root)))
    assert proc.returncode == 2 and "信号弱" in proc.stdout and "-90 dBm" in proc.stdout


@pytest.mark.root
def test_a_weak_signal_explains_the_loss_measured_on_the_path(lab, config_file, tmp_path):
    """Real loss on the routed path, and the radio of the interface it leaves by reads weak: the weak
    signal is blamed and the loss is shown as its consequence."""
    lab.peer(lab.host, "tcp", "--bind", HOST_ADDR, "--port", "8000")
    lab.random_loss(35)
    root = radio_root(tmp_path / "root", "t0", level_dbm=-86, gateway=GATEWAY)
    config = config_file(payment_hosts=[{"name": "primary", "host": HOST_ADDR, "port": 8000, "tls": False}],
                         network={"tcp_attempts": 8, "ping_count": 30, "timeout_s": 1.0},
                         system={"host_root": str(root)})
    rc, report, _ = lab.diagnose(config)
    assert top_cause(report) == "network.weak_signal", report["diagnosis"]
    assert "path.loss_high" in codes_of(report, "network.path")
    weak = report["diagnosis"]["causes"][0]
    assert any("t0" in e and "-86 dBm" in e for e in weak["evidence"])
    assert any("network.path" in c for c in weak["consequences"])


@pytest.mark.parametrize(("level", "dbm"), [("-67.", -67), ("189.", -67), ("64.", -192), ("63.", None), ("0.", None)],
                         ids=["signed", "unsigned-byte", "smallest-unsigned", "not-a-level", "zero"])
def test_older_drivers_give_the_level_as_an_unsigned_byte(tmp_path, level, dbm):
    """/proc/net/wireless from an old driver: 189 is -67 dBm as a byte; 0..63 is no level in dBm at all."""
    path = tmp_path / "wireless"
    path.write_text(WIRELESS_HEAD + f" wlan0: 0000   43.  {level}  -256        0      0      0     12      0        0\n")
    signal = _radio.proc_wireless("wlan0", str(path))
    assert signal is not None and signal.dbm == dbm and signal.percent == pytest.approx(61.4, abs=0.1)


def test_the_radio_looked_at_is_the_one_the_route_to_the_payment_host_leaves_by(config_file, tmp_path):
    """Wired by default, but the payment host's network (10.0.0.0/8) goes out over a cellular modem: that radio."""
    root = radio_root(tmp_path / "root", "eth0", level_dbm=None, devtype="")
    (root / "sys/class/net/eth0/wireless").rmdir()
    with open(root / "proc/net/route", "a") as table:
        table.write("wwan0\t0000000A\t00000000\t0001\t0\t0\t100\t000000FF\t0\t0\t0\n")  # 10.0.0.0/8 on-link
    (root / "sys/class/net/wwan0").mkdir(parents=True)
    (root / "sys/class/net/wwan0/uevent").write_text("DEVTYPE=wwan\nINTERFACE=wwan0\n")
    config = config_file(payment_hosts=[{"name": "primary", "host": "10.1.2.3", "port": 443, "tls": False}],
                         system={"host_root": str(root)})
    code, report = diagnose_json(config, "--only", "network.radio")
    assert probe_of(report, "network.radio")["metrics"]["interface"] == "wwan0"


def test_without_a_route_to_the_payment_host_there_is_no_radio_to_look_at(config_file, tmp_path):
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=-60)
    (root / "proc/net/route").write_text("Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n")
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    radio = probe_of(report, "network.radio")
    assert codes_of(report, "network.radio") == ["radio.no_route"] and radio["summary"] == "no route to the payment host"


@pytest.mark.parametrize(("signal", "code", "message"), [
    (_radio.Signal("wifi", -80.0, 43.0, source="iw"), "radio.weak_signal",
     "wlan0 carries the payment route over a weak Wi-Fi signal: -80 dBm, 43 % (limit -75 dBm)"),
    (_radio.Signal("cellular", -101.0, 29.5, "lte", "mmcli"), "radio.weak_signal",
     "wlan0 carries the payment route over a weak cellular signal: -101 dBm, 29.5 %, lte (limit 30 %)"),
    (_radio.Signal("cellular", -60.0, None, "umts"), "radio.signal", "wlan0: cellular signal -60 dBm, umts"),
    (_radio.Signal("wifi", None, 12.0), "radio.weak_signal", "weak Wi-Fi signal: 12 % (limit 30 %)"),
    (_radio.Signal("wifi"), "radio.signal", "wlan0: Wi-Fi signal ")],
    ids=["wifi-by-level", "cellular-by-quality", "cellular-level-alone-is-not-judged", "wifi-without-level-by-quality",
         "nothing-read"])
def test_a_signal_is_judged_by_its_level_for_wifi_else_its_quality_and_said_with_what_was_read(config_file, signal, code,
                                                                                                  message):
    """Wi-Fi by its level in dBm against min_wifi_signal_dbm; else (cellular, or a Wi-Fi driver without a level)
    by the quality in percent against min_cell_signal_percent; a reading with neither is only reported."""
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network.radio import RadioProbe

    obs = Observation()
    RadioProbe(cfg.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", "port": 9}])))).judge(obs, "wlan0", signal)
    [finding] = obs.findings
    assert finding.code == code and message in finding.message, finding.message
    assert (obs.metrics["signal_dbm"], obs.metrics["signal_percent"]) == (signal.dbm, signal.percent)
    assert finding.data == {"interface": "wlan0", "kind": signal.kind, "signal_dbm": signal.dbm,
                            "signal_percent": signal.percent, "technology": signal.technology, "source": signal.source}


def test_a_configured_interface_is_the_radio_looked_at_whatever_the_routes(config_file, tmp_path):
    root = radio_root(tmp_path / "root", "eth0", level_dbm=None, devtype="")
    (root / "sys/class/net/eth0/wireless").rmdir()
    radio_root(root, "wlan1", level_dbm=-60)
    (root / "proc/net/route").write_text(  # the route still leaves by eth0
        "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask\t\tMTU\tWindow\tIRTT\n"
        "eth0\t00000000\t0100000A\t0003\t0\t0\t100\t00000000\t0\t0\t0\n")
    code, report = diagnose_json(local_host_config(config_file, root, interface="wlan1"), "--only", "network.radio")
    radio = probe_of(report, "network.radio")
    assert radio["metrics"]["interface"] == "wlan1" and codes_of(report, "network.radio") == ["radio.signal"], radio
    assert radio["summary"] == "wlan1: Wi-Fi signal -60 dBm, 71.4 %"


def test_a_modem_tool_that_hangs_is_given_up_on_within_the_probe_s_own_time(config_file, tmp_path, monkeypatch):
    """ModemManager's command line stuck (a modem resetting): it is given a share of the probe's time and
    no more, so the probe still says the signal cannot be read instead of being abandoned at its deadline."""
    root = radio_root(tmp_path / "root", "wwan0", level_dbm=None, devtype="wwan")
    (root / "sys/class/net/wwan0/wireless").rmdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "mmcli").write_text("#!/bin/sh\nexec sleep 30\n")
    (tmp_path / "bin" / "mmcli").chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    code, report = diagnose_json(local_host_config(config_file, root), "--only", "network.radio")
    radio = probe_of(report, "network.radio")
    assert radio["status"] == "ok" and codes_of(report, "network.radio") == ["radio.signal_unreadable"], radio


@pytest.mark.parametrize(("interface", "files", "kind"), [
    ("wwan0", {}, "cellular"), ("rmnet_data0", {}, "cellular"), ("ppp0", {}, "cellular"),
    ("usb0", {"uevent": "DEVTYPE=wwan\n"}, "cellular"), ("eth0", {}, "wired"),
    ("eth1", {"uevent": "DEVTYPE=gadget\n"}, "wired"), ("wlp2s0", {"phy80211": ""}, "wifi"),
], ids=["wwan", "rmnet", "ppp", "devtype-wwan", "ethernet", "other-devtype", "phy80211-only"])
def test_an_interface_is_cellular_by_its_devtype_or_a_modems_name(tmp_path, interface, files, kind):
    base = tmp_path / "sys/class/net" / interface
    base.mkdir(parents=True)
    for name, text in files.items():
        (base / name).write_text(text)
    assert _radio.kind_of(interface, str(tmp_path / "sys")) == kind


@pytest.mark.parametrize(("row", "dbm", "percent"), [
    (" wlan0: 0000   43.  -67.", -67, 61.4),  # status, quality, level: the three it needs, no more
    (" wlan0: 0000   94.  -40.  -256        0      0      0     12      0        0", -40, 100.0),  # above 70: full
    (" wlan0: 0000   43.", None, None),  # no level
], ids=["three-fields", "quality-capped-at-100-percent", "two-fields"])
def test_the_wireless_line_needs_status_quality_and_level_and_quality_tops_at_100_percent(tmp_path, row, dbm, percent):
    path = tmp_path / "wireless"
    path.write_text(WIRELESS_HEAD + " wlan1: 0000   10.  -99.  -256        0      0      0     12      0        0\n"
                    + row + "\n")
    signal = _radio.proc_wireless("wlan0", str(path))
    if percent is None:
        assert signal is None
    else:
        assert signal is not None and (signal.dbm, signal.percent) == (dbm, percent), signal


def test_modemmanager_is_given_the_time_asked_for_and_no_less_than_a_sliver(tmp_path, monkeypatch):
    """A ModemManager slow to answer (0.2 s a call) is waited for within a generous time, and not within none."""
    (tmp_path / "bin").mkdir()
    mmcli = tmp_path / "bin" / "mmcli"
    mmcli.write_text(MMCLI.replace("#!/bin/sh\n", "#!/bin/sh\nsleep 0.2\n", 1))
    mmcli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    signal = _radio.modem_signal("wwan0", 5.0)
    assert signal is not None and signal.percent == 12
    assert _radio.modem_signal("wwan0", 0.0) is None


def test_a_configured_interface_is_the_radio_looked_at_whatever_the_route(config_file, tmp_path):
    root = radio_root(tmp_path / "root", "wlan0", level_dbm=-60)
    radio_root(root, "wlan1", level_dbm=-62)  # its own files; the route (rewritten) leaves by wlan1 now
    (root / "proc/net/wireless").write_text(WIRELESS_HEAD + "  wlan0: 0000   50.  -60.  -256        0      0      0     "
                                            "12      0        0\n")
    code, report = diagnose_json(local_host_config(config_file, root, interface="wlan0"), "--only", "network.radio")
    radio = probe_of(report, "network.radio")
    assert radio["metrics"]["interface"] == "wlan0" and radio["metrics"]["signal_dbm"] == -60, radio


@pytest.mark.parametrize(("signal", "verdict"), [
    (_radio.Signal("cellular", dbm=-100.0, percent=80.0), ("radio.signal", "info")),  # a modem's RSSI: judged by its %
    (_radio.Signal("wifi"), ("radio.signal", "info")),  # nothing read to judge by
    (_radio.Signal("wifi", dbm=-90.0, percent=90.0), ("radio.weak_signal", "fail")),  # Wi-Fi: by its dBm
], ids=["cellular-rssi", "nothing-read", "wifi-by-dbm"])
def test_a_signal_is_judged_by_dbm_on_wifi_and_by_percent_on_cellular(config_file, signal, verdict):
    from posdiag.core import settings as cfg
    from posdiag.probes.base import Observation
    from posdiag.probes.network.radio import RadioProbe

    settings = cfg.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", "port": 9, "tls": False}])))
    obs = Observation()
    RadioProbe(settings).judge(obs, "wwan0", signal)
    assert [(f.code, f.severity.value) for f in obs.findings] == [verdict]


@pytest.mark.parametrize(("signal", "reading"), [
    (_radio.Signal("wifi", dbm=-60.0), "-60 dBm"), (_radio.Signal("cellular", percent=42.0, technology="lte"), "42 %, lte"),
    (_radio.Signal("wifi", dbm=-67.5, percent=61.4), "-67.5 dBm, 61.4 %")], ids=["dbm-only", "percent-and-name", "both"])
def test_a_reading_shows_only_what_was_read(signal, reading):
    from posdiag.probes.network.radio import _reading

    assert _reading(signal) == reading


@pytest.mark.parametrize(("delay_s", "read"), [(0.1, True), (1.2, False)], ids=["answers-in-0.1s", "answers-in-1.2s"])
def test_modemmanager_is_given_two_fifths_of_the_probe_s_one_and_a_half_seconds(config_file, tmp_path, monkeypatch,
                                                                                 delay_s, read):
    """0.6 s for each call: a modem answering in 0.1 s is read, one taking 1.2 s is given up on in time."""
    from posdiag.core import settings as cfg
    from posdiag.probes.network.radio import RadioProbe

    (tmp_path / "bin").mkdir()
    mmcli = tmp_path / "bin" / "mmcli"
    mmcli.write_text(MMCLI.replace('  "-m 3 -J")', f'  "-m 3 -J") sleep {delay_s};', 1))
    mmcli.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tmp_path / 'bin'}:/usr/bin:/bin")
    settings = cfg.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", "port": 9, "tls": False}])))
    signal = RadioProbe(settings).read("wwan0", "cellular")
    assert (signal is not None and signal.percent == 12) if read else signal is None, signal
