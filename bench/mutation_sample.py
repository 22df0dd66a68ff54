#!/usr/bin/env python3
"""Mutation sampling: would the tests catch the bug next to the one they were written for?

    python3 bench/mutation_sample.py map                      # which test files run which line (once, ~10 min)
    python3 bench/mutation_sample.py draw SEED N [--exclude SAMPLE.jsonl ...] [--changed REV] > SAMPLE.jsonl
    python3 bench/mutation_sample.py run SAMPLE.jsonl [ID ...] [--copy DIR]

``map`` runs each test file alone under coverage, its subprocesses too (the CLI, the daemon), and
keeps for every line of ``core``, ``agent``, ``probes`` and ``collector`` the test files that ran it.
``draw`` picks N lines by chance (SEED fixed, so a sample can be drawn again) and one small plausible
bug on each: a comparison's edge moved (``<`` for ``<=``) or turned round, a threshold ten times off,
a number one off where it is compared, ``and`` for ``or``, ``min`` for ``max``, a ``not`` dropped,
``True`` for ``False``, ``+`` for ``-``, an element dropped from a literal set of strings. ``run``
applies each alone to a copy of the checkout and runs the test files that cover its line, quickest
first, stopping at the first failure: caught or missed. A line no test runs is missed.

Needs ``coverage>=7.10`` (in the ``test`` extra) and, like the suite, root for the namespace tests.
Results go to ``bench/results/mutation/``. Read every miss: some mutants change nothing a user could
see (an equivalent mutant); the rest are tests to write.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OUT = REPO / "bench" / "results" / "mutation"
CODE = ("core", "agent", "probes", "collector")
PACKAGES = (*CODE, "config")
#: test files that boot containers, build packages or read source text: they cover little code that
#: the others do not, at many times the cost (test_docs.py stays: it holds the documented defaults)
SLOW = {"test_mutation_sample.py", "test_boot.py", "test_package.py", "test_guides.py",
        "test_startup_time.py", "test_imports.py", "test_language.py"}
#: needs a git checkout, which the copy is not
DESELECT = ("tests/test_cli.py::test_installed_package_carries_its_data_files",)

EDGE = {"<": "<=", "<=": "<", ">": ">=", ">=": ">"}
TURN = {"<=": ">", ">=": "<", "==": "!=", "!=": "==", "<": ">=", ">": "<="}
COMPARE = re.compile(r"(?<![<>=!-])(<=|>=|==|!=|<|>)(?![<>=])")


# --- map -------------------------------------------------------------------------------------------

#: started by every Python process a test starts (it is on their PYTHONPATH), so that the CLI, the
#: daemon and the collector's server a test runs are measured too
SITECUSTOMIZE = """
import os

if os.environ.get("COVERAGE_PROCESS_START"):
    import coverage

    coverage.process_startup()
"""


def build_map() -> None:
    """Each test file alone under coverage, with every process it starts (those a test ends with SIGTERM
    too: ``sigterm`` saves their data); ``map.json``: "path:line" → the test files that ran it,
    ``durations.json``: seconds per test file.

    Per file, not per test: a server or daemon a fixture starts once serves many tests, and what it
    runs cannot be told apart by test."""
    OUT.mkdir(parents=True, exist_ok=True)
    data = OUT / "coverage"
    (OUT / "startup").mkdir(exist_ok=True)
    (OUT / "startup" / "sitecustomize.py").write_text(SITECUSTOMIZE)
    rc = OUT / "coveragerc"
    rc.write_text("[run]\nsource = " + ",".join(str(REPO / c) for c in CODE) +
                  f"\nparallel = true\nsigterm = true\ndata_file = {data / '.coverage'}\n")
    env = {**os.environ, "COVERAGE_PROCESS_START": str(rc), "CI": "true",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(OUT / "startup"), os.environ.get("PYTHONPATH")]))}
    import coverage  # only here: the other commands run without it

    lines: dict[str, set[str]] = {}
    took: dict[str, float] = {}
    for test in sorted((REPO / "tests").glob("test_*.py")):
        if test.name in SLOW:
            continue
        shutil.rmtree(data, ignore_errors=True)
        data.mkdir()
        started = time.monotonic()
        proc = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(test)], cwd=REPO,
                              env=env, capture_output=True, text=True)
        subprocess.run([sys.executable, "-m", "coverage", "combine", f"--rcfile={rc}", "-q"], cwd=data, env=env,
                       capture_output=True)
        name = f"tests/{test.name}"
        took[name] = round(time.monotonic() - started, 1)
        measured = coverage.Coverage(data_file=str(data / ".coverage"))
        measured.load()
        found = measured.get_data()
        for path in found.measured_files():
            rel = os.path.relpath(path, REPO)
            for n in found.lines(path) or []:
                lines.setdefault(f"{rel}:{n}", set()).add(name)
        print(f"{name}: {took[name]:.0f} s, {(proc.stdout.strip().splitlines() or [''])[-1]}", flush=True)
    (OUT / "map.json").write_text(json.dumps({k: sorted(v) for k, v in lines.items()}))
    (OUT / "durations.json").write_text(json.dumps(took, indent=1))
    print(f"{len(lines)} lines covered; {OUT / 'map.json'}")


# --- draw ------------------------------------------------------------------------------------------

def _blank_strings(code: str) -> str:
    return re.sub(r"(\"[^\"]*\"|'[^']*')", lambda m: "\0" * len(m.group(0)), code)


#: (kind, where in the code, what it becomes): swaps that need no more than the text they match
SWAPS = (
    ("and/or", re.compile(r"\b(and|or)\b"), {"and": "or", "or": "and"}),
    ("min/max", re.compile(r"\b(min|max)(?=\()"), {"min": "max", "max": "min"}),
    ("true/false", re.compile(r"\b(True|False)\b"), {"True": "False", "False": "True"}),
    ("plus/minus", re.compile(r"(?<=[\w)\]] )([+-])(?= [\w(])"), {"+": "-", "-": "+"}),
    ("drop not", re.compile(r"\b(not) "), {"not": ""}),
)
NUMBER = re.compile(r"(?<![\w.\[])(\d+\.\d+|\d+)(?![\w.])")


def mutants_of(line: str, compared: bool, strings: bool) -> list[tuple[str, str]]:
    """(kind, new line) for every small bug this line admits; string literals and comments are left alone."""
    code, sep, comment = line.partition("  #")
    hidden = _blank_strings(code)
    out: list[tuple[str, str]] = []

    def put(kind: str, m: re.Match[str], new: str, group: int = 1) -> None:
        out.append((kind, code[:m.start(group)] + new + code[m.end(group):] + sep + comment))

    for m in COMPARE.finditer(hidden) if compared else ():
        if m.group(1) in EDGE:
            put("edge", m, EDGE[m.group(1)])
        put("turn round", m, TURN[m.group(1)])
    for m in NUMBER.finditer(hidden) if "version_info" not in code else ():
        for new in _thresholds(m.group(1), compared):
            put("threshold", m, new)
    for kind, pattern, swap in SWAPS:
        for m in pattern.finditer(hidden):
            put(kind, m, swap[m.group(1)], 0 if kind == "drop not" else 1)
    for m in re.finditer(r"(\"[^\"\n]*\"|'[^']*'), ", code) if strings else ():
        if hidden[m.start()] == "\0":
            put("drop an element", m, "", 0)
    return [(kind, new) for kind, new in out if new != line]


def _thresholds(text: str, compared: bool) -> list[str]:
    """A number ten times off either way, and one off where it is compared (an edge)."""
    value = float(text) if "." in text else int(text)
    if value in (0, 1) or value > 10**6:
        return []
    news = {value * 10, value / 10 if "." in text else value // 10}
    if compared and isinstance(value, int) and value <= 100:
        news |= {value + 1, value - 1}
    return [repr(round(new, 6)) if "." in text else str(int(new)) for new in sorted(news - {value, 0})]


def _statement_starts(tree: ast.Module) -> dict[int, int]:
    """Line → the first line of the innermost statement holding it: coverage counts a statement
    spread over several lines on its first."""
    starts: dict[int, int] = {}
    statements = [node for node in ast.walk(tree) if isinstance(node, ast.stmt)]
    for node in sorted(statements, key=lambda s: s.end_lineno - s.lineno, reverse=True):
        for n in range(node.lineno, node.end_lineno + 1):
            starts[n] = node.lineno
    return starts


def candidates(tree: Path = REPO) -> list[tuple[str, int, str, str, str]]:
    """(path, line number, kind, old line, new line) over the code, leaving out docstrings, logging,
    translated text and lines that occur twice in their file (a mutant must name its line)."""
    pool = []
    for folder in CODE:
        for path in sorted((tree / folder).rglob("*.py")):
            rel = str(path.relative_to(tree))
            text = path.read_text(encoding="utf-8")
            compared: set[int] = set()
            strings: set[int] = set()
            docs: set[int] = set()
            module = ast.parse(text)
            for node in ast.walk(module):
                if isinstance(node, ast.Compare):
                    compared.add(node.lineno)
                elif isinstance(node, (ast.Tuple, ast.Set, ast.List)) and len(node.elts) >= 2 and all(
                        isinstance(e, ast.Constant) and isinstance(e.value, str) for e in node.elts):
                    strings.update(e.lineno for e in node.elts)
                elif isinstance(node, ast.Expr) and isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    docs.update(range(node.lineno, node.end_lineno + 1))
            starts = _statement_starts(module)
            lines = text.splitlines()
            for n, line in enumerate(lines, 1):
                s = line.strip()
                if n in docs or not s or s.startswith(("#", "def ", "class ", "@", "import ", "from ")):
                    continue
                if any(w in s for w in ("log.", "logger.", "print(", "tr(", "_(", "help=", "raise ")) or lines.count(line) > 1:
                    continue
                pool += [(rel, starts.get(n, n), kind, line, new)
                         for kind, new in mutants_of(line, n in compared, n in strings)]
    return pool


def changed_lines(since: str) -> dict[str, set[int]]:
    """path → the line numbers a change since the commit ``since`` wrote (the working tree's numbers)."""
    diff = subprocess.run(["git", "diff", "-U0", since, "--", *CODE], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    lines: dict[str, set[int]] = {}
    path = ""
    for line in diff.splitlines():
        if line.startswith("+++ "):
            path = line[6:] if line.startswith("+++ b/") else ""
        elif line.startswith("@@") and path:
            start, _, count = line.split()[2][1:].partition(",")
            lines.setdefault(path, set()).update(range(int(start), int(start) + int(count or 1)))
    return lines


def draw(seed: int, n: int, exclude: list[Path], since: str | None = None) -> None:
    """N lines by chance (of those changed since a commit, with ``since``), one mutant each by chance,
    with the test files that cover the line."""
    used = {(row[2], row[3]) for f in exclude for row in map(json.loads, f.read_text().splitlines())}
    covered = json.loads((OUT / "map.json").read_text())
    changed = changed_lines(since) if since else None
    by_line: dict[tuple[str, str], list] = {}
    for rel, number, kind, old, new in candidates():
        if (rel, old) not in used and (changed is None or number in changed.get(rel, ())):
            by_line.setdefault((rel, old), []).append((number, kind, new))
    rng = random.Random(seed)
    for i, key in enumerate(rng.sample(sorted(by_line), min(n, len(by_line))), 1):
        number, kind, new = rng.choice(by_line[key])
        print(json.dumps([f"S{seed}-{i:02d}", kind, key[0], key[1], new, sorted(covered.get(f"{key[0]}:{number}", []))]))
    print(f"drawn from {sum(map(len, by_line.values()))} mutants on {len(by_line)} lines", file=sys.stderr)


# --- run -------------------------------------------------------------------------------------------

def copy_checkout(target: Path) -> None:
    """The tracked files and the compiled catalogues, and a ``posdiag`` package made of links to them,
    put first on ``PYTHONPATH`` so that tests and their subprocesses import the copy, not the checkout."""
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, capture_output=True, check=True).stdout.split(b"\0")
    for name in filter(None, files):
        source, dest = REPO / name.decode(), target / name.decode()
        if source.is_file():
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, dest)
    for mo in (REPO / "core" / "locale").rglob("*.mo"):
        shutil.copy2(mo, target / mo.relative_to(REPO))
    package = target / ".shadow" / "posdiag"
    package.mkdir(parents=True)
    for name in PACKAGES:
        (package / name).symlink_to(target / name)


def run(sample: Path, only: set[str], copy: Path) -> None:
    rows = [json.loads(line) for line in sample.read_text().splitlines() if line.strip()]
    took = json.loads((OUT / "durations.json").read_text()) if (OUT / "durations.json").exists() else {}
    copy_checkout(copy)
    env = {**os.environ, "PYTHONPATH": str(copy / ".shadow"), "CI": "true"}
    caught = []
    for mid, kind, path, old, new, tests in rows:
        if only and mid not in only:
            continue
        target = copy / path
        original = target.read_text(encoding="utf-8")
        lines = original.split("\n")
        if lines.count(old) != 1:
            print(f"{mid} SKIPPED: its line is no longer in {path} once")
            continue
        lines[lines.index(old)] = new
        target.write_text("\n".join(lines), encoding="utf-8")
        started = time.monotonic()
        try:
            if not tests:
                rc, said = 0, "no test runs this line"
            else:
                deselect = [a for d in DESELECT for a in ("--deselect", d)]
                proc = subprocess.run([sys.executable, "-m", "pytest", "-x", "-q", "-p", "no:cacheprovider", *deselect,
                                       *sorted(tests, key=lambda t: took.get(t, 5.0))], cwd=copy, env=env,
                                      capture_output=True, text=True, timeout=1200)
                failed = [ln for ln in proc.stdout.splitlines() if ln.startswith("FAILED")]
                rc, said = proc.returncode, (failed or proc.stdout.strip().splitlines() or [""])[0 if failed else -1]
        except subprocess.TimeoutExpired:
            rc, said = -1, "timeout"
        finally:
            target.write_text(original, encoding="utf-8")
        caught.append(rc != 0)
        print(f"{mid} {'CAUGHT' if rc else 'MISSED'} {time.monotonic() - started:4.0f} s  {kind:15} {path}: "
              f"{old.strip()[:70]!r} -> {new.strip()[:70]!r}  [{said[:110]}]", flush=True)
    print(f"caught {sum(caught)} of {len(caught)} = {100 * sum(caught) / max(1, len(caught)):.0f} %")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("map")
    d = sub.add_parser("draw")
    d.add_argument("seed", type=int)
    d.add_argument("n", type=int)
    d.add_argument("--exclude", type=Path, action="append", default=[], help="a sample whose lines are not drawn again")
    d.add_argument("--changed", metavar="REV", help="draw only from the lines changed since the commit REV")
    r = sub.add_parser("run")
    r.add_argument("sample", type=Path)
    r.add_argument("ids", nargs="*")
    r.add_argument("--copy", type=Path, default=OUT / "copy", help="where the mutated copy of the checkout lives")
    args = parser.parse_args()
    if args.command == "map":
        build_map()
    elif args.command == "draw":
        draw(args.seed, args.n, args.exclude, args.changed)
    else:
        run(args.sample, set(args.ids), args.copy)


if __name__ == "__main__":
    main()
