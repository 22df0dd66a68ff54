"""Configuration: the packaged default is complete and valid; bad files are refused clearly (exit 3)."""

from __future__ import annotations

import dataclasses
import json
import os
import re
import typing
from pathlib import Path

import pytest
from labs.commands import REPO, run_cli, run_posdiag
from posdiag.core import settings as config
from posdiag.core.paths import default_config_path

BAD_CONFIGS = [
    # (id, file text, words the message must contain)
    ("unknown-key", "[memory]\nmin_avail_mb = 100\n", ["memory.min_avail_mb", "did you mean 'min_available_mb'"]),
    ("unknown-section", "[netwrk]\ntimeout_s = 1\n", ["[netwrk]", "did you mean 'network'"]),
    ("wrong-type", "[network]\ntimeout_s = \"fast\"\n", ["network.timeout_s", "expected a number", "string 'fast'"]),
    ("bool-not-int", "[network]\nping_count = true\n", ["network.ping_count", "expected an integer"]),
    ("bool-not-float", "[network]\ntimeout_s = true\n", ["network.timeout_s", "expected a number", "boolean"]),
    ("no-tcp-attempt", "[network]\ntcp_attempts = 0\n", ["network.tcp_attempts: expected a number from 1 to 20, got 0"]),
    ("out-of-range", "[[payment_hosts]]\nhost = \"h\"\nport = 70000\n", ["payment_hosts[0].port", "1 to 65535", "70000"]),
    ("negative", "[memory]\nmin_available_mb = -5\n", ["memory.min_available_mb", "expected a number from 0"]),
    # limits and values in positional notation: 10000000, never 1e+07
    ("above-a-large-limit", "[disk]\nmin_free_mb = 20000000\n",
     ["disk.min_free_mb: expected a number from 0 to 10000000, got 20000000"]),
    ("large-fraction-out-of-range", "[network]\nmax_rtt_ms = 12345678.5\n",
     ["network.max_rtt_ms: expected a number from 1 to 60000, got 12345678.5"]),
    ("tiny-below-the-range", "[diagnosis]\ndeadline_s = 0.0000001\n",
     ["diagnosis.deadline_s", "got 0.0000001"]),
    ("bad-choice", "[reader]\nkind = \"bluetooth\"\n", ["reader.kind", "one of 'serial', 'usb', 'none'", "bluetooth"]),
    ("syntax", "[memory]\nmin_available_mb = \n", ["TOML syntax error", "line 2"]),
    ("missing-host", "[[payment_hosts]]\nport = 443\n", ["payment_hosts[0].host", "missing"]),
    ("bad-regex", "[txlog]\npattern = \"(unclosed\"\n", ["txlog.pattern", "regular expression"]),
    ("serial-without-port", "[reader]\nkind = \"serial\"\n", ["reader.port", "serial device path"]),
    ("bad-gateway", "[network]\ngateway = \"router.local\"\n", ["network.gateway", "IP address"]),
    ("bad-usb-id", "[reader]\nkind = \"usb\"\nusb = \"zz:1\"\n", ["reader.usb", "VID:PID"]),
    ("relative-disk-path", "[disk]\npaths = [\"var\"]\n", ["disk.paths[0]", "absolute path"]),
    ("section-not-table", "memory = 5\n", ["[memory]", "expected a table"]),
    ("fallback-not-an-address", "[[payment_hosts]]\nhost = \"h\"\nfallback_addresses = [\"pay.example\"]\n",
     ["payment_hosts[0].fallback_addresses", "IP addresses", "pay.example"]),
    ("fallback-not-a-list", "[[payment_hosts]]\nhost = \"h\"\nfallback_addresses = \"198.51.100.7\"\n",
     ["payment_hosts[0].fallback_addresses", "expected a list"]),
    ("poll-too-often", "[server]\npoll_s = 2\n", ["server.poll_s", "expected 0 (no remote requests) or a number from 5 to 86400",
                                                   "got 2"]),
    ("poll-negative", "[server]\npoll_s = -1\n", ["server.poll_s", "expected a number from 0 to 86400"]),
    ("timeout-past-the-deadline", "[network]\ntimeout_s = 10\n",
     ["network.timeout_s", "expected at most 1.5 s", "diagnosis.deadline_s = 3 s", "got 10"]),
    ("reader-timeout-past-a-short-deadline",
     "[diagnosis]\ndeadline_s = 1\n[network]\ntimeout_s = 0.5\n[reader]\nkind = \"serial\"\nport = \"/dev/ttyS9\"\n",
     ["reader.timeout_s", "expected at most 0.5 s", "got 1"]),
    ("ntp-port-out-of-range", "[clock]\nntp_server = \"ntp.example:99999\"\n",
     ["clock.ntp_server", "a port from 1 to 65535", "'99999'"]),
    ("resolver-port-zero", "[network]\ndns_servers = [\"192.0.2.53#0\"]\n", ["network.dns_servers", "a port from 1 to 65535"]),
    ("server-port-out-of-range", "[server]\nurl = \"https://collector.example:70000/\"\ntoken_file = \"/t\"\n",
     ["server.url", "a port from 1 to 65535", "'70000'"]),
]


@pytest.mark.parametrize("text,words", [(t, w) for _, t, w in BAD_CONFIGS], ids=[i for i, _, _ in BAD_CONFIGS])
def test_bad_config_names_file_key_and_expectation_and_exits_3(tmp_path: Path, text: str, words: list[str]):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    for command in (["diagnose"], ["config", "check"]):
        rc, out, err = run_cli(*command, "--config", str(path))
        assert rc == 3, (command, err)
        assert str(path) in err
        for word in words:
            assert word in err, f"{word!r} not in {err!r}"
        assert out == ""


def test_missing_config_file_exits_3(tmp_path: Path):
    rc, _, err = run_cli("config", "check", "--config", str(tmp_path / "nope.toml"))
    assert rc == 3 and "file not found" in err and "nope.toml" in err


def test_all_problems_are_reported_at_once(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[memory]\nmin_available_mb = 'x'\nmax_swap_percent = 200\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path))
    assert len(caught.value.problems) == 2


def test_config_check_names_a_refused_value_and_a_rule_across_keys_at_once(tmp_path: Path):
    """A refused value (ping_count) no longer hides the rules that span keys (a port inside ntp_server)."""
    path = tmp_path / "bad.toml"
    path.write_text("[network]\nping_count = 400\ntimeout_s = 10\n[clock]\nntp_server = \"127.0.0.1:0\"\n")
    rc, _, err = run_cli("config", "check", "--config", str(path))
    assert rc == 3
    assert "network.ping_count: expected a number from 1 to 100, got 400" in err
    assert "clock.ntp_server: expected a port from 1 to 65535, got '0'" in err
    assert "network.timeout_s: expected at most 1.5 s" in err


@pytest.mark.parametrize(("text", "refused", "untrue"), [
    ("[reader]\nkind = \"serial\"\nport = 5\n", "reader.port: expected", "expected a serial device path"),
    ("[diagnosis]\ndeadline_s = 'soon'\n[network]\ntimeout_s = 2.0\n", "diagnosis.deadline_s: expected",
     "network.timeout_s: expected at most"),
    ("[clock]\nntp_server = 7\n[network]\ndns_servers = ['127.0.0.1#0']\n", "clock.ntp_server: expected",
     None),
], ids=["port-not-a-string", "deadline-not-a-number", "other-port-still-checked"])
def test_a_rule_across_keys_is_left_out_only_when_a_key_it_reads_was_refused(tmp_path: Path, text, refused, untrue):
    """The default standing in for a refused value must not make a rule say something untrue (a serial
    reader "without a port" when its port was given, wrongly typed); the rules that do not read it still run."""
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path))
    said = "\n".join(caught.value.problems)
    assert refused in said
    if untrue:
        assert untrue not in said, said
    else:
        assert "network.dns_servers: expected a port from 1 to 65535, got '0'" in said


def test_packaged_default_is_valid_and_probes_no_remote_host():
    settings = config.load(str(default_config_path()))
    assert settings.payment_hosts == []
    assert settings.clock.ntp_server == ""
    assert settings.reader.kind == "none"
    assert settings.server.url == ""


def sections_of(text: str) -> dict[str, str]:
    """Each ``[section]`` of a TOML file (``# [[payment_hosts]]`` too, commented out) and its lines up
    to the next header: a key is looked for in its own section, not anywhere in the file."""
    sections: dict[str, list[str]] = {}
    lines: list[str] = []
    for line in text.splitlines():
        header = re.fullmatch(r"(?:#\s*)?\[\[?([a-z_]+)\]\]?\s*", line)
        if header:
            lines = sections.setdefault(header.group(1), [])
        else:
            lines.append(line)
    return {name: "\n".join(body) for name, body in sections.items()}


def undocumented_keys(text: str) -> list[str]:
    """Keys of the settings that ``text`` does not list, each in its own section with a comment
    (payment hosts: commented out, as the default has none)."""
    sections = sections_of(text)
    missing = []
    for name, cls in typing.get_type_hints(config.Settings).items():
        if name == "source":
            continue
        cls = config.PaymentHost if name == "payment_hosts" else cls
        pattern = "^# {key}\\s*=" if name == "payment_hosts" else "^{key}\\s*=.*#"
        missing += [f"{name}.{key.name}" for key in dataclasses.fields(cls)
                    if not re.search(pattern.format(key=key.name), sections.get(name, ""), re.M)]
    return missing


def test_packaged_default_names_every_key_with_a_comment():
    assert undocumented_keys(default_config_path().read_text()) == []


def test_a_key_listed_only_in_another_section_is_missing_from_its_own():
    """[reader] without its timeout_s: [network] and [server] still have one, which must not count."""
    text = default_config_path().read_text()
    without = re.sub(r"^(\[reader\][^[]*?)^timeout_s\s*=.*?\n", r"\1", text, count=1, flags=re.M | re.S)
    assert without.count("\ntimeout_s =") == text.count("\ntimeout_s =") - 1
    assert undocumented_keys(without) == ["reader.timeout_s"]


def test_lookup_order_prefers_flag_then_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    env_file = tmp_path / "env.toml"
    env_file.write_text("[terminal]\nid = 'from-env'\n")
    flag_file = tmp_path / "flag.toml"
    flag_file.write_text("[terminal]\nid = 'from-flag'\n")
    monkeypatch.setenv("POSDIAG_CONFIG", str(env_file))
    assert config.load().terminal_id == "from-env"
    assert config.load(str(flag_file)).terminal_id == "from-flag"
    monkeypatch.delenv("POSDIAG_CONFIG")
    expected = config.SYSTEM_CONFIG if config.SYSTEM_CONFIG.exists() else default_config_path()
    assert config.resolve_path() == expected


def test_config_check_reports_ok_for_a_good_file(config_file):
    path = config_file(terminal={"id": "lane-03"}, payment_hosts=[{"host": "127.0.0.1", "port": 8443}])
    rc, out, _ = run_cli("config", "check", "--config", str(path))
    assert rc == 0
    assert "OK" in out and "lane-03" in out and "127.0.0.1:8443" in out


def test_a_message_is_said_in_the_translator_asked_for_else_in_the_process_s_language():
    """The collector renders a refusal for each reader in their own language while the process speaks
    English: the translator passed wins over the process's."""
    import stat

    from posdiag.core import i18n
    from posdiag.core.files import NotRegularFile, file_kind
    from posdiag.core.message import translated

    kind = file_kind(stat.S_IFIFO)
    assert i18n.active() == "en"
    assert translated(kind) == "a FIFO" == translated(kind, i18n.translator("en"))
    assert translated(kind, i18n.translator("zh_CN")) == i18n.translator("zh_CN").tr("a FIFO") != "a FIFO"
    assert translated(NotRegularFile("/x", kind)) == "/x is a FIFO, not a regular file"  # an exception: its own words


def test_bad_config_reads_in_chinese_under_a_chinese_locale(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[network]\nping_count = \"x\"\ntimeout = 3\n")
    proc = run_posdiag("config", "check", "--config", str(path), env={**os.environ, "LANG": "zh_CN.UTF-8"})
    assert proc.returncode == 3 and proc.stdout == ""
    assert proc.stderr.startswith("posdiag: 配置无效：\n")
    assert f"{path}：network.ping_count：应为整数，实际为字符串 'x'" in proc.stderr  # file, key, expected, got
    assert f"{path}：network.timeout：未知的配置项（是不是想写 'timeout_s'？）" in proc.stderr


def test_terminal_language_makes_output_chinese_and_lang_en_overrides_it(config_file, speak_chinese):
    path = config_file(terminal={"id": "lane-03", "language": "zh_CN"})
    rc, out, _ = run_cli("config", "check", "--config", str(path))
    said = out.replace("\n  ", "")  # the line is wrapped to 80 columns where the path makes it longer
    assert rc == 0 and said.startswith(f"{path}：正常（终端 lane-03，支付主机：无，读卡器：none，推送：未配置）")
    rc, out, _ = run_cli("--lang", "en", "config", "check", "--config", str(path))
    said = out.replace("\n  ", " ")
    assert rc == 0 and said.startswith(f"{path}: OK (terminal lane-03, payment hosts: none, reader: none")


def test_terminal_language_chinese_also_speaks_the_files_other_refusals(config_file, speak_chinese):
    path = config_file(terminal={"language": "zh_CN"}, reader={"kind": "usb", "usb": "zz:1"})
    rc, _, err = run_cli("config", "check", "--config", str(path))
    assert rc == 3 and "reader.usb：应为十六进制的 VID:PID，例如 0b00:0084，实际为 'zz:1'" in err


def test_unknown_terminal_language_is_refused_naming_the_key(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[terminal]\nlanguage = \"fr\"\n")
    rc, out, err = run_cli("config", "check", "--config", str(path))
    assert rc == 3 and out == ""
    assert f"{path}: terminal.language: expected one of '', 'en', 'zh_CN', got string 'fr'" in err


def test_a_refused_configuration_is_logged_in_english_whatever_the_process_speaks(tmp_path: Path, speak_chinese):
    path = tmp_path / "c.toml"
    path.write_text("[network]\nping_count = \"x\"\n")
    with pytest.raises(config.ConfigError) as caught:
        config.load(str(path))
    assert "network.ping_count: expected an integer, got string 'x'" in str(caught.value)  # what the daemon logs
    assert "network.ping_count：应为整数，实际为字符串 'x'" in caught.value.render()  # what a person reads


def test_integers_are_accepted_where_numbers_are_expected(tmp_path: Path):
    path = tmp_path / "c.toml"
    path.write_text("[network]\ntimeout_s = 1\n")
    assert config.load(str(path)).network.timeout_s == 1.0
    assert isinstance(config.load(str(path)).network.timeout_s, float)


def test_unreadable_config_is_refused(tmp_path: Path):
    if os.geteuid() == 0:
        path = tmp_path
        rc, _, err = run_cli("config", "check", "--config", str(path))
        assert rc == 3 and "directory" in err
    else:
        path = tmp_path / "c.toml"
        path.write_text("")
        path.chmod(0)
        rc, _, err = run_cli("config", "check", "--config", str(path))
        assert rc == 3 and "permission denied" in err


def numeric_keys() -> dict[str, tuple[float, float, type]]:
    """Every number the configuration takes, with its range and type, as the settings declare them."""
    out = {}
    for section, cls in typing.get_type_hints(config.Settings).items():
        if section == "source":
            continue
        cls = config.PaymentHost if section == "payment_hosts" else cls
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            if hints[f.name] in (int, float) and f.metadata.get("min") is not None:
                out[f"{section}.{f.name}"] = (f.metadata["min"], f.metadata["max"], hints[f.name])
    return out


def documented_ranges() -> dict[str, tuple[str, str]]:
    """key → (lo, hi) as docs/configuration.md's "allowed" column gives them ("1..100")."""
    ranges = {}
    for part in (REPO / "docs" / "configuration.md").read_text(encoding="utf-8").split("### `")[1:]:
        heading, _, body = part.partition("`")
        for key, lo, hi in re.findall(r"^\| `(\w+)` \| [^|]* \| (-?[\d.]+)(?:, or -?[\d.]+)?\.\.(-?[\d.]+) \|", body, re.M):
            ranges[f"{heading.strip('[]')}.{key}"] = (lo, hi)
    return ranges


def test_every_numeric_range_is_the_documented_one():
    """A range widened or narrowed in the code, and not in the reference, is caught here."""
    from posdiag.core.numfmt import plain

    assert {key: (plain(lo), plain(hi)) for key, (lo, hi, _) in numeric_keys().items()} == documented_ranges()


#: what a key's extreme needs beside it to pass the cross-checks (a timeout fits in half the deadline)
COMPANIONS = {"network.timeout_s": "[diagnosis]\ndeadline_s = 120\n", "diagnosis.deadline_s": "[network]\ntimeout_s = 0.05\n"}


def _with(key: str, value: float) -> str:
    section, name = key.split(".")
    if section == "payment_hosts":
        return f'[[payment_hosts]]\nhost = "h"\n{name} = {value!r}\n'
    return f"[{section}]\n{name} = {value!r}\n" + COMPANIONS.get(key, "")


@pytest.mark.parametrize("key", sorted(numeric_keys()))
def test_a_number_is_taken_at_both_ends_of_its_range_and_refused_just_beyond(tmp_path, key):
    lo, hi, kind = numeric_keys()[key]
    step = 1 if kind is int else max(abs(lo), 1) / 100
    path = tmp_path / "c.toml"
    for value in (lo, hi):
        path.write_text(_with(key, kind(value)))
        config.load(str(path))  # accepted
    for value in (lo - step, hi + step):
        path.write_text(_with(key, kind(value)))
        with pytest.raises(config.ConfigError) as refused:
            config.load(str(path))
        named = key.replace("payment_hosts.", "payment_hosts[0].")
        assert [p for p in refused.value.problems if p.startswith(f"{named}: ")], (value, refused.value.problems)


@pytest.mark.parametrize("text,expected", [("", 30.0), ("[server]\npoll_s = 0\n", 0.0), ("[server]\npoll_s = 5\n", 5.0)],
                         ids=["default", "off", "minimum"])
def test_remote_requests_are_asked_for_every_30_s_by_default_or_never_with_0(text: str, expected: float):
    assert config.parse(config.tomllib.loads(text), "x.toml").server.poll_s == expected


# --- nothing sensitive by configuration ---------------------------------------------------------------

CARD_IN_CONFIG = [
    ("terminal.site", {"terminal": {"site": "4111 1111 1111 1111"}}, "4111111111111111"),
    ("terminal.id", {"terminal": {"id": ";5105105105105100=28121015432112345678?"}}, "5105105105105100"),
    ("server.token_file", {"server": {"url": "https://127.0.0.1:1", "token_file": "/etc/posdiag/6011000990139424"}},
     "6011000990139424"),
]


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
@pytest.mark.parametrize("key, sections, digits", CARD_IN_CONFIG, ids=[c[0] for c in CARD_IN_CONFIG])
def test_a_card_number_in_terminal_or_server_text_is_refused_by_its_key_alone(config_file, key, sections, digits, lang):
    path = config_file(**sections)
    rc, out, err = run_cli("--lang", lang, "config", "check", "--config", str(path))
    assert rc == 3 and out == ""
    said = {"en": "looks like a card number or card track data", "zh_CN": "看起来像卡号或磁道数据"}[lang]
    assert f"{key}{'：' if lang == 'zh_CN' else ': '}{said}" in err
    assert digits not in err.replace(" ", "")


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_config_check_shows_urls_without_their_query_values(config_file, tmp_path, lang):
    token = tmp_path / "token"
    token.write_text("tok_5f1d2c3b4a5968776655\n")
    token.chmod(0o600)
    path = config_file(server={"url": "https://127.0.0.1:8443/api", "token_file": str(token)},
                       payment_hosts=[{"name": "primary", "host": "127.0.0.1",
                                       "health_path": "/health?apikey=AK-77f3e1c9&lane=7"}])
    rc, out, err = run_cli("--lang", lang, "config", "check", "--config", str(path))
    assert rc == 0, err
    assert "https://127.0.0.1:8443/api" in out
    assert "primary /health?apikey=<redacted>&lane=<redacted>" in out  # the query's keys stay: they say what is sent
    assert "AK-77f3e1c9" not in out + err and "tok_5f1d" not in out + err


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_a_password_in_the_server_url_is_refused_without_being_repeated(config_file, tmp_path, lang):
    """requests would send user:password@ as Basic auth in place of the terminal's bearer token, and every
    push would be refused; config check says so before the daemon starts, and never echoes the password."""
    token = tmp_path / "token"
    token.write_text("tok_5f1d2c3b4a5968776655\n")
    token.chmod(0o600)
    path = config_file(server={"url": "https://ops:Pw-4u9xZq@127.0.0.1:8443/api", "token_file": str(token)})
    rc, out, err = run_cli("--lang", lang, "config", "check", "--config", str(path))
    assert rc == 3 and out == ""
    assert "server.url" in err and "user:password@" in err
    assert "Pw-4u9xZq" not in out + err and "tok_5f1d" not in out + err


def test_a_bad_configuration_is_one_unknown_plugin_line_for_monitoring(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[network]\ntimeout_s = 10\n")
    rc, out, err = run_cli("diagnose", "--format", "nagios", "--config", str(path))
    assert rc == 3
    assert out.count("\n") == 1 and out.startswith("POSDIAG UNKNOWN - invalid configuration: ")
    assert "network.timeout_s: expected at most 1.5 s" in out and "|" not in out
    assert "network.timeout_s" in err  # a person reading stderr is told as before


def test_a_bad_configuration_is_a_json_error_for_programs(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[network]\ntimeout_s = 10\n[clock]\nntp_server = \"ntp.example:0\"\n")
    for args in (["--json"], ["--format", "json"]):
        rc, out, err = run_cli("diagnose", *args, "--config", str(path))
        assert rc == 3
        error = json.loads(out)["error"]
        assert error["code"] == "config"
        assert "network.timeout_s" in error["message"] and "clock.ntp_server" in error["message"]
        assert len(error["problems"]) == 2 and all(str(path) in p for p in error["problems"])


def test_a_bad_configuration_error_reads_in_chinese_with_the_same_code(tmp_path: Path):
    path = tmp_path / "bad.toml"
    path.write_text("[network]\ntimeout_s = 10\n")
    rc, out, _ = run_cli("diagnose", "--json", "--lang", "zh_CN", "--config", str(path))
    error = json.loads(out)["error"]
    assert rc == 3 and error["code"] == "config" and "network.timeout_s：应不超过 1.5 秒" in error["message"]
    assert "应不超过 1.5 秒" in out  # written as a person reads it, not as \u escapes
    rc, out, _ = run_cli("diagnose", "--format", "nagios", "--lang", "zh_CN", "--config", str(path))
    assert out.startswith("POSDIAG UNKNOWN - ") and "应不超过 1.5 秒" in out


def test_config_check_says_which_paths_cannot_work_on_this_host_and_only_those(config_file, tmp_path):
    import socket

    pos_log, fifo, a_file = tmp_path / "pos.log", tmp_path / "pos.fifo", tmp_path / "a-file"
    pos_log.write_text("")
    os.mkfifo(fifo)
    a_file.write_text("")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.bind(str(tmp_path / "live.sock"))

    def problems(**sections) -> list[str]:
        return [str(p) for p in config.check_paths(config.load(str(config_file(**sections))))]

    try:
        fine = problems(txlog={"path": str(pos_log)}, daemon={"state_dir": str(tmp_path / "new" / "state"),
                                                              "control_socket": str(tmp_path / "live.sock")})
        assert fine == []  # a regular log, a state dir that can be made, a socket
        assert problems(txlog={"path": str(tmp_path / "not-yet.log")}) == []  # it may appear later
        said = problems(txlog={"path": str(fifo)}, daemon={"state_dir": str(a_file / "state"),
                                                           "control_socket": str(a_file)})
    finally:
        sock.close()
    assert [p.split(":", 1)[0] for p in said] == ["txlog.path", "daemon.state_dir", "daemon.control_socket"]
    assert "is a FIFO" in said[0] and "cannot be created" in said[1] and "not a socket" in said[2]
    assert problems(daemon={"state_dir": str(a_file)}) == [f"daemon.state_dir: expected a directory, {str(a_file)!r} "
                                                           "is a regular file"]


@pytest.mark.parametrize(("section", "key", "value"), [
    ("clock", "ntp_server", "ntp.example:{}"), ("network", "dns_servers", ["192.0.2.53#{}"]),
    ("server", "url", "https://collector.example:{}/api")])
@pytest.mark.parametrize(("written", "taken"), [("1", True), ("65535", True), ("0", False), ("65536", False)])
def test_a_port_inside_a_value_is_taken_from_1_to_65535(config_file, section, key, value, written, taken):
    filled = [v.format(written) for v in value] if isinstance(value, list) else value.format(written)
    extra = {"token_file": "/nonexistent-token"} if section == "server" else {}
    path = config_file(**{section: {key: filled, **extra}})
    if taken:
        config.load(str(path))
    else:
        with pytest.raises(config.ConfigError, match=rf"{section}\.{key}: expected a port from 1 to 65535, got '{written}'"):
            config.load(str(path))


@pytest.mark.parametrize(("section", "key", "value"), [("clock", "ntp_server", "[2001:db8::123]"),
                                                        ("server", "url", "https://[2001:db8::1]/api")])
def test_an_ipv6_address_without_a_port_is_no_port(config_file, section, key, value):
    extra = {"token_file": "/nonexistent-token"} if section == "server" else {}
    config.load(str(config_file(**{section: {key: value, **extra}})))


@pytest.mark.parametrize("key", ["ca_file", "client_cert", "client_key"])
def test_a_payment_hosts_certificate_files_must_exist_and_a_key_needs_its_certificate(config_file, tmp_path, key):
    pem = tmp_path / "host.pem"
    pem.write_text("-----BEGIN CERTIFICATE-----\n")
    both = {"client_cert": str(pem), "client_key": str(pem)}
    config.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", "ca_file": str(pem), **both}])))  # all there
    with pytest.raises(config.ConfigError, match=rf"payment_hosts\[0\]\.{key}: expected an existing file"):
        config.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", **both, key: str(tmp_path / "gone.pem")}])))
    with pytest.raises(config.ConfigError, match=r"payment_hosts\[0\]\.client_key: expected client_cert too"):
        config.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", "client_key": str(pem)}])))
    config.load(str(config_file(payment_hosts=[{"host": "127.0.0.1", "client_cert": str(pem)}])))  # a key in the cert


# --- the generic validator, as pure logic --------------------------------------------------------

@pytest.mark.parametrize(("value", "lo", "hi", "refused"), [
    (1, 1, 10, False), (0.999, 1, 10, True), (10, 1, 10, False), (10.001, 1, 10, True), (-5, None, 0, False),
    (1, None, 0, True), (5, 0, None, False), (-1, 0, None, True), (2**53, None, None, False),
    (-(2**53), None, None, False), (float("nan"), None, None, True), (float("inf"), 0, None, True)])
def test_the_validator_s_bounds_are_inclusive_and_a_missing_bound_is_none(value, lo, hi, refused):
    """Each bound is inclusive, a missing bound none at all; NaN and infinities are no numbers."""
    from posdiag.core.validate import number_problem

    assert (number_problem(value, lo, hi) is not None) is refused


@pytest.mark.parametrize("value", [2**53 + 1, -(2**53) - 1, 10**400])
def test_an_integer_beyond_two_to_the_53_is_refused_by_its_digits_before_any_comparison(value):
    from posdiag.core.validate import number_problem

    said = str(number_problem(value, None, None))
    assert said == f"expected a number from any to any, got an integer of {len(str(abs(value)))} digits"


def test_a_refused_list_or_table_is_shown_while_short_and_elided_when_long():
    """A refused value is shown so its owner finds it; a list or table of 40 characters or more is not
    (it would fill the line); a long string is shown whole, as it must be to be found."""
    from posdiag.core.validate import got

    short, long = ["x" * 35], ["x" * 36]  # repr: 39 and 40 characters
    assert (len(repr(short)), len(repr(long))) == (39, 40)
    assert str(got(short)) == f"list {short!r}" and str(got(long)) == "list …"
    assert str(got({"k": "v" * 30})) == "table {'k': '" + "v" * 30 + "'}" and str(got({"k": "v" * 40})) == "table …"
    assert str(got("x" * 60)) == "string '" + "x" * 60 + "'"
    assert str(got(True)) == "boolean True" and str(got(1e16)) == "number 10000000000000000"


def test_a_misspelt_key_is_pointed_at_its_likely_name_and_a_strange_one_gets_the_list():
    from posdiag.core.validate import unknown_name

    known = ["timeout_s", "ping_count"]
    assert str(unknown_name("ping_cont", "network.ping_cont", known)) == (
        "network.ping_cont: unknown key (did you mean 'ping_count'?)")
    assert str(unknown_name("colour", "network.colour", known)) == (
        "network.colour: unknown key (known keys: ping_count, timeout_s)")
    assert str(unknown_name("zz", "[zz]", ["memory", "disk"])) == "[zz]: unknown section (known sections: disk, memory)"


@pytest.mark.parametrize(("value", "tp", "matches"), [
    (1, float, True), (1.5, float, True), (True, float, False), (1, int, True), (True, int, False), (1.0, int, False),
    ([1, 2], list[int], True), ([1, "2"], list[int], False), ((1, 2), list[int], False), ("a", str, True)])
def test_a_value_matches_its_type_as_toml_gives_it(value, tp, matches):
    """A boolean is no number in TOML (true is not 1); an integer is a number; a list matches item by item."""
    from posdiag.core.validate import matches_type

    assert matches_type(value, tp) is matches


def test_a_pattern_and_a_regular_expression_are_checked_only_on_text():
    from posdiag.core.validate import INVALID, check_value

    problems: list[str] = []
    meta = {"pattern": r"[a-z]+", "regex": True}
    assert check_value("abc", str, meta, "k", problems) == "abc"
    assert check_value("ABC", str, meta, "k", problems) is INVALID
    assert check_value("", str | None, {"regex": True}, "k", problems) == ""  # an empty regex: none configured
    assert check_value("(", str, {"regex": True}, "k", problems) is INVALID
    assert check_value("(", str, {}, "k", problems) == "("  # text that is no regular expression is taken as it is
    assert [str(p).split(":")[0] for p in problems] == ["k", "k"] and "expected [a-z]+, got 'ABC'" in problems[0]
