"""Imports run one way, layer by layer, and no module reaches back to one that reaches it.

    core  <  probes  <  agent          core  <  collector

``posdiag.core`` (settings, text, paths, the safe reader, redaction, the time format) imports none
of the others; a probe imports the core and other probe modules, never the agent that runs it; the
collector imports the core and itself, never the agent or a probe. Every import statement counts,
at the top of a file or inside a function, and a ``"module:Class"`` string that importlib loads later
(the probe catalogue): a lazy import is still a dependency, only a later one.
"""

from __future__ import annotations

import ast
import importlib
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
#: what each layer may import, itself included (``posdiag.config`` holds data, and imports nothing)
LAYERS: dict[str, set[str]] = {
    "posdiag.core": {"posdiag.core"},
    "posdiag.probes": {"posdiag.core", "posdiag.probes"},
    "posdiag.agent": {"posdiag.core", "posdiag.probes", "posdiag.agent"},
    "posdiag.collector": {"posdiag.core", "posdiag.collector"},
    "posdiag.config": set(),
}
FOLDERS = ["core", "probes", "agent", "collector", "config"]


def module_name(path: Path, root: Path = REPO) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["posdiag", *parts])


#: ``"posdiag.probes.memory:MemoryProbe"``: a module named in a string, imported later by
#: ``importlib`` (the probe catalogue): an import all the same, only a lazier one
NAMED_MODULE = re.compile(r"(posdiag(?:\.\w+)+):\w+")


def imported(path: Path, root: Path = REPO) -> set[str]:
    """Every posdiag name a file imports, at the top, inside functions or named as ``"module:Class"``
    for importlib, relative imports resolved.

    ``from posdiag.a import b`` records ``posdiag.a.b``: a module, or an attribute of ``posdiag.a``
    (:func:`module_graph` tells which); either way it lies in the layer of ``posdiag.a``."""
    this = module_name(path, root).split(".")
    package = this if path.name == "__init__.py" else this[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join(package[:len(package) - node.level + 1] + ([base] if base else []))
            names.update(base if a.name == "*" else f"{base}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Constant) and isinstance(node.value, str) and NAMED_MODULE.fullmatch(node.value):
            names.add(NAMED_MODULE.fullmatch(node.value).group(1))
    return {n for n in names if n.startswith("posdiag.")}


def layer_of(name: str) -> str | None:
    return next((layer for layer in LAYERS if name == layer or name.startswith(layer + ".")), None)


def sources(root: Path = REPO) -> list[Path]:
    return sorted(p for folder in FOLDERS for p in (root / folder).rglob("*.py"))


def layer_violations(root: Path = REPO) -> list[str]:
    wrong = []
    for path in sources(root):
        here = layer_of(module_name(path, root))
        for name in sorted(imported(path, root)):
            there = layer_of(name)
            if there is not None and there not in LAYERS[here]:
                wrong.append(f"{module_name(path, root)} ({here}) imports {name} ({there})")
    return wrong


def module_graph(root: Path = REPO) -> dict[str, set[str]]:
    """Module → the posdiag modules it imports: an imported name that is an attribute, not a module,
    counts as the module that holds it (``posdiag.probes.base.Probe`` → ``posdiag.probes.base``)."""
    modules = {module_name(p, root): p for p in sources(root)}
    graph: dict[str, set[str]] = {}
    for name, path in modules.items():
        holders = {_module_of(n, modules) for n in imported(path, root)}
        graph[name] = {m for m in holders if m is not None and m != name}
    return graph


def _module_of(name: str, modules: dict[str, Path]) -> str | None:
    parts = name.split(".")
    return next((".".join(parts[:i]) for i in range(len(parts), 0, -1) if ".".join(parts[:i]) in modules), None)


def cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every strongly connected set of more than one module (Tarjan's algorithm, iterative)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    counter = 0
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = counter
                    counter += 1
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph.get(child, ())))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                members = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    members.append(member)
                    if member == node:
                        break
                if len(members) > 1:
                    found.append(sorted(members))
    return found


def test_every_import_runs_down_the_layers():
    assert layer_violations() == []


def test_no_module_imports_one_that_imports_it():
    assert cycles(module_graph()) == []


def test_every_module_belongs_to_a_layer():
    assert [module_name(p) for p in sources() if layer_of(module_name(p)) is None] == []


def test_a_planted_upward_import_is_caught(tmp_path: Path):
    """The check itself can fail: a probe that imports the agent lazily, inside a function."""
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
        (tmp_path / folder / "__init__.py").write_text("")
    (tmp_path / "probes" / "sneaky.py").write_text("def f():\n    from posdiag.agent.store import open_readonly\n")
    (tmp_path / "core" / "low.py").write_text("from posdiag.collector import app\n")
    (tmp_path / "collector" / "app.py").write_text("from ..agent import report\n")
    assert layer_violations(tmp_path) == [
        "posdiag.collector.app (posdiag.collector) imports posdiag.agent.report (posdiag.agent)",
        "posdiag.core.low (posdiag.core) imports posdiag.collector.app (posdiag.collector)",
        "posdiag.probes.sneaky (posdiag.probes) imports posdiag.agent.store.open_readonly (posdiag.agent)",
    ]


def plant(root: Path, files: dict[str, str]) -> Path:
    """A tree of the five folders, each a package, with these files written into it."""
    for folder in FOLDERS:
        (root / folder).mkdir()
        (root / folder / "__init__.py").write_text("")
    for name, text in files.items():
        (root / name).write_text(text)
    return root


def test_a_module_named_for_importlib_is_an_import_of_its_layer(tmp_path: Path):
    """The probe catalogue names its modules as "module:Class" strings that importlib loads on use."""
    root = plant(tmp_path, {"probes/__init__.py": 'CATALOGUE = {"memory": "posdiag.agent.daemon:Daemon"}\n'})
    assert layer_violations(root) == ["posdiag.probes (posdiag.probes) imports posdiag.agent.daemon (posdiag.agent)"]


def test_a_circle_through_the_catalogue_is_caught_and_a_sibling_module_is_no_circle(tmp_path: Path):
    """memory.py taking CATALOGUE from the package that lazily loads memory.py is a circle; taking
    its sibling module _psi from that package is not (``from posdiag.probes import _psi``)."""
    root = plant(tmp_path, {"probes/__init__.py": 'CATALOGUE = {"memory": "posdiag.probes.memory:MemoryProbe"}\n',
                            "probes/memory.py": "from posdiag.probes import _psi\n", "probes/_psi.py": ""})
    assert cycles(module_graph(root)) == []
    (root / "probes" / "memory.py").write_text("from posdiag.probes import _psi, CATALOGUE\n")
    assert cycles(module_graph(root)) == [["posdiag.probes", "posdiag.probes.memory"]]


def test_a_planted_circle_is_caught(tmp_path: Path):
    for folder in FOLDERS:
        (tmp_path / folder).mkdir()
    (tmp_path / "agent" / "store.py").write_text("from posdiag.agent import heal\n")
    (tmp_path / "agent" / "heal.py").write_text("def f():\n    from posdiag.agent.store import insert_history\n")
    (tmp_path / "agent" / "cli.py").write_text("from posdiag.agent import store\n")
    assert cycles(module_graph(tmp_path)) == [["posdiag.agent.heal", "posdiag.agent.store"]]


@pytest.mark.parametrize("folder", FOLDERS)
def test_every_folder_is_a_package_named_posdiag_dot_folder(folder: str):
    package = importlib.import_module(f"posdiag.{folder}")
    assert Path(package.__file__).resolve().parent == REPO / folder


def path_changes(root: Path = REPO / "tests") -> list[str]:
    """Every call that edits ``sys.path`` in the tests and their labs."""
    found = []
    for path in sorted(root.rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and ast.unparse(node.func.value) == "sys.path"):
                found.append(f"{path.relative_to(root)}:{node.lineno}")
    return found


def test_no_test_puts_a_folder_on_the_import_path_itself():
    """``labs`` is a package beside conftest.py and ``packaging/`` (catalogues.py) is on pytest's
    ``pythonpath``: a test that inserts a folder of its own imports differently alone than in the suite."""
    assert path_changes() == []


def test_a_test_that_edits_the_import_path_is_found(tmp_path: Path):
    (tmp_path / "test_x.py").write_text("import sys\n\ndef test_x():\n    sys.path.insert(0, 'packaging')\n")
    (tmp_path / "labs").mkdir()
    (tmp_path / "labs" / "y.py").write_text("import sys\nsys.path.append('tests')\n")
    assert path_changes(tmp_path) == ["labs/y.py:2", "test_x.py:4"]
