"""Load and validate ``posdiag.toml`` into typed, frozen settings.

The agent never starts on a guess: every key is checked against the declared sections below, and
a bad file is refused with the file, the key and what was expected (:class:`ConfigError`). The
dataclasses are the schema — a field's type, default and ``meta`` (range, choices) are all the
validator needs, so adding a key is adding a field.
"""

from __future__ import annotations

import dataclasses
import difflib
import functools
import math
import os
import re
import socket
import stat
import sys
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, Union

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

from posdiag.agent import i18n
from posdiag.agent.i18n import N_
from posdiag.agent.message import Message, translated
from posdiag.agent.paths import default_config_path

SYSTEM_CONFIG = Path("/etc/posdiag/posdiag.toml")
#: a configuration larger than this is refused unread: posdiag.toml with every key is ~6 KiB
MAX_CONFIG_BYTES = 1024 * 1024
#: arrays and tables nested deeper than this are refused: the schema needs three levels
MAX_DEPTH = 16
#: the longest AF_UNIX socket path: sun_path holds 108 bytes, the last one the terminating NUL
MAX_SOCKET_PATH = 107
#: any integer beyond this is refused before it is compared or converted (no key needs more)
MAX_INTEGER = 2**53


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


@dataclass(frozen=True)
class SystemSettings:
    max_load_per_cpu: float = _f(2.0, **_range(0.1, 1000))
    max_temp_c: float = _f(85.0, **_range(20, 150))
    min_uptime_s: float = _f(120.0, doc="a POS process younger than this counts as restarted",
                             **_range(0, 86400))


@dataclass(frozen=True)
class DiskSettings:
    paths: list[str] = _f(["/", "/var/tmp"])
    min_free_mb: int = _f(500, **_range(0, 10_000_000))
    min_free_inodes_percent: float = _f(5.0, **_range(0, 100))
    write_test: bool = _f(True)
    slow_write_ms: float = _f(1000.0, **_range(1, 60000))


@dataclass(frozen=True)
class ClockSettings:
    ntp_server: str = _f("", pattern=r"^(\[[0-9a-fA-F:]+\]|[^\s:]+)?(:\d{1,5})?$",
                         pattern_doc=N_("host or host:port"))
    max_offset_s: float = _f(30.0, **_range(0.001, 86400))


@dataclass(frozen=True)
class TxlogSettings:
    path: str = _f("")
    pattern: str = _f(r"^(?P<ts>\S+ \S+) .*?code=(?P<code>\d+)(?: .*?rc=(?P<response>\w\w))?", regex=True)
    window_min: float = _f(15.0, **_range(0.1, 10080))


@dataclass(frozen=True)
class ServerSettings:
    url: str = _f("", pattern=r"^(https?://[^\s/?#]+(/[^\s?#]*)?)?$", pattern_doc=N_("an https:// URL (no query or fragment)"))
    token_file: str = _f("")
    ca_file: str = _f("")
    spool_max_mb: float = _f(50.0, **_range(1, 100_000))
    retry_max_s: float = _f(60.0, doc="cap of the backoff between failed pushes", **_range(1, 86400))
    timeout_s: float = _f(15.0, doc="one push request gives up after this many seconds", **_range(0.5, 300))
    allow_insecure: bool = _f(False)


@dataclass(frozen=True)
class DaemonSettings:
    interval_s: float = _f(300.0, **_range(5, 86400))
    state_dir: str = _f("/var/lib/posdiag")
    control_socket: str = _f("/run/posdiag/control.sock")
    history_days: float = _f(30.0, **_range(0.01, 3650))
    history_max_mb: float = _f(50.0, **_range(0.1, 100_000))
    event_min_gap_s: float = _f(15.0, doc="2824s within this many seconds of an event sweep fold into the next one",
                                **_range(0, 3600))


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


# ---------------------------------------------------------------------------------------------
# validation

#: What a key of each type expects, said whole (a list's words are not built from its items' words:
#: Chinese does not make plurals with "s").
_TYPE_WORDS = {str: N_("a string"), int: N_("an integer"), float: N_("a number"), bool: N_("true or false")}
_LIST_WORDS = {str: N_("a list of strings"), int: N_("a list of integers"), float: N_("a list of numbers")}
#: What a TOML value is, with the value shown after it.
_GOT_WORDS = {str: N_("string {value}"), bool: N_("boolean {value}"), int: N_("integer {value}"),
              float: N_("number {value}"), list: N_("list {value}"), dict: N_("table {value}")}


def _describe(tp: Any) -> str:
    """What a value of type ``tp`` must be, as a :class:`Message` ("an integer", "one of 'a', 'b'")."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return Message(N_("one of {choices}"), choices=", ".join(repr(a) for a in typing.get_args(tp)))
    if origin is list:
        item = typing.get_args(tp)[0]
        return Message(_LIST_WORDS[item]) if item in _LIST_WORDS else Message(N_("a list of {item}"), item=_describe(item))
    if origin in (Union, types.UnionType):
        first, *rest = typing.get_args(tp)
        said = _describe(first)
        for other in rest:
            said = Message(N_("{first} or {second}"), first=said, second=_describe(other))
        return said
    return Message(_TYPE_WORDS[tp]) if tp in _TYPE_WORDS else getattr(tp, "__name__", str(tp))


def _got(value: Any) -> str:
    """What a TOML value is and the value itself ("string 'x'"), long lists and tables elided."""
    shown = repr(value) if not isinstance(value, (dict, list)) or len(repr(value)) < 40 else "…"
    words = _GOT_WORDS.get(type(value))
    return Message(words, value=shown) if words else f"{type(value).__name__} {shown}"


def _matches_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(_matches_type(value, a) for a in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(_matches_type(v, typing.get_args(tp)[0]) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def _unknown(key: str, where: str, known: list[str]) -> str:
    """An unknown key (``where`` is its full name) or section (``where`` is ``[name]``), with the
    closest known name, or all of them."""
    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if where.startswith("["):
        if close:
            return Message(N_("{section}: unknown section (did you mean '{suggestion}'?)"), section=where,
                           suggestion=close[0])
        return Message(N_("{section}: unknown section (known sections: {known})"), section=where,
                       known=", ".join(sorted(known)))
    if close:
        return Message(N_("{key}: unknown key (did you mean '{suggestion}'?)"), key=where, suggestion=close[0])
    return Message(N_("{key}: unknown key (known keys: {known})"), key=where, known=", ".join(sorted(known)))


def _build(cls: type, table: Any, where: str, problems: list[str]) -> Any:
    if not isinstance(table, dict):
        problems.append(Message(N_("[{section}]: expected a table, got {got}"), section=where, got=_got(table)))
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            problems.append(_unknown(key, f"{where}.{key}", list(fields)))
            continue
        checked = _check_value(value, hints[key], fields[key].metadata, f"{where}.{key}", problems)
        if checked is not _INVALID:
            values[key] = checked
    for name, f in fields.items():
        if f.metadata.get("required") and name not in table:
            problems.append(Message(N_("{key}: missing, expected {expected}"), key=f"{where}.{name}",
                                    expected=_describe(hints[name])))
    try:
        return cls(**values)
    except TypeError:  # only reachable when a required value was refused above
        return None


_INVALID = object()


def _check_value(value: Any, tp: Any, meta: Any, key: str, problems: list[str]) -> Any:
    if not _matches_type(value, tp):
        problems.append(Message(N_("{key}: expected {expected}, got {got}"), key=key, expected=_describe(tp),
                                got=_got(value)))
        return _INVALID
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = _number_problem(value, meta.get("min"), meta.get("max"))
        if problem:
            problems.append(Message(N_("{key}: {problem}"), key=key, problem=problem))
            return _INVALID
    if tp is float:
        value = float(value)  # safe now: the value is finite and within its range
    if meta.get("pattern") and isinstance(value, str) and not re.fullmatch(meta["pattern"], value):
        expected = Message(meta["pattern_doc"]) if "pattern_doc" in meta else meta["pattern"]
        problems.append(Message(N_("{key}: expected {expected}, got {value!r}"), key=key, expected=expected,
                                value=shown_safely(value)))
        return _INVALID
    if meta.get("regex") and value:
        try:
            re.compile(value)
        except re.error as exc:
            problems.append(Message(N_("{key}: expected a valid regular expression, got {value!r} ({error})"),
                                    key=key, value=value, error=str(exc)))
            return _INVALID
    return value


def _cross_checks(settings: Settings, problems: list[str]) -> None:
    """Rules that span keys: what a reader kind needs, where files must exist, what must be an address."""
    _reader_checks(settings.reader, problems)
    _network_checks(settings, problems)
    for i, path in enumerate(settings.disk.paths):
        if not os.path.isabs(path):
            problems.append(Message(N_("{key}: expected an absolute path, got {value!r}"), key=f"disk.paths[{i}]",
                                    value=path))
    sock = settings.daemon.control_socket
    if len(os.fsencode(sock)) > MAX_SOCKET_PATH:
        problems.append(Message(N_("daemon.control_socket: expected a path of at most {limit} bytes (the limit of "
                                   "a Unix socket address), got {size} bytes"), limit=MAX_SOCKET_PATH,
                                size=len(os.fsencode(sock))))


def _number_problem(value: float, lo: float | None, hi: float | None) -> str | None:
    """Why a number is refused, or None. Checked on the value as TOML gave it, before any conversion:
    a 400-digit integer must not reach ``float()`` or a format string, and NaN compares false with
    every bound, so it would pass a plain range test."""
    if isinstance(value, float) and not math.isfinite(value):
        return Message(N_("expected a finite number, got {value!r}"), value=value)
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        return Message(N_("expected a number from {lo} to {hi}, got an integer of {digits} digits"), lo=_show(lo),
                       hi=_show(hi), digits=len(str(abs(value))))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return Message(N_("expected a number from {lo} to {hi}, got {value:g}"), lo=_show(lo), hi=_show(hi), value=value)
    return None


def _show(bound: float | None) -> str:
    return Message(N_("any")) if bound is None else f"{bound:g}"


def _reader_checks(reader: ReaderSettings, problems: list[str]) -> None:
    """What each reader kind and protocol needs besides its own keys."""
    if reader.kind == "serial" and not reader.port:
        problems.append(Message(N_("reader.port: expected a serial device path when reader.kind = 'serial'")))
    if reader.kind == "usb" and not reader.usb:
        problems.append(Message(N_("reader.usb: expected VID:PID when reader.kind = 'usb'")))
    if reader.protocol == "custom" and reader.kind == "serial" and not reader.request:
        problems.append(Message(N_("reader.request: expected hex bytes when reader.protocol = 'custom'")))
    if reader.protocol != "custom" and reader.protocol not in presets():
        hint = difflib.get_close_matches(reader.protocol, list(presets()), n=1)
        known = ", ".join(sorted(presets()))
        if hint:
            problems.append(Message(N_("reader.protocol: expected 'custom' or one of {known}, got {value!r} "
                                       "(did you mean '{suggestion}'?)"), known=known, value=reader.protocol,
                                    suggestion=hint[0]))
        else:
            problems.append(Message(N_("reader.protocol: expected 'custom' or one of {known}, got {value!r}"),
                                    known=known, value=reader.protocol))


def _network_checks(settings: Settings, problems: list[str]) -> None:
    for i, host in enumerate(settings.payment_hosts):
        if host.ca_file and not os.path.isfile(host.ca_file):
            problems.append(Message(N_("{key}: expected an existing file, got {value!r}"), key=f"payment_hosts[{i}].ca_file",
                                    value=host.ca_file))
        for addr in host.fallback_addresses:
            if not is_address(addr):
                problems.append(Message(N_("{key}: expected IP addresses, got {value!r}"),
                                        key=f"payment_hosts[{i}].fallback_addresses", value=addr))
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


@functools.lru_cache(maxsize=1)
def presets() -> dict[str, dict]:
    """The reader protocol presets of the packaged ``readers.toml`` (name → table)."""
    from posdiag.agent.paths import data_dir

    return tomllib.loads((data_dir() / "readers.toml").read_text(encoding="utf-8"))["presets"]


def is_address(text: str) -> bool:
    """An IPv4 or IPv6 address literal (not a name)."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse(data: dict[str, Any], source: str) -> Settings:
    """Validate an already-decoded TOML document. Raises :class:`ConfigError` listing all problems."""
    problems: list[str] = []
    sections = {f.name: f for f in dataclasses.fields(Settings) if f.name != "source"}
    hints = typing.get_type_hints(Settings)
    built: dict[str, Any] = {}
    for key, value in data.items():
        if key not in sections:
            problems.append(_unknown(key, f"[{key}]", list(sections)))
            continue
        if key == "payment_hosts":
            if not isinstance(value, list):
                problems.append(Message(N_("payment_hosts: expected an array of tables [[payment_hosts]], got {got}"),
                                        got=_got(value)))
                continue
            hosts = [_build(PaymentHost, v, f"payment_hosts[{i}]", problems) for i, v in enumerate(value)]
            built[key] = [h for h in hosts if h is not None]
        else:
            built[key] = _build(hints[key], value, key, problems)
    settings = Settings(**built, source=source) if not problems else None
    if settings is not None:
        _cross_checks(settings, problems)
        _server_checks(settings.server, problems)
    if problems:
        raise ConfigError(source, problems)
    return settings  # type: ignore[return-value]


def _server_checks(server: ServerSettings, problems: list[str]) -> None:
    """A bearer token is never sent in clear text unless explicitly allowed (for a test bench)."""
    if not server.url:
        return
    if server.url.startswith("http://") and not server.allow_insecure:
        problems.append(Message(N_("server.url: expected https:// (plain http:// would send the token and reports "
                                   "unencrypted; set server.allow_insecure = true only for testing), got {value!r}"),
                                value=shown_safely(server.url)))
    if not server.token_file:
        problems.append(Message(N_("server.token_file: expected the path of the file holding this terminal's token "
                                   "when server.url is set")))


def shown_safely(value: str) -> str:
    """A value fit for an error message or a log: a URL's user:password and query are cut out (a
    refused URL may carry a password or a token, and errors end up in logs and tickets)."""
    value = re.sub(r"(?i)^([a-z][a-z0-9+.-]*://)[^/@\s]*@", r"\1<redacted>@", value)
    return re.sub(r"[?#].*$", "?<redacted>", value) if "://" in value else value


def resolve_path(explicit: str | None = None) -> Path:
    """The config file to use, in DESIGN.md's order: --config, $POSDIAG_CONFIG, /etc, packaged."""
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
    raw = read_bounded(str(path))
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise ConfigError(str(path), [Message(N_("not UTF-8 text ({reason} at byte {start})"), reason=exc.reason,
                                              start=exc.start)]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(str(path), [Message(N_("TOML syntax error: {error}"), error=str(exc))]) from None
    except RecursionError:
        data = None
    if data is None or _depth(data) > MAX_DEPTH:
        raise ConfigError(str(path), [Message(N_("arrays or tables nested more than {depth} deep: this is not a posdiag "
                                                 "configuration (the schema needs three levels)"), depth=MAX_DEPTH)])
    return parse(data, str(path))


def configured_language(explicit: str | None = None) -> str | None:
    """``[terminal] language`` of the configuration a command will read, or None, without validating:
    the language must be known before ``--help`` or a config error is printed, and :func:`load`
    still refuses a bad value (or a bad file) in that language afterwards."""
    try:
        data = tomllib.loads(read_bounded(str(resolve_path(explicit))).decode("utf-8"))
        language = data.get("terminal", {}).get("language")
    except (ConfigError, UnicodeDecodeError, tomllib.TOMLDecodeError, RecursionError, AttributeError):
        return None
    return language if isinstance(language, str) and language else None


def read_bounded(path: str, limit: int = MAX_CONFIG_BYTES) -> bytes:
    """The bytes of a regular file of at most ``limit`` bytes, or :class:`ConfigError`.

    Opened non-blocking, so a FIFO answers at once instead of waiting for a writer, and checked with
    ``fstat`` on the open descriptor: a FIFO, a device such as /dev/zero or a directory is refused
    before a byte is read, and no more than ``limit`` + 1 bytes are ever read.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | getattr(os, "O_NOCTTY", 0))
    except FileNotFoundError:
        raise ConfigError(path, [Message(N_("file not found: expected a readable TOML file"))]) from None
    except PermissionError:
        raise ConfigError(path, [Message(N_("permission denied: the agent cannot read this file"))]) from None
    except OSError as exc:
        raise ConfigError(path, [Message(N_("cannot open: {error}"), error=exc.strerror)]) from None
    try:
        kind = file_kind(os.fstat(fd).st_mode)
        if kind != "a regular file":
            raise ConfigError(path, [Message(N_("is {kind}: expected a regular TOML file"), kind=kind)])
        chunks, size = [], 0
        while size <= limit:
            chunk = os.read(fd, min(65536, limit + 1 - size))
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
    except OSError as exc:
        raise ConfigError(path, [Message(N_("cannot read: {error}"), error=exc.strerror)]) from None
    finally:
        os.close(fd)
    if size > limit:
        raise ConfigError(path, [Message(N_("larger than {kib} KiB: this is not a posdiag configuration"),
                                         kib=limit // 1024)])
    return b"".join(chunks)


def file_kind(mode: int) -> str:
    """'a regular file', 'a FIFO', 'a character device', … for an ``st_mode``."""
    for test, name in ((stat.S_ISREG, N_("a regular file")), (stat.S_ISDIR, N_("a directory")),
                       (stat.S_ISFIFO, N_("a FIFO")), (stat.S_ISCHR, N_("a character device")),
                       (stat.S_ISBLK, N_("a block device")), (stat.S_ISSOCK, N_("a socket")),
                       (stat.S_ISLNK, N_("a symbolic link"))):
        if test(mode):
            return Message(name)
    return Message(N_("a special file"))


def _depth(data: Any) -> int:
    """How deeply lists and tables nest in ``data`` (iterative: no recursion to exhaust)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > MAX_DEPTH:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack += [(child, level + 1) for child in children if isinstance(child, (dict, list))]
    return deepest


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
