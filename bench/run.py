#!/usr/bin/env python3
"""Scenario benchmark: diagnosis accuracy and speed against real injected faults.

    python3 bench/run.py [--repeat N] [--only GROUP,...] [--json FILE] [--against PYTHON]

Prints one row per scenario (expected and diagnosed top cause, in how many repeats the expected cause
came out on top, confidence, median and max wall time of ``posdiag diagnose`` against its limit),
top-1 accuracy (a scenario counts only when it held in every repeat), and the median wall time on
the packaged default config.
``--against PYTHON`` times the posdiag of another interpreter (a venv with another checkout installed
editable, e.g. main's) in turns with this one, diagnosis by diagnosis: before and after figures and
their ratio from one run, sharing the box's noise.
Root is needed for the scenarios that mount filesystems or build network namespaces; without it
they are listed as not run.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import harness
import scenarios_host  # noqa: F401 - registers its scenarios
import scenarios_network
import scenarios_reader
import scenarios_txlog  # noqa: F401


def deadline_comparison() -> None:
    """Black-holed payment host: posdiag against the same checks run one after another."""
    import subprocess
    import tempfile
    from contextlib import ExitStack

    from labs.netlab import HOST_ADDR

    with ExitStack() as stack:
        tmp = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="posdiag-bench-deadline-")))
        setup = scenarios_network.build_lab(tmp, stack, fault=lambda lab: lab.black_hole(HOST_ADDR))
        cfg = harness.write_config(tmp / "posdiag.toml", harness.merge(harness.base_sections(tmp), setup.sections))
        walls = [harness.diagnose(cfg, setup.prefix)[0] for _ in range(3)]
        naive = subprocess.run([*setup.prefix, sys.executable, str(Path(__file__).parent / "naive_sequential.py"),
                                str(cfg)], capture_output=True, text=True, check=True)
        sequential = float(naive.stdout.strip())
    median = statistics.median(walls)
    print(f"black-holed payment host (deadline 3 s, timeout 1 s): posdiag diagnose median {median:.3f} s "
          f"(max {max(walls):.3f}); same checks one after another {sequential:.3f} s; "
          f"ratio {sequential / median:.1f}x")


def scenario_rows(args: argparse.Namespace, wanted: set[str] | None) -> tuple[list[tuple], list[harness.Outcome]]:
    rows, results = [], []
    blank = ("",) * (2 if args.against else 0)
    for sc in harness.SCENARIOS:
        if wanted and sc.group not in wanted and sc.name not in wanted:
            continue
        if sc.needs_root and os.geteuid() != 0:
            rows.append((sc.group, sc.name, sc.expect, "(not run: needs root)", "", "", "", "", "", *blank, ""))
            continue
        out = harness.run_scenario(sc, args.repeat, args.against)
        mark = "ok" if out.correct and out.in_time else "MISS" if not out.correct else "SLOW"
        against = (f"{out.against_median_s:.3f}", f"{out.against_median_s / out.median_s:.2f}") if args.against else ()
        rows.append((sc.group, sc.name, sc.expect, out.top, f"{out.held}/{len(out.tops)}", f"{out.confidence:.2f}",
                     f"{out.median_s:.3f}", f"{max(out.wall_s, default=float('nan')):.3f}", f"{sc.limit_s:g}", *against,
                     mark))
        results.append(out)
        if out.error:
            print(f"  {sc.name}: {out.error}", file=sys.stderr)
    return rows, results


def print_table(rows: list[tuple], against: bool) -> None:
    header = ("group", "scenario", "expected", "diagnosed", "held", "conf", "median s", "max s", "limit s",
              *(("against s", "ratio") if against else ()), "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())


def print_summary(results: list[harness.Outcome]) -> None:
    correct = sum(o.correct for o in results)
    runs, held = sum(len(o.tops) for o in results), sum(o.held for o in results)
    print(f"\ntop-1 accuracy: {correct}/{len(results)} scenarios held in every repeat = {correct / max(1, len(results)):.0%}"
          f" ({held}/{runs} diagnoses)")
    slow = [o.scenario.name for o in results if not o.in_time]
    print(f"within time (median wall <= {harness.FAST_S:g} s, loss-sampling scenarios <= {harness.DEADLINE_S:g} s; every "
          f"report's duration_s <= the {harness.DEADLINE_S:g} s deadline): {len(results) - len(slow)}/{len(results)}"
          + (f" — slow: {', '.join(slow)}" if slow else ""))
    if results:
        print(f"median wall time per scenario: {statistics.median(o.median_s for o in results):.3f} s")


def start_up(args: argparse.Namespace) -> dict[str, list[float]]:
    """The default configuration's figures: wall time per language (and against), what Chinese and the
    imports cost, and which CPU measure the system probe had on this host."""
    timings = harness.default_config_timing(args.default_runs, ("en", "zh_CN"), args.against)
    for key, times in timings.items():
        print(f"posdiag diagnose on the default config, {key}: median {statistics.median(times):.3f} s "
              f"over {len(times)} runs (min {min(times):.3f}, max {max(times):.3f})")
    if args.against:
        for lang in ("en", "zh_CN"):
            ratio = statistics.median(timings[lang + " against"]) / statistics.median(timings[lang])
            print(f"  {lang}: against / this = {ratio:.2f}")
    zh_cost = statistics.median(timings["zh_CN"]) - statistics.median(timings["en"])
    print(f"  Chinese costs {zh_cost * 1000:+.0f} ms of start-up; loading its catalogue alone "
          f"{harness.catalogue_load_ms(5):.1f} ms (median of 5 fresh interpreters)")
    print(f"import time of the CLI and host probes (over a bare interpreter): {harness.import_time(5):.3f} s"
          + (f"; against {harness.import_time(5, args.against):.3f} s" if args.against else ""))
    from posdiag.probes import _psi
    from posdiag.probes.system import CPU_WINDOW_S

    print("the system probe's CPU measure on this host: " + ("CPU pressure, read at once" if _psi.read_psi(_psi.CPU)
                                                            else f"the busy share over a {CPU_WINDOW_S:g} s sample"))
    return timings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3,
                        help="diagnoses per scenario (median is reported; some scenarios insist on more)")
    parser.add_argument("--only", help="comma-separated scenario groups or names")
    parser.add_argument("--default-runs", type=int, default=10, help="timed runs on the default config")
    parser.add_argument("--against", metavar="PYTHON",
                        help="also time every diagnosis with this interpreter's posdiag (e.g. a venv of main), in turns")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    for python in (sys.executable, args.against):
        if python:
            harness.compile_bytecode(python)

    wanted = set(args.only.split(",")) if args.only else None
    rows, results = scenario_rows(args, wanted)
    print_table(rows, bool(args.against))
    print_summary(results)
    timings = start_up(args) if args.default_runs else {}
    if not wanted or "reader" in wanted:
        medians = scenarios_reader.handshake_latency()
        print("reader handshake against the emulator (pty, 9600 baud, median of 50): "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items()))
    if os.geteuid() == 0 and (not wanted or "network" in wanted or "deadline" in wanted):
        deadline_comparison()
    correct = sum(o.correct for o in results)
    if args.json:
        Path(args.json).write_text(json.dumps({
            "scenarios": [{"name": o.scenario.name, "group": o.scenario.group, "expected": o.scenario.expect,
                           "diagnosed": o.top, "confidence": o.confidence, "median_s": o.median_s,
                           "held": o.held, "repeats": len(o.tops), "wall_s": o.wall_s, "limit_s": o.scenario.limit_s,
                           "correct": o.correct, "against_wall_s": o.against_wall_s} for o in results],
            "accuracy": correct / max(1, len(results)),
            "default_config_median_s": statistics.median(timings["en"]) if timings else None,
            "default_config_median_zh_CN_s": statistics.median(timings["zh_CN"]) if timings else None,
            "default_config_median_against_s": statistics.median(timings["en against"]) if args.against and timings
            else None,
        }, indent=2))
    return 0 if correct == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
