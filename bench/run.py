#!/usr/bin/env python3
"""Scenario benchmark: diagnosis accuracy and speed against real injected faults.

    python3 bench/run.py [--repeat N] [--only GROUP,...] [--json FILE]

Prints one row per scenario (expected and diagnosed top cause, in how many repeats the expected
diagnosis came out, confidence of the top cause, certainty of the expected one — the least certain
where several independent faults are expected, each of which must reach 0.8 —, median and max wall
time of ``posdiag diagnose`` against its limit), top-1 accuracy (a scenario counts only when it held
in every repeat), the certainty figures, and the median wall time on the packaged default config.
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
import scenarios_field  # noqa: F401 - registers its scenarios
import scenarios_host  # noqa: F401 - registers its scenarios
import scenarios_multi  # noqa: F401
import scenarios_network
import scenarios_reader
import scenarios_txlog  # noqa: F401


def byte_compile() -> None:
    """Byte-compile the agent first, as pip and dpkg do when they install it on a terminal: with
    PYTHONDONTWRITEBYTECODE set (as in some CI shells) every run would otherwise recompile every
    module and the bench would time the compiler, not posdiag."""
    import compileall

    root = Path(__file__).resolve().parent.parent
    for folder in ("core", "agent", "probes", "config"):
        compileall.compile_dir(str(root / folder), quiet=1)


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


def certainty_figures(results: list[harness.Outcome]) -> None:
    """How sure the reports were of what was really there: the expected cause's certainty over the
    scenarios with a fault, and over those with several independent faults, the least certain one."""
    faults = [o for o in results if o.scenario.expect != "none" or o.scenario.present]
    multi = [o for o in faults if o.scenario.present]
    said = [o.certainty for o in faults if o.certainty is not None]
    if not said:
        print(f"certainty: not in these reports ({len(faults)} scenarios with a fault)")
        return
    print(f"certainty of the expected cause, over {len(said)} scenarios with a fault: median {statistics.median(said):.2f}, "
          f"min {min(said):.2f}; >= {harness.CERTAIN:g} in {sum(c >= harness.CERTAIN for c in said)}")
    if multi:
        certain = sum(o.certainty is not None and o.certainty >= harness.CERTAIN for o in multi)
        print(f"several independent faults on one till: every fault >= {harness.CERTAIN:g} in {certain}/{len(multi)} scenarios")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeat", type=int, default=3,
                        help="diagnoses per scenario (median is reported; some scenarios insist on more)")
    parser.add_argument("--only", help="comma-separated scenario groups or names")
    parser.add_argument("--default-runs", type=int, default=10, help="timed runs on the default config")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args()
    harness.compile_bytecode()

    byte_compile()
    wanted = set(args.only.split(",")) if args.only else None
    rows, results = [], []
    for sc in harness.SCENARIOS:
        if wanted and sc.group not in wanted and sc.name not in wanted:
            continue
        expected = "+".join(sc.present) if sc.present else sc.expect
        if sc.needs_root and os.geteuid() != 0:
            rows.append((sc.group, sc.name, expected, "(not run: needs root)", "", "", "", "", "", "", ""))
            continue
        out = harness.run_scenario(sc, args.repeat)
        mark = "ok" if out.correct and out.in_time else "MISS" if not out.correct else "SLOW"
        cert = "-" if out.certainty is None else f"{out.certainty:.2f}"
        rows.append((sc.group, sc.name, expected, out.top, f"{out.held}/{len(out.tops)}", f"{out.confidence:.2f}", cert,
                     f"{out.median_s:.3f}", f"{max(out.wall_s, default=float('nan')):.3f}", f"{sc.limit_s:g}", mark))
        results.append(out)
        if out.error:
            print(f"  {sc.name}: {out.error}", file=sys.stderr)

    header = ("group", "scenario", "expected", "diagnosed", "held", "conf", "cert", "median s", "max s", "limit s", "")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    correct = sum(o.correct for o in results)
    runs, held = sum(len(o.tops) for o in results), sum(o.held for o in results)
    print(f"\ntop-1 accuracy: {correct}/{len(results)} scenarios held in every repeat = {correct / max(1, len(results)):.0%}"
          f" ({held}/{runs} diagnoses)")
    certainty_figures(results)
    slow = [o.scenario.name for o in results if not o.in_time]
    print(f"within time (median wall <= {harness.FAST_S:g} s, loss-sampling scenarios <= {harness.DEADLINE_S:g} s; every "
          f"report's duration_s <= the {harness.DEADLINE_S:g} s deadline): {len(results) - len(slow)}/{len(results)}"
          + (f" — slow: {', '.join(slow)}" if slow else ""))
    timed = [o.median_s for o in results if o.wall_s]  # a scenario whose setup failed has no time
    if timed:
        print(f"median wall time per scenario: {statistics.median(timed):.3f} s")

    timings = harness.default_config_timing(args.default_runs, ("en", "zh_CN")) if args.default_runs else {}
    default = timings.get("en", [])
    for lang, times in timings.items():
        print(f"posdiag diagnose on the default config, {lang}: median {statistics.median(times):.3f} s "
              f"over {len(times)} runs (min {min(times):.3f}, max {max(times):.3f})")
    if timings:
        zh_cost = statistics.median(timings["zh_CN"]) - statistics.median(default)
        print(f"  Chinese costs {zh_cost * 1000:+.0f} ms of start-up; loading its catalogue alone "
              f"{harness.catalogue_load_ms(5):.1f} ms (median of 5 fresh interpreters)")
        print(f"import time of the CLI and host probes (over a bare interpreter): {harness.import_time(5):.3f} s")
    if not wanted or "reader" in wanted:
        medians = scenarios_reader.handshake_latency()
        print("reader handshake against the emulator (pty, 9600 baud, median of 50): "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in medians.items()))
    if os.geteuid() == 0 and (not wanted or "network" in wanted or "deadline" in wanted):
        deadline_comparison()
    if args.json:
        Path(args.json).write_text(json.dumps({
            "scenarios": [{"name": o.scenario.name, "group": o.scenario.group, "expected": o.scenario.expect,
                           "present": list(o.scenario.present), "diagnosed": o.top, "confidence": o.confidence,
                           "certainty": o.certainty, "median_s": o.median_s,
                           "held": o.held, "repeats": len(o.tops), "wall_s": o.wall_s, "limit_s": o.scenario.limit_s,
                           "correct": o.correct} for o in results],
            "accuracy": correct / max(1, len(results)),
            "default_config_median_s": statistics.median(default) if default else None,
            "default_config_median_zh_CN_s": statistics.median(timings["zh_CN"]) if timings else None,
        }, indent=2))
    return 0 if correct == len(results) else 1


if __name__ == "__main__":
    sys.exit(main())
