"""The project carries its own docs: the README points only inside the repository, and the pages
that list contracts (causes, configuration keys, commands) list all of them."""

from __future__ import annotations

import dataclasses
import re
import typing
from pathlib import Path

import pytest
from posdiag.agent.diagnosis import load_knowledge
from posdiag.core import settings as config
from posdiag.core.paths import causes_path

REPO = Path(__file__).resolve().parent.parent
DOCS = sorted((REPO / "docs").glob("*.md"))


@pytest.mark.parametrize("page", [REPO / "README.md", *DOCS], ids=lambda p: p.name)
def test_pages_point_only_inside_the_repository(page: Path):
    text = page.read_text(encoding="utf-8")
    assert "DESIGN.md" not in text and "../" not in text
    for target in re.findall(r"\]\(([^)#]+)\)", text):
        if not re.match(r"[a-z]+://", target):
            assert (page.parent / target).exists(), f"{page.name} links to a missing {target}"


def test_no_code_or_data_cites_a_document_outside_the_repository():
    """Code, configuration, docs and packaging explain themselves in place or in docs/: none cites the
    design notes the project was specified in, which a reader of the repository does not have."""
    folders = ("core", "agent", "probes", "collector", "config", "docs", "packaging")
    citing = [str(p.relative_to(REPO)) for folder in folders for p in sorted((REPO / folder).rglob("*"))
              if p.is_file() and p.suffix not in (".mo", ".pyc")
              and "DESIGN.md" in p.read_text(encoding="utf-8", errors="replace")]
    assert citing == []


def test_the_readme_opens_with_the_run_and_test_commands():
    blocks = re.findall(r"```sh\n(.*?)\n```", (REPO / "README.md").read_text(encoding="utf-8"), flags=re.S)
    assert "posdiag diagnose" in blocks[0] and "pytest" in blocks[1]


def test_every_cause_is_in_the_catalogue_page():
    page = (REPO / "docs" / "causes.md").read_text(encoding="utf-8")
    missing = [c for c in load_knowledge(causes_path()).causes if f"| `{c}` |" not in page]
    assert missing == []


def test_every_configuration_key_is_in_the_reference():
    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    hints = typing.get_type_hints(config.Settings)
    missing = []
    for section in dataclasses.fields(config.Settings):
        if section.name == "source":
            continue
        cls = config.PaymentHost if section.name == "payment_hosts" else hints[section.name]
        heading = "[[payment_hosts]]" if section.name == "payment_hosts" else f"[{section.name}]"
        part = page.split(f"### `{heading}`", 1)
        missing += [f"{heading} {key.name}" for key in dataclasses.fields(cls)
                    if len(part) < 2 or f"| `{key.name}` |" not in part[1].split("###", 1)[0]]
    assert missing == []


def test_every_key_s_default_is_the_documented_one():
    """A default changed in the code (min_uptime_s 120 → 12) and not in the reference is caught here."""
    import tomllib

    page = (REPO / "docs" / "configuration.md").read_text(encoding="utf-8")
    hints = typing.get_type_hints(config.Settings)
    wrong = {}
    for section in dataclasses.fields(config.Settings):
        if section.name == "source":
            continue
        cls = config.PaymentHost if section.name == "payment_hosts" else hints[section.name]
        heading = "[[payment_hosts]]" if section.name == "payment_hosts" else f"[{section.name}]"
        table = page.split(f"### `{heading}`", 1)[1].split("###", 1)[0]
        for key in dataclasses.fields(cls):
            if re.search(rf"^\| `{key.name}` \| \(required\) \|", table, flags=re.M):
                continue
            documented = re.search(rf"^\| `{key.name}` \| `(.*?)` \|", table, flags=re.M)
            default = key.default_factory() if key.default is dataclasses.MISSING else key.default
            if documented is None or tomllib.loads(f"v = {documented.group(1)}")["v"] != default:
                wrong[f"{section.name}.{key.name}"] = (documented and documented.group(1), default)
    assert wrong == {}


def test_every_collector_option_s_default_is_the_documented_one():
    """`--max-header-bytes N … [16 KiB]` in docs/collector.md is the server's default, and so on for each."""
    from posdiag.collector.settings import Settings

    page = (REPO / "docs" / "collector.md").read_text(encoding="utf-8")
    units = {"": 1, "KiB": 1024, "MiB": 1024 * 1024}
    defaults = {f.name: f.default for f in dataclasses.fields(Settings)}
    documented = {}
    for option, number, unit in re.findall(r"^\| `--([a-z-]+)[^`]*` \|.*\[(\d+(?:\.\d+)?) ?(KiB|MiB|)\]", page, flags=re.M):
        documented[option.replace("-", "_")] = float(number) * units[unit]
    assert len(documented) >= 15 and set(documented) - set(defaults) == {"workers"}, documented  # processes, not a setting
    assert {k: v for k, v in documented.items() if k in defaults and defaults[k] != v} == {}


def test_every_command_is_in_the_commands_page():
    from posdiag.agent.cli import build_parser

    page = (REPO / "docs" / "commands.md").read_text(encoding="utf-8")
    sub = next(a for a in build_parser()._actions if a.dest == "command")
    assert [c for c in sub.choices if f"posdiag {c}" not in page] == []


def test_the_watch_intervals_default_and_range_are_the_documented_ones():
    """docs/commands.md: "the next --interval seconds (default 2, 0.5 to 3600)"."""
    from posdiag.agent import cli

    page = (REPO / "docs" / "commands.md").read_text(encoding="utf-8")
    default, low, high = map(float, re.search(r"`--interval` seconds \(default ([\d.]+), ([\d.]+) to ([\d.]+)\)",
                                              page).groups())
    assert cli.build_parser().parse_args(["watch"]).interval == default == 2.0
    assert (low, high) == (cli.MIN_INTERVAL_S, cli.MAX_INTERVAL_S)
