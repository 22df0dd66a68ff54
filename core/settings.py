"""Load and validate ``posdiag.toml`` into typed, frozen settings.

The agent never starts on a guess: every key is checked against the declared sections below, and
a bad file is refused with the file, the key and what was expected (:class:`ConfigError`). The
dataclasses are the schema — a field's type, default and ``meta`` (range, choices) are all the
validator needs, so adding a key is adding a field.
"""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import os
import re
import socket
import stat
import sys
import typing
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from posdiag.core import i18n
from posdiag.core.addresses import is_address
from posdiag.core.files import FileTooLarge, NotRegularFile, file_kind, read_bounded
from posdiag.core.i18n import N_
from posdiag.core.message import Message, translated
from posdiag.core.numfmt import plain
from posdiag.core.paths import default_config_path
from posdiag.core.redact import has_card_data, mask_text, remember, remember_config
from posdiag.core.validate import build_section, got, nesting_depth, unknown_name

SYSTEM_CONFIG = Path("/etc/posdiag/posdiag.toml")
#: a configuration larger than this is refused unread: posdiag.toml with every key is ~6 KiB
MAX_CONFIG_BYTES = 1024 * 1024
#: arrays and tables nested deeper than this are refused: the schema needs three levels
MAX_DEPTH = 16
#: a token file holding more than this is not one token: push refuses it, and nothing is remembered
MAX_TOKEN_BYTES = 4096
#: the shortest interval at which a terminal asks the central server for remote requests (0 turns it off)
MIN_POLL_S = 5.0
#: the longest AF_UNIX socket path: sun_path holds 108 bytes, the last one the terminating NUL
MAX_SOCKET_PATH = 107
#: A probe's own timeout may take at most this share of the diagnosis deadline: the probes get the
#: deadline less posdiag's start-up, and a timed-out attempt must still be reported, not abandoned.
TIMEOUT_SHARE = 0.5
#: the timeouts a sweep waits on, each checked against the deadline
SWEEP_TIMEOUTS = ("network.timeout_s", "reader.timeout_s")


class ConfigError(Exception):
    """A configuration was refused. ``problems`` lists every one found, each naming its key.

    ``str()`` is English, for the daemon's log; :meth:`render` is what a person reads, in their language.
    """

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(self.render(i18n.translator(i18n.DEFAULT)))

    def render(self, translator: i18n.Translator | None = None) -> str:
        """The refusal in ``translator``'s language (the process's by default): the file, then each
        problem with its key; key names and values are quoted as the file has them."""
        t = translator or i18n.current()
        lines = [t.tr("{path}: {problem}", path=self.path, problem=translated(p, t)) for p in self.problems]
        return t.tr("invalid configuration:") + "\n  " + "\n  ".join(lines)


def _range(lo: float | None = None, hi: float | None = None) -> dict[str, Any]:
    return {"min": lo, "max": hi}


def _f(default: Any, doc: str = "", **meta: Any) -> Any:
    if isinstance(default, list):
        return field(default_factory=lambda d=default: list(d), metadata={"doc": doc, **meta})
    return field(default=default, metadata={"doc": doc, **meta})


@dataclass(frozen=True)
class TerminalSettings:
    id: str = _f("", "terminal id; empty means the hostname")
    site: str = _f("")
    pos_process: str = _f("", "process name of the POS application")
    pos_unit: str = _f("", "systemd unit of the POS application, whose restarts systemd counts",
                       pattern=r"^([A-Za-z0-9_][A-Za-z0-9_.@:\\-]*)?$",
                       pattern_doc=N_("a systemd unit name, e.g. posapp.service"))
    language: Literal["", "en", "zh_CN"] = _f("", "language of reports and messages; empty: from the locale")


@dataclass(frozen=True)
class PaymentHost:
    host: str = _f("", required=True)
    port: int = _f(443, **_range(1, 65535))
    name: str = _f("")
    tls: bool = _f(True)
    server_name: str = _f("")
    ca_file: str = _f("", path=True)
    health_path: str = _f("", pattern=r"^(/.*)?$", pattern_doc=N_("a path starting with '/'"))
    fallback_addresses: list[str] = _f([], "addresses the host is known to answer at besides its name")
    client_cert: str = _f("", "PEM file of the terminal's client certificate (mutual TLS)", path=True)
    client_key: str = _f("", "PEM file of its private key; empty = in client_cert", path=True)

    @property
    def label(self) -> str:
        return self.name or f"{self.host}:{self.port}"


@dataclass(frozen=True)
class NetworkSettings:
    interface: str = _f("auto")
    gateway: str = _f("auto", doc='"auto", "off" or an address')
    dns_servers: str | list[str] = _f("system", doc='"system" or a list of addresses')
    icmp: bool = _f(True)
    ping_count: int = _f(10, **_range(1, 100))
    timeout_s: float = _f(1.0, **_range(0.05, 30))
    tcp_attempts: int = _f(3, **_range(1, 20))
    max_loss_percent: float = _f(20.0, **_range(0.1, 100))
    max_rtt_ms: float = _f(500.0, **_range(1, 60000))
    max_jitter_ms: float = _f(100.0, **_range(1, 60000))
    cert_warn_days: float = _f(14.0, doc="a certificate that expires within this many days is a risk", **_range(1, 365))
    min_wifi_signal_dbm: float = _f(-75.0, doc="a Wi-Fi signal at or below this, dBm, is weak", **_range(-120, 0))
    min_cell_signal_percent: float = _f(30.0, doc="a cellular signal quality below this is weak", **_range(1, 100))


@dataclass(frozen=True)
class ReaderSettings:
    kind: Literal["serial", "usb", "none"] = _f("none")
    port: str = _f("")
    usb: str = _f("", pattern=r"^([0-9a-fA-F]{4}:[0-9a-fA-F]{4})?$", pattern_doc=N_("VID:PID in hex, e.g. 0b00:0084"))
    baudrate: int = _f(9600, **_range(50, 4_000_000))
    protocol: str = _f("generic")
    request: str = _f("", pattern=r"^([0-9a-fA-F]{2}\s*)*$", pattern_doc=N_("hex bytes, e.g. '02 31 03'"))
    expect: str = _f("", regex=True)
    expected_serial: str = _f("")
    timeout_s: float = _f(1.0, **_range(0.05, 30))
    slow_ms: float = _f(500.0, **_range(1, 60000))
    sysfs_root: str = _f("/sys", doc="where USB devices are enumerated from")
    kernel_log: str = _f("/dev/kmsg", doc="kernel log read for reader disconnects")
    flap_window_min: float = _f(60.0, **_range(1, 10080))
    flap_threshold: int = _f(2, **_range(1, 1000))
    bridge_processes: list[str] = _f([], "process names that bridge the reader's line (fallback when /proc cannot tell)")


@dataclass(frozen=True)
class MemorySettings:
    min_available_mb: int = _f(200, **_range(0, 1_048_576))
    max_swap_percent: float = _f(50.0, **_range(0, 100))
    exhaust_warn_hours: float = _f(24.0, doc="POS memory growth that exhausts available memory within this is a risk",
                                   **_range(1, 8760))


@dataclass(frozen=True)
class SystemSettings:
    max_load_per_cpu: float = _f(2.0, **_range(0.1, 1000))
    max_temp_c: float = _f(85.0, **_range(20, 150))
    min_uptime_s: float = _f(120.0, doc="a POS process younger than this counts as restarted",
                             **_range(0, 86400))
    restart_limit: int = _f(3, doc="this many POS restarts within restart_window_min is a crash loop", **_range(1, 100))
    restart_window_min: float = _f(10.0, **_range(1, 1440))
    kernel_log: str = _f("/dev/kmsg", doc="kernel log read for crashes, disk errors and heat")
    kernel_log_window_h: float = _f(24.0, doc="kernel-log records older than this are not evidence", **_range(0.01, 8760))
    host_root: str = _f("/", doc="where /proc, /sys and /var/crash are read from")


@dataclass(frozen=True)
class DiskSettings:
    paths: list[str] = _f(["/", "/var/tmp"])
    min_free_mb: int = _f(500, **_range(0, 10_000_000))
    min_free_inodes_percent: float = _f(5.0, **_range(0, 100))
    write_test: bool = _f(True)
    slow_write_ms: float = _f(1000.0, **_range(1, 60000))
    smart: bool = _f(True, doc="read each disk's SMART health with smartctl where it is installed")
    full_warn_hours: float = _f(48.0, doc="a filesystem full within this many hours at its rate is a risk",
                                **_range(1, 8760))


@dataclass(frozen=True)
class ClockSettings:
    ntp_server: str = _f("", pattern=r"^(\[[0-9a-fA-F:]+\]|[^\s:]+)?(:\d{1,5})?$",
                         pattern_doc=N_("host or host:port"))
    max_offset_s: float = _f(30.0, **_range(0.001, 86400))
    drift_warn_hours: float = _f(48.0, doc="a clock that drifts beyond max_offset_s within this is a risk",
                                 **_range(1, 8760))


@dataclass(frozen=True)
class TxlogSettings:
    path: str = _f("")
    pattern: str = _f(r"^(?P<ts>\S+ \S+) .*?code=(?P<code>\d+)(?: .*?rc=(?P<response>\w\w))?", regex=True)
    window_min: float = _f(15.0, **_range(0.1, 10080))


@dataclass(frozen=True)
class ServerSettings:
    # No user:password@: requests would send it as Basic auth in place of the terminal's bearer token.
    url: str = _f("", pattern=r"^(https?://[^\s/?#@]+(/[^\s?#]*)?)?$",
                  pattern_doc=N_("an https:// URL (no user:password@, query or fragment)"))
    token_file: str = _f("")
    ca_file: str = _f("")
    spool_max_mb: float = _f(50.0, **_range(1, 100_000))
    retry_max_s: float = _f(60.0, doc="cap of the backoff between failed pushes", **_range(1, 86400))
    timeout_s: float = _f(15.0, doc="one push request gives up after this many seconds", **_range(0.5, 300))
    allow_insecure: bool = _f(False)
    poll_s: float = _f(30.0, doc="ask the server for remote requests at least this often; 0: never",
                       **_range(0, 86400))


@dataclass(frozen=True)
class DaemonSettings:
    interval_s: float = _f(300.0, **_range(5, 86400))
    state_dir: str = _f("/var/lib/posdiag")
    control_socket: str = _f("/run/posdiag/control.sock")
    history_days: float = _f(30.0, **_range(0.01, 3650))
    history_max_mb: float = _f(50.0, **_range(0.1, 100_000))
    event_min_gap_s: float = _f(15.0, doc="2824s within this many seconds of an event sweep fold into the next one",
                                **_range(0, 3600))
    pos_watch_s: float = _f(10.0, doc="between sweeps, look at the POS process's start time this often (its restarts)",
                            **_range(1, 300))


@dataclass(frozen=True)
class DiagnosisSettings:
    deadline_s: float = _f(3.0, doc="a diagnosis reports within this many seconds", **_range(0.2, 120))


@dataclass(frozen=True)
class Settings:
    terminal: TerminalSettings = field(default_factory=TerminalSettings)
    payment_hosts: list[PaymentHost] = field(default_factory=list)
    network: NetworkSettings = field(default_factory=NetworkSettings)
    reader: ReaderSettings = field(default_factory=ReaderSettings)
    memory: MemorySettings = field(default_factory=MemorySettings)
    system: SystemSettings = field(default_factory=SystemSettings)
    disk: DiskSettings = field(default_factory=DiskSettings)
    clock: ClockSettings = field(default_factory=ClockSettings)
    txlog: TxlogSettings = field(default_factory=TxlogSettings)
    server: ServerSettings = field(default_factory=ServerSettings)
    daemon: DaemonSettings = field(default_factory=DaemonSettings)
    diagnosis: DiagnosisSettings = field(default_factory=DiagnosisSettings)
    source: str = field(default="<defaults>", compare=False)

    @property
    def terminal_id(self) -> str:
        return self.terminal.id or socket.gethostname()


def _cross_checks(settings: Settings, problems: list[str], refused: frozenset[str] = frozenset()) -> None:
    """Rules that span keys: what a reader kind needs, where files must exist, what must be an address,
    which timeouts fit in the deadline, which ports exist. They run on the values that parsed, so that
    a file is refused with every problem named at once; a rule is left out only when a key it reads
    was itself refused (``refused``): that problem is named already, and the default standing in for
    the value would make the rule say something untrue."""

    def reads(*keys: str) -> bool:
        """None of ``keys`` was refused (nor the section or host holding it, nor a key inside it)."""
        return not any(r == k or k.startswith((f"{r}.", f"{r}[")) or r.startswith((f"{k}.", f"{k}["))
                       for r in refused for k in keys)

    if reads("reader.kind", "reader.port", "reader.usb", "reader.protocol", "reader.request"):
        _reader_checks(settings.reader, problems)
    if reads("payment_hosts"):
        _payment_host_checks(settings, problems)
    if reads("network.gateway", "network.dns_servers"):
        _network_checks(settings, problems)
    _card_data_checks(settings, problems)
    if reads("diagnosis.deadline_s", "reader.kind", *SWEEP_TIMEOUTS):
        _deadline_checks(settings, problems)
    _port_checks(settings, problems, reads)
    if reads("server.poll_s", "server.url", "server.allow_insecure", "server.token_file"):
        _server_checks(settings.server, problems)
    if reads("terminal.pos_process", "terminal.pos_unit", "system.restart_limit", "system.restart_window_min",
             "daemon.pos_watch_s"):
        _restart_checks(settings, problems)
    _path_checks(settings, problems)


def _path_checks(settings: Settings, problems: list[str]) -> None:
    """Paths that must be absolute, and a control socket path short enough to be one (refused values
    are defaults here, which pass)."""
    absolute = [(f"disk.paths[{i}]", path) for i, path in enumerate(settings.disk.paths)]
    absolute += [("system.host_root", settings.system.host_root), ("system.kernel_log", settings.system.kernel_log)]
    problems += [Message(N_("{key}: expected an absolute path, got {value!r}"), key=key, value=path)
                 for key, path in absolute if not os.path.isabs(path)]
    sock = settings.daemon.control_socket
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        problems.append(Message(N_("daemon.control_socket: expected a path of at most {limit} bytes (the limit of "
                                   "a Unix socket address), got {size} bytes"), limit=MAX_SOCKET_PATH,
                                size=len(os.fsencode(sock))))


def _reader_checks(reader: ReaderSettings, problems: list[str]) -> None:
    """What each reader kind and protocol needs besides its own keys."""
    if reader.kind == "serial" and not reader.port:
        problems.append(Message(N_("reader.port: expected a serial device path when reader.kind = 'serial'")))
    if reader.kind == "usb" and not reader.usb:
        problems.append(Message(N_("reader.usb: expected VID:PID when reader.kind = 'usb'")))
    if reader.protocol == "custom" and reader.kind == "serial" and not reader.request:
        problems.append(Message(N_("reader.request: expected hex bytes when reader.protocol = 'custom'")))
    if reader.protocol != "custom" and reader.protocol not in presets():
        import difflib  # only a misspelt protocol needs it

        hint = difflib.get_close_matches(reader.protocol, list(presets()), n=1)
        known = ", ".join(sorted(presets()))
        if hint:
            problems.append(Message(N_("reader.protocol: expected 'custom' or one of {known}, got {value!r} "
                                       "(did you mean '{suggestion}'?)"), known=known, value=reader.protocol,
                                    suggestion=hint[0]))
        else:
            problems.append(Message(N_("reader.protocol: expected 'custom' or one of {known}, got {value!r}"),
                                    known=known, value=reader.protocol))


def _card_data_checks(settings: Settings, problems: list[str]) -> None:
    """``[terminal]`` and ``[server]`` name the terminal and reach the server: they go into every report
    and every push as they are, so they cannot be masked without breaking what they do. A value there
    that looks like a card number (or track data) is refused by its key alone: the value is not shown."""
    for section in ("terminal", "server"):
        table = getattr(settings, section)
        for key in dataclasses.fields(table):
            value = getattr(table, key.name)
            if isinstance(value, str) and has_card_data(value):
                problems.append(Message(N_("{key}: looks like a card number or card track data; card data must never "
                                           "be written into the configuration"), key=f"{section}.{key.name}"))


def _payment_host_checks(settings: Settings, problems: list[str]) -> None:
    """Each payment host's files exist, its client key comes with a certificate, its fallbacks are addresses."""
    for i, host in enumerate(settings.payment_hosts):
        for key in ("ca_file", "client_cert", "client_key"):
            value = getattr(host, key)
            if value and not os.path.isfile(value):
                problems.append(Message(N_("{key}: expected an existing file, got {value!r}"), key=f"payment_hosts[{i}].{key}",
                                        value=value))
        if host.client_key and not host.client_cert:
            problems.append(Message(N_("{key}: expected client_cert too (the key alone proves nothing)"),
                                    key=f"payment_hosts[{i}].client_key"))
        for addr in host.fallback_addresses:
            if not is_address(addr):
                problems.append(Message(N_("{key}: expected IP addresses, got {value!r}"),
                                        key=f"payment_hosts[{i}].fallback_addresses", value=addr))


def _network_checks(settings: Settings, problems: list[str]) -> None:
    """The gateway and the DNS servers are what their keys say: a keyword or addresses."""
    gw = settings.network.gateway
    if gw not in ("auto", "off") and not is_address(gw):
        problems.append(Message(N_("network.gateway: expected 'auto', 'off' or an IP address, got {value!r}"), value=gw))
    servers = settings.network.dns_servers
    if isinstance(servers, str) and servers != "system":
        problems.append(Message(N_("network.dns_servers: expected 'system' or a list of addresses, got {value!r}"),
                                value=servers))
    elif isinstance(servers, list):
        problems += [Message(N_("{key}: expected IP addresses, got {value!r}"), key="network.dns_servers", value=addr)
                     for addr in servers if not is_address(addr.rsplit("#", 1)[0])]


def _deadline_checks(settings: Settings, problems: list[str]) -> None:
    """A timeout that cannot fit in the diagnosis deadline would have its probe abandoned before it can
    say what timed out: refused here, naming the key, rather than misread at run time."""
    deadline = settings.diagnosis.deadline_s
    for key in SWEEP_TIMEOUTS:
        section, name = key.split(".")
        if section == "reader" and settings.reader.kind == "none":
            continue  # waited on by nothing
        value = getattr(getattr(settings, section), name)
        if value > deadline * TIMEOUT_SHARE:
            problems.append(Message(N_("{key}: expected at most {limit:g} s (half of diagnosis.deadline_s = {deadline:g} s, "
                                       "so that a timed-out attempt is reported within the deadline), got {value:g}"),
                                    key=key, limit=deadline * TIMEOUT_SHARE, deadline=deadline, value=value))


def _restart_checks(settings: Settings, problems: list[str]) -> None:
    """The daemon sees at most one restart of the POS process per look (``daemon.pos_watch_s``): a crash
    loop it could never count to ``system.restart_limit`` within the window is refused, not silently
    never found. systemd counts every restart of a named unit itself."""
    system, watch_s = settings.system, settings.daemon.pos_watch_s
    if settings.terminal.pos_unit or not settings.terminal.pos_process:
        return
    if (system.restart_limit - 1) * watch_s >= system.restart_window_min * 60:
        problems.append(Message(N_("system.restart_limit: {limit} restarts cannot be seen within restart_window_min = "
                                   "{window} min when the daemon looks every daemon.pos_watch_s = {watch} s (at most one "
                                   "restart a look): lower the limit, widen the window or look more often"),
                                limit=system.restart_limit, window=plain(system.restart_window_min), watch=plain(watch_s)))


def _port_checks(settings: Settings, problems: list[str], reads: Callable[[str], bool]) -> None:
    """Ports written inside other values (``host:port``, ``address#port``, a URL) exist: 1 to 65535.
    Only in the values that were not refused (``reads``)."""
    found: list[tuple[str, str]] = []
    if ":" in settings.clock.ntp_server and not settings.clock.ntp_server.endswith("]"):
        found.append(("clock.ntp_server", settings.clock.ntp_server.rsplit(":", 1)[1]))
    if isinstance(settings.network.dns_servers, list):
        found += [("network.dns_servers", s.rsplit("#", 1)[1]) for s in settings.network.dns_servers if "#" in s]
    authority = settings.server.url.split("://", 1)[-1].split("/", 1)[0].rsplit("@", 1)[-1]
    if settings.server.url and re.search(r":[^\]]*$", authority):
        found.append(("server.url", authority.rsplit(":", 1)[1]))
    for key, port in found:
        if reads(key) and not (port.isdigit() and 1 <= int(port) <= 65535):
            problems.append(Message(N_("{key}: expected a port from 1 to 65535, got {value!r}"), key=key, value=port))


@functools.lru_cache(maxsize=1)
def presets() -> dict[str, dict]:
    """The reader protocol presets of the packaged ``readers.toml`` (name → table)."""
    from posdiag.core.paths import data_dir

    return tomllib.loads((data_dir() / "readers.toml").read_text(encoding="utf-8"))["presets"]


def parse(data: dict[str, Any], source: str) -> Settings:
    """Validate an already-decoded TOML document. Raises :class:`ConfigError` listing all problems."""
    problems: list[str] = []
    refused: set[str] = set()
    sections = {f.name: f for f in dataclasses.fields(Settings) if f.name != "source"}
    hints = typing.get_type_hints(Settings)
    built: dict[str, Any] = {}
    for key, value in data.items():
        if key not in sections:
            problems.append(unknown_name(key, f"[{key}]", list(sections)))
            continue
        if key == "payment_hosts":
            if not isinstance(value, list):
                problems.append(Message(N_("payment_hosts: expected an array of tables [[payment_hosts]], got {got}"),
                                        got=got(value)))
                refused.add(key)
                continue
            hosts = [build_section(PaymentHost, v, f"payment_hosts[{i}]", problems, refused) for i, v in enumerate(value)]
            built[key] = [h for h in hosts if h is not None]
        else:
            built[key] = build_section(hints[key], value, key, problems, refused)
    settings = Settings(**built, source=source)
    _cross_checks(settings, problems, frozenset(refused))
    if problems:
        raise ConfigError(source, problems)
    return settings  # type: ignore[return-value]


def _server_checks(server: ServerSettings, problems: list[str]) -> None:
    """A bearer token is never sent in clear text unless explicitly allowed (for a test bench); a fleet
    of terminals does not ask the server for work more often than every few seconds."""
    if 0 < server.poll_s < MIN_POLL_S:
        problems.append(Message(N_("server.poll_s: expected 0 (no remote requests) or a number from {lo} to {hi}, "
                                   "got {value}"), lo=plain(MIN_POLL_S), hi=plain(86400), value=plain(server.poll_s)))
    if not server.url:
        return
    if server.url.startswith("http://") and not server.allow_insecure:
        problems.append(Message(N_("server.url: expected https:// (plain http:// would send the token and reports "
                                   "unencrypted; set server.allow_insecure = true only for testing), got {value!r}"),
                                value=mask_text(server.url)))
    if not server.token_file:
        problems.append(Message(N_("server.token_file: expected the path of the file holding this terminal's token "
                                   "when server.url is set")))


def resolve_path(explicit: str | None = None) -> Path:
    """The config file to use, in the documented order (docs/configuration.md): --config, $POSDIAG_CONFIG, /etc, packaged."""
    if explicit:
        return Path(explicit)
    if os.environ.get("POSDIAG_CONFIG"):
        return Path(os.environ["POSDIAG_CONFIG"])
    if SYSTEM_CONFIG.exists():
        return SYSTEM_CONFIG
    return default_config_path()


def load(explicit: str | None = None) -> Settings:
    """Read, decode and validate the configuration. Raises :class:`ConfigError`."""
    path = resolve_path(explicit)
    raw = read_config_bytes(str(path))
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [Message(N_("not UTF-8 text ({reason} at byte {start})"), reason=exc.reason,
                                              start=exc.start)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Message(N_("TOML syntax error: {error}"), error=str(exc))]) from None
    except RecursionError:
        data = None
    if data is None or nesting_depth(data, MAX_DEPTH) > MAX_DEPTH:
        raise ConfigError(str(path), [Message(N_("arrays or tables nested more than {depth} deep: this is not a posdiag "
                                                 "configuration (the schema needs three levels)"), depth=MAX_DEPTH)])
    remember_config(data)  # before validation: a refused configuration's secrets are masked in its errors too
    settings = parse(data, str(path))
    remember_token(settings.server.token_file)
    return settings


def remember_token(path: str | None) -> None:
    """The push token, remembered for masking (:func:`posdiag.core.redact.remember`) by every command
    that loads the configuration, not only by those that push: ``diagnose``, ``history``, ``show`` or
    ``watch`` may quote a POS log line that carries it bare. Read as push reads it — a regular file, no
    symlink followed, never blocking, bounded — and silently: a file this process cannot read holds
    nothing it could show, and what is wrong with it is said by the commands that need the token."""
    if not path:
        return
    with contextlib.suppress(OSError):
        remember(read_bounded(path, MAX_TOKEN_BYTES, follow_symlinks=False).decode("ascii", errors="replace"))


def configured_language(explicit: str | None = None) -> str | None:
    """``[terminal] language`` of the configuration a command will read, or None, without validating:
    the language must be known before ``--help`` or a config error is printed, and :func:`load`
    still refuses a bad value (or a bad file) in that language afterwards."""
    try:
        data = tomllib.loads(read_config_bytes(str(resolve_path(explicit))).decode("utf-8"))
        language = data.get("terminal", {}).get("language")
    except (ConfigError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, AttributeError):
        return None
    return language if isinstance(language, str) and language else None


def read_config_bytes(path: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of the configuration file, or :class:`ConfigError` saying what is wrong with the file.

    Read through :func:`posdiag.core.files.read_bounded`: a FIFO, a device such as /dev/zero or a
    directory is refused before a byte is read, and no more than ``limit`` + 1 bytes are ever read.
    """
    try:
        return read_bounded(path, limit)
    except FileNotFoundError:
        raise ConfigError(path, [Message(N_("file not found: expected a readable TOML file"))]) from None
    except PermissionError:
        raise ConfigError(path, [Message(N_("permission denied: the agent cannot read this file"))]) from None
    except NotRegularFile as exc:
        raise ConfigError(path, [Message(N_("is {kind}: expected a regular TOML file"), kind=exc.kind)]) from None
    except FileTooLarge:
        raise ConfigError(path, [Message(N_("larger than {kib} KiB: this is not a posdiag configuration"),
                                         kib=limit // 1024)]) from None
    except OSError as exc:
        raise ConfigError(path, [Message(N_("cannot read: {error}"), error=exc.strerror)]) from None


def check_paths(settings: Settings) -> list[str]:
    """What ``config check`` adds to the file's own validation: the paths as they are on this host.

    Kept out of :func:`load` because the file system changes under a running agent: a txlog that is
    not a regular file is a finding of the txlog probe at run time, not a reason to refuse to start.
    """
    problems: list[str] = []
    txlog = settings.txlog.path
    if txlog and os.path.exists(txlog):
        kind = file_kind(os.stat(txlog).st_mode)
        if kind != "a regular file":
            problems.append(Message(N_("txlog.path: expected a regular file, {path!r} is {kind} (it would never be read)"),
                                    path=txlog, kind=kind))
    state = settings.daemon.state_dir
    if os.path.lexists(state):
        if not os.path.isdir(state):
            problems.append(Message(N_("daemon.state_dir: expected a directory, {path!r} is {kind}"), path=state,
                                    kind=file_kind(os.lstat(state).st_mode)))
    else:
        parent = _existing_parent(state)
        if not os.path.isdir(parent):
            problems.append(Message(N_("daemon.state_dir: cannot be created: {path!r} is {kind}"), path=parent,
                                    kind=file_kind(os.stat(parent).st_mode)))
    sock = settings.daemon.control_socket
    if os.path.lexists(sock) and not stat.S_ISSOCK(os.lstat(sock).st_mode):
        problems.append(Message(N_("daemon.control_socket: {path!r} is {kind}, not a socket; "
                                   "the daemon will refuse to start rather than remove it"), path=sock,
                                kind=file_kind(os.lstat(sock).st_mode)))
    return problems


def _existing_parent(path: str) -> str:
    probe = os.path.abspath(path)
    while not os.path.lexists(probe):
        probe = os.path.dirname(probe)
    return probe
