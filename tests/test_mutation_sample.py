"""The mutation sampler (bench/mutation_sample.py) makes one small bug per mutant, each still Python,
and never touches a string, a comment, a docstring or a log line: a miss it reports is a test to write,
not a broken file."""

from __future__ import annotations

import ast
import importlib.util

from labs import REPO

spec = importlib.util.spec_from_file_location("mutation_sample", REPO / "bench" / "mutation_sample.py")
sampler = importlib.util.module_from_spec(spec)
spec.loader.exec_module(sampler)


def test_a_comparison_gets_its_edge_moved_and_turned_round_and_its_number_one_off():
    got = sampler.mutants_of("        if loss >= 20:  # percent", compared=True, strings=False)
    assert ("edge", "        if loss > 20:  # percent") in got
    assert ("turn round", "        if loss < 20:  # percent") in got
    assert {new for kind, new in got if kind == "threshold"} == {
        "        if loss >= 2:  # percent", "        if loss >= 200:  # percent",
        "        if loss >= 19:  # percent", "        if loss >= 21:  # percent"}


def test_text_in_strings_and_comments_is_never_mutated():
    line = 'x = f("a < b and not c", 3600)  # max(1, 2) or True'
    for kind, new in sampler.mutants_of(line, compared=True, strings=False):
        assert new.startswith('x = f("a < b and not c", ') and new.endswith("  # max(1, 2) or True"), (kind, new)
    assert {kind for kind, _ in sampler.mutants_of(line, compared=True, strings=False)} == {"threshold"}
    # an element of a literal set of strings is dropped whole, never cut inside
    assert sampler.mutants_of('CODES = ("91", "96", "N7")', compared=False, strings=True) == [
        ("drop an element", 'CODES = ("96", "N7")'), ("drop an element", 'CODES = ("91", "N7")')]


def test_every_mutant_of_the_code_base_is_still_python_and_changes_its_line():
    pool = sampler.candidates()
    assert len(pool) > 1000
    kinds = {kind for _, _, kind, _, _ in pool}
    assert kinds == {"edge", "turn round", "threshold", "and/or", "min/max", "true/false", "plus/minus", "drop not",
                     "drop an element"}
    for rel, _, _, old, new in pool[::25]:
        assert old != new
        source = (REPO / rel).read_text(encoding="utf-8")
        ast.parse(source.replace(old, new))  # raises SyntaxError if a mutant broke the file


def test_a_draw_on_a_change_takes_only_the_lines_it_wrote(tmp_path, monkeypatch):
    """``draw --changed REV`` sweeps one change before it lands: the line numbers are the working tree's,
    a line the change deleted is not there, and a file it did not touch gives none."""
    import subprocess

    git = ["git", "-c", "user.name=t", "-c", "user.email=t@t", "-c", "commit.gpgsign=false"]
    (tmp_path / "core").mkdir()
    (tmp_path / "core" / "a.py").write_text("x = 1\ny = 2\nz = 3\n")
    (tmp_path / "core" / "b.py").write_text("w = 1\n")
    subprocess.run(["git", "init", "-q"], cwd=tmp_path, check=True)
    subprocess.run([*git, "add", "."], cwd=tmp_path, check=True)
    subprocess.run([*git, "commit", "-qm", "base"], cwd=tmp_path, check=True)
    (tmp_path / "core" / "a.py").write_text("x = 1\nz = 30\nq = 4\nr = 5\n")
    monkeypatch.setattr(sampler, "REPO", tmp_path)
    assert sampler.changed_lines("HEAD") == {"core/a.py": {2, 3, 4}}
