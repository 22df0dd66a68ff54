"""The catalogues and the code say the same things: every marked message has its Chinese, every
Chinese entry is still said somewhere, and a translation fills exactly the fields its English does."""

from __future__ import annotations

import os
import re
import shutil
import string
import subprocess
import sys
from pathlib import Path

import catalogues
import pytest
from posdiag.agent.columns import display_width, pad, table
from posdiag.core import i18n

REPO = Path(__file__).resolve().parent.parent

ZH_PO = REPO / "core" / "locale" / "zh_CN" / "LC_MESSAGES" / "posdiag.po"


@pytest.fixture(scope="module")
def extracted():
    return {m.id: m for m in catalogues.extract() if m.id}


@pytest.fixture(scope="module")
def chinese():
    return {m.id: m for m in catalogues.read(ZH_PO) if m.id}


def _where(message) -> str:
    return ", ".join(f"{f}:{n}" for f, n in message.locations[:3])


def test_every_marked_message_has_a_chinese_translation(extracted, chinese):
    missing = [f"{m.id!r} ({_where(m)})" for key, m in extracted.items()
               if key not in chinese or not _translated(chinese[key])]
    assert not missing, (f"{len(missing)} messages lack Chinese (python3 packaging/catalogues.py update):\n  "
                         + "\n  ".join(missing))


def test_the_chinese_catalogue_holds_only_what_the_code_says(extracted, chinese):
    stale = sorted(str(key) for key in chinese if key not in extracted)
    assert not stale, "in posdiag.po but said nowhere in the code:\n  " + "\n  ".join(stale)


def test_no_translation_is_left_fuzzy(chinese):
    assert [m.id for m in chinese.values() if m.fuzzy] == []


def _chinese(message) -> str:
    return "".join(message.string if isinstance(message.string, tuple) else (message.string,))


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _translated(message) -> bool:
    strings = message.string if isinstance(message.string, tuple) else (message.string,)
    return all(s.strip() for s in strings)


def test_translations_fill_the_same_fields_as_the_english(chinese):
    wrong = []
    for key, message in chinese.items():
        ids = key if isinstance(key, tuple) else (key,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        english = set().union(*map(_fields, ids))
        if ids != key:  # a counted message may leave out {n} in English's singular ("one report")
            english.discard("n")
        for text in strings:
            got = _fields(text) - ({"n"} if ids != key else set())
            if got != english:
                wrong.append(f"{ids[0]!r}: English fills {sorted(english)}, Chinese {sorted(got)}")
    assert not wrong, "\n".join(wrong)


def test_compiled_catalogue_is_the_one_the_agent_loads(tmp_path):
    written = catalogues.compile_to(tmp_path)
    assert [p.relative_to(tmp_path).as_posix() for p in written] == ["zh_CN/LC_MESSAGES/posdiag.mo"]
    loaded = i18n.translator("zh_CN")
    assert loaded.lang == "zh_CN", "the installed package found no compiled Chinese catalogue"


def test_a_catalogue_being_compiled_is_replaced_whole_never_rewritten_where_a_reader_has_it(tmp_path):
    target = tmp_path / "zh_CN" / "LC_MESSAGES" / "posdiag.mo"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"the catalogue a running posdiag opened")
    with target.open("rb") as opened:  # a posdiag that opened the catalogue just before
        catalogues.compile_to(tmp_path)
        assert opened.read() == b"the catalogue a running posdiag opened"  # not truncated under it
    assert target.read_bytes()[:4] == b"\xde\x12\x04\x95"  # the whole new one (gettext's magic number)
    assert sorted(p.name for p in target.parent.iterdir()) == ["posdiag.mo"]  # no temporary file left
    assert target.stat().st_mode & 0o777 == 0o644


def test_a_damaged_catalogue_gives_english_and_says_so_instead_of_crashing(tmp_path):
    """The installed package with its Chinese catalogue cut short (a full disk, an interrupted copy)."""
    site = tmp_path / "site" / "posdiag"
    site.mkdir(parents=True)
    for folder in ("agent", "probes", "config", "collector"):
        (site / folder).symlink_to(REPO / folder)
    shutil.copytree(REPO / "core", site / "core", ignore=shutil.ignore_patterns("__pycache__", "*.po"))
    mo = site / "core" / "locale" / "zh_CN" / "LC_MESSAGES" / "posdiag.mo"
    mo.write_bytes(mo.read_bytes()[:20])
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "--lang", "zh_CN", "probes"], capture_output=True,
                          text=True, env=env, cwd=tmp_path, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "memory" in proc.stdout and "available memory" in proc.stdout  # English, whole
    assert proc.stderr.startswith(f"posdiag: the zh_CN message catalogue {mo} is damaged (")
    assert proc.stderr.rstrip().endswith("speaking English") and "CRASH" not in proc.stderr


@pytest.mark.parametrize(("tag", "lang"), [
    ("zh_CN.UTF-8", "zh_CN"), ("zh-CN", "zh_CN"), ("zh", "zh_CN"), ("zh-Hans-CN", "zh_CN"), ("zh_SG.UTF-8", "zh_CN"),
    ("zh_TW.UTF-8", None), ("zh-Hant", None), ("zh_HK.UTF-8", None), ("zh_MO", None),
    ("en_US.UTF-8", "en"), ("C", "en"), ("POSIX", "en"), ("C.UTF-8", "en"),
    ("de_DE.UTF-8", None), ("", None)])
def test_locale_names_map_to_the_languages_posdiag_speaks(tag, lang):
    assert i18n.normalise(tag) == lang


def test_cli_beats_configuration_beats_locale():
    env = {"LANG": "zh_CN.UTF-8"}
    assert i18n.choose(None, None, env) == "zh_CN"
    assert i18n.choose(None, "en", env) == "en"
    assert i18n.choose("zh_CN", "en", env) == "zh_CN"
    assert i18n.choose(None, None, {}) == "en"
    # A configured language posdiag does not speak is refused by the config loader: in the locale's language.
    assert i18n.choose(None, "fr", env) == "zh_CN"


def test_lc_all_beats_lc_messages_beats_lang():
    assert i18n.from_environment({"LC_ALL": "en_US.UTF-8", "LC_MESSAGES": "zh_CN.UTF-8", "LANG": "zh_CN.UTF-8"}) == "en"
    assert i18n.from_environment({"LC_MESSAGES": "zh_CN.UTF-8", "LANG": "en_US.UTF-8"}) == "zh_CN"
    assert i18n.from_environment({"LANG": "zh_CN.UTF-8"}) == "zh_CN"
    # The first one set decides even when posdiag does not speak it: a German locale gets English.
    assert i18n.from_environment({"LC_ALL": "de_DE.UTF-8", "LANG": "zh_CN.UTF-8"}) is None


def test_a_translation_naming_other_fields_falls_back_to_english():
    class Broken:
        def gettext(self, message):
            return "{nonexistent} 坏了"

    assert i18n.Translator("zh_CN", Broken()).tr("{path} is full", path="/var") == "/var is full"


def test_a_counted_message_takes_english_s_singular_for_one_and_its_plural_otherwise():
    english = i18n.translator("en")
    said = {n: english.ntr("{n} probe failed", "{n} probes failed", n) for n in (0, 1, 2)}
    assert said == {0: "0 probes failed", 1: "1 probe failed", 2: "2 probes failed"}

    class Broken:  # a translation naming other fields falls back to the English form for that count
        def ngettext(self, singular, plural, n):
            return "{nonexistent} 个"

    broken = i18n.Translator("zh_CN", Broken())
    assert [broken.ntr("{n} probe failed", "{n} probes failed", n) for n in (1, 2)] == ["1 probe failed", "2 probes failed"]


def test_text_without_fields_is_not_formatted():
    assert i18n.translator("en").tr("100% {literal}") == "100% {literal}"


def test_chinese_characters_take_two_cells():
    assert display_width("磁盘已满") == 8
    assert display_width("disk 满") == 7
    assert pad("正常", 6) == "正常  "
    lines = table([["名称", "状态", "x"], ["disk", "ok", "y"]])
    assert [display_width(line.split("x")[0]) for line in lines[:1]] == [display_width("名称  状态  ")]
    assert lines[1].startswith("disk  ok    y")


#: the field guide's names of causes as the cause titles use them: only the diagnosis engine names a cause
CAUSE_NAMES = ("内存溢出", "硬盘损坏", "恶意攻击", "服务器故障", "操作系统崩溃", "网络连接中断", "软件配置错误", "服务中断")
#: and the Chinese of the English cause vocabulary below: a fault's name (not a device's own word, quoted:
#: “故障”), a guess, a question
CAUSE_WORDS_ZH = re.compile("(?<!“)故障(?!”)|泄漏|防火墙|黑洞|拔出|未插|反复崩溃|已损坏|松动|线路干扰|盗刷|记录器|拦截|"
                            "可能|也许|或许|通常|？|\\?")


def test_probe_messages_name_no_cause_in_chinese(chinese):
    naming = [f"{key!r} => {message.string!r}" for key, message in chinese.items()
              if any(path.startswith("probes/") for path, _ in message.locations)
              and (any(name in _chinese(message) for name in CAUSE_NAMES) or CAUSE_WORDS_ZH.search(_chinese(message)))]
    assert not naming, "a probe's Chinese names a cause (the engine's job):\n" + "\n".join(naming)


#: What a probe must not say in English, because it decides instead of observing (the engine's words:
#: causes.toml's titles, explanations, remediation and [reads_as]). Three kinds of word:
#: - the name of a fault rather than of what was seen ("a leak", "firewalled", "unplugged", "crash-looping"; a
#:   crash the kernel recorded is seen, one read into restarts is not; a device's own word, FAILING, is quoted);
#: - a guess or a reason ("likely", "may be", "often", "due to", any question: "DHCP failed?");
#: - a verdict ("not a fault", "the service is down").
CAUSE_VOCABULARY = re.compile(r"""
    \bleak | firewall | \boutage | black[ -]hole | \bunplug | \bskimm | keylog | \btamper | intercept
  | crash-?loop | keeps?\ crashing | \bthrash | \bfault | \bmalicious | \bdead\b | (?-i:\bfailing\b) | \bloose\b
  | \bnoise\b | misconfigur
  | \blikely\b | \bprobabl | \bpossibl | \bmaybe\b | \bmay\ be\b | \bmight\b | \bperhaps\b | \bsuspect
  | \boften\b | \busually\b | \bseems?\b | \bcaus | \bbecause\b | \bdue\ to\b | \breaction\ to\b
  | \bis\ down\b | \?
""", re.I | re.X)


def _english(key) -> str:
    return " / ".join(key) if isinstance(key, tuple) else key


def test_probe_messages_name_no_cause_in_english(extracted):
    naming = [f"{_english(key)!r} ({_where(message)}): {CAUSE_VOCABULARY.search(_english(key)).group(0)!r}"
              for key, message in extracted.items()
              if any(path.startswith("probes/") for path, _ in message.locations)
              and CAUSE_VOCABULARY.search(_english(key))]
    assert not naming, "a probe's English names a cause or guesses one (the engine's job):\n" + "\n".join(naming)


@pytest.mark.parametrize("said", [
    "{process} holds {share:.0f}% of RAM: likely a leak", "a memory leak", "an intermittent fault",
    "firewalled, not a fault", "a path-MTU black hole", "cable unplugged or the other end is off", "(DHCP failed?)",
    "it may be crash-looping", "possible keylogger or skimmer", "the payment service is down",
    "often the kernel's reaction to I/O errors", "loose cable or failing port", "caused by a bad cable"])
def test_the_cause_vocabulary_catches_a_probe_deciding(said):
    assert CAUSE_VOCABULARY.search(said)


@pytest.mark.parametrize("said", [
    "only 12 MB of memory available (minimum 64 MB)", "interface eth0 has no carrier", "interface eth0 is administratively down",
    "gateway 192.0.2.1 does not answer (no ICMP echo reply and no ARP answer)", "{where}: connect failed ({error})",
    "the reader on /dev/ttyS0 sent 2 frames with a wrong checksum (LRC)",
    "the kernel does not consider the clock NTP-synchronized"])
def test_the_cause_vocabulary_lets_observations_pass(said):
    assert not CAUSE_VOCABULARY.search(said)


def test_numbers_filled_into_a_message_are_never_in_scientific_notation():
    english, chinese = i18n.translator("en"), i18n.translator("zh_CN")
    assert english.tr("limit {limit:g} s, {value}", limit=1e7, value=1036800.5) == "limit 10000000 s, 1036800.5"
    assert english.tr("{ratio:.0%} in {s:.1f} s", ratio=0.5, s=2.25) == "50% in 2.2 s"  # other formats as asked
    said = chinese.tr("{where} does not answer: {n} connect timed out after {timeout:g} s", where="x", n=1, timeout=1e7)
    assert "10000000" in said and "e+" not in said


def test_full_width_punctuation_takes_no_space_around_it_in_chinese():
    zh = i18n.translator("zh_CN")
    primary = zh.tr("{label} (primary)", label="acquirer-primary")
    refused = zh.tr("{where} refuses connections (reset)", where=primary)
    assert refused.startswith("acquirer-primary（主用）拒绝连接"), refused  # was "（主用） 拒绝连接"
    assert zh.tr("{heading}:", heading="依据") + "\n  - x" == "依据：\n  - x"  # indents after a line break stay
    assert i18n.translator("en").tr("{a} (b) c", a="x") == "x (b) c"  # English keeps its spaces


def test_a_screen_line_is_clipped_to_its_width_with_an_ellipsis_counting_cells():
    from posdiag.agent.columns import clip

    assert clip("x" * 20, 20) == "x" * 20  # exactly as wide: kept whole
    assert clip("x" * 21, 20) == "x" * 19 + "…"
    assert clip("磁盘已满磁盘已满", 16) == "磁盘已满磁盘已满" and clip("磁盘已满磁盘已满", 15) == "磁盘已满磁盘已…"
    assert display_width("e\u0301") == 1  # a combining accent takes no cell of its own


def test_a_line_longer_than_its_width_continues_under_its_text_and_keeps_notes_and_times_whole():
    from posdiag.agent.columns import fit, pad_left

    assert fit("x " * 40, 80) == ["x " * 40]  # 80 cells: fits
    step = "  2. " + "word " * 12 + "[disk.full, confidence 97%] at 2026-11-30 10:15:02 UTC"
    lines = fit(step, 60)
    assert lines == ["  2. " + "word " * 10 + "word", "     word [disk.full, confidence 97%] at",
                     "     2026-11-30 10:15:02 UTC"]  # under the step's text, the note and the time whole
    plain = fit("word " * 30, 40)
    assert plain[1].startswith("  word") and not plain[1].startswith("   ")  # no lead: two cells in
    assert pad_left("7", 4) == "   7" and pad_left("12345", 4) == "12345"


def test_chinese_wraps_between_characters_never_before_a_closing_mark_or_after_an_opening_one():
    from posdiag.agent.columns import wrap

    assert wrap("支付主机拒绝连接，请检查防火墙。", 16) == ["支付主机拒绝连", "接，请检查防火", "墙。"]
    assert wrap("支付，好", 4) == ["支", "付，", "好"]
    assert wrap("请运行（重新插入读卡器）", 8) == ["请运行", "（重新插", "入读卡", "器）"]
    assert wrap("one two three", 7) == ["one two", "three"] and wrap("one two three", 8) == ["one two", "three"]
    assert wrap("unbreakable-word-longer-than-the-width x", 10) == ["unbreakable-word-longer-than-the-width", "x"]


def test_a_table_wraps_its_last_column_under_itself_when_given_a_width():
    rows = [["network.dns", "FAIL", "the resolver 192.0.2.53 did not answer within the timeout"], ["disk", "ok", "x"]]
    assert table(rows, width=50) == ["network.dns  FAIL  the resolver 192.0.2.53 did not",
                                     "                   answer within the timeout", "disk         ok    x"]
    assert table(rows) == [row.rstrip() for row in table(rows, width=200)]  # wide enough: one line a row


def test_fullwidth_letters_take_two_cells_and_ragged_rows_keep_their_columns():
    from posdiag.agent.columns import SCREEN, fit

    assert display_width("ＰＯＳ") == 6 and display_width("POS") == 3  # fullwidth (F) as wide as CJK (W)
    assert pad("ＰＯＳ", 8) == "ＰＯＳ  " and pad("toolong", 3) == "toolong"
    assert table([["a", "bb", "c"], ["dddd"], ["e", "f"]]) == ["a     bb  c", "dddd", "e     f"]
    assert table([]) == []
    assert SCREEN == 80 and fit("x" * 81) == ["x" * 81] and fit("x " * 41) == ["x " * 39 + "x", "  x"]


@pytest.mark.parametrize(("width", "lines"), [(38, ["dns  FAIL  the resolver did not answer"]),
                                            (37, ["dns  FAIL  the resolver did not", "           answer"])])
def test_a_table_row_exactly_as_wide_as_the_width_stays_on_one_line(width, lines):
    assert table([["dns", "FAIL", "the resolver did not answer"]], width=width) == lines  # 11 + 27 = 38 cells


def test_a_table_squeezed_by_wide_columns_still_wraps_its_last_cell_at_twenty_cells():
    rows = [["n" * 40, "the resolver did not answer within the timeout at all"]]
    lines = table(rows, width=50)  # 42 cells of head leave 8: the last cell gets 20 a line anyway
    assert lines == ["n" * 40 + "  the resolver did not", " " * 42 + "answer within the", " " * 42 + "timeout at all"]


def test_a_line_break_or_a_run_of_spaces_in_wrapped_text_is_a_gap_and_never_starts_a_line():
    from posdiag.agent.columns import wrap

    assert wrap("one\ntwo three", 40) == ["one two three"]
    assert wrap("aaaa  bbbb", 4) == ["aaaa", "bbbb"] and wrap("aaaa\n\nbbbb", 4) == ["aaaa", "bbbb"]  # no line starts blank
    assert wrap("one\ttwo", 40) == ["one\ttwo"]


@pytest.mark.parametrize(("text", "lines"), [("支付，好", ["支", "付", "，", "好"]), ("（好", ["（", "好"])])
def test_a_line_of_one_character_keeps_it_rather_than_run_past_the_width_for_a_mark(text, lines):
    """The marks' rule moves a character to the next line with its mark, but never empties a line to do
    so: at two cells a line, a closing or opening mark stands alone rather than making a line of four."""
    from posdiag.agent.columns import wrap

    assert wrap(text, 2) == lines
    assert all(display_width(line) <= 2 for line in wrap(text, 2))
