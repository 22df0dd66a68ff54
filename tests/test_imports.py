"""Imports run one way: the agent uses probes; probes know the settings types and nothing else.

``posdiag.agent.config`` (the typed settings) is the bottom layer both sides build on, so it
imports nothing of ``posdiag.probes``. A probe reads what the agent knows (history, build date,
other probes' values) through ``ProbeContext``, never by importing the agent.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: The only modules of ``posdiag.agent`` a probe may import.
#: The settings types, and the translation of the text a probe writes (which imports nothing of posdiag).
PROBES_MAY_IMPORT = {"posdiag.agent.config", "posdiag.agent.i18n"}


def module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["posdiag", *parts])


def imported(path: Path) -> set[str]:
    """Every posdiag module a file imports, at the top or inside functions (lazy imports count)."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return {n for n in names if n.startswith("posdiag.")}


def sources(folder: str) -> list[Path]:
    return sorted((REPO / folder).rglob("*.py"))


def reaches(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("path", sources("probes"), ids=lambda p: str(p.relative_to(REPO)))
def test_probes_import_nothing_of_the_agent_but_the_settings(path: Path):
    wrong = {n for n in imported(path) if reaches(n, "posdiag.agent")
             and not any(reaches(n, allowed) for allowed in PROBES_MAY_IMPORT)}
    # ``from posdiag.agent.config import X`` also records ``posdiag.agent.config.X``: allowed.
    assert wrong == set(), f"{module_name(path)} imports {sorted(wrong)}"


def test_the_settings_module_imports_no_probe():
    assert {n for n in imported(REPO / "agent" / "config.py") if reaches(n, "posdiag.probes")} == set()


def test_the_walk_sees_lazy_imports(tmp_path: Path):
    sample = tmp_path / "sample.py"
    sample.write_text("def f():\n    from posdiag.agent.store import open_readonly\n")
    assert "posdiag.agent.store" in imported(sample)


@pytest.mark.parametrize("folder", ["agent", "probes", "config"])
def test_every_folder_is_a_package_named_posdiag_dot_folder(folder: str):
    import importlib

    package = importlib.import_module(f"posdiag.{folder}")
    assert Path(package.__file__).resolve().parent == REPO / folder


def test_the_translation_module_imports_nothing_of_posdiag():
    """Probes, the settings and the collector all use it: it must stay the bottom layer."""
    assert imported(REPO / "agent" / "i18n.py") == set()
