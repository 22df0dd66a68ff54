#!/usr/bin/env python3
"""What masking card data and secrets costs: per report, per POS log line, and at start-up.

    python3 bench/mask_bench.py [--repeat N] [--report FILE]

* report: a full report of a real ``posdiag diagnose --json`` (every probe this machine can run, a
  POS log whose 2824 lines carry card data, so the quoted evidence is masked) unmasked again by
  nothing — it is masked as :func:`build_report` masks it, ``N`` times → median and worst µs of one
  :func:`mask_data` over the whole report;
* lines: :func:`mask_text` over POS log lines with nothing to hide and with card data → µs per line;
* start-up: a fresh interpreter importing :mod:`posdiag.core.redact` and masking one report (the
  regular expressions are compiled on first use) against one that only loads the report → the
  difference in ms, median of 9.
  The issue allows masking at most 10 ms of a command's start-up.

``--report FILE`` times that report (JSON) instead of a fresh one, and writes the fresh one there when
the file does not exist yet: the same report, timed before and after a change to the masking.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from labs.helpers import write_config  # noqa: E402
from posdiag.core.redact import mask_data, mask_text  # noqa: E402

NOW = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
CLEAN = [f"{NOW} txn={i} amount=12.50 term=lane-7 code={'2824' if i % 3 else '0'} rc=91" for i in range(50)]
DIRTY = [f"{NOW} txn=1 pan=4111111111111111 code=2824 rc=91",
         f"{NOW} txn=2 card 5500 0000 0000 0004 exp=2812 cvv=7351 code=2824 rc=96",
         f"{NOW} txn=3 t1=%B4000056655665556^PRIVACY/TESTER^2812101987654321000000? code=2824 rc=91",
         f"{NOW} txn=4 emv 57134111111111111111D28121010000000000F 5A084111111111111111 code=2824 rc=05",
         f"{NOW} txn=5 online PIN: code=2824 rc=55 pin_block 1234ABCD5678EF00",
         f"{NOW} txn=6 GET https://ops:pw@pay.example/auth?session=S-1 Authorization: Bearer tok_1 code=0 rc=00"]


def full_report(tmp: Path) -> dict:
    log = tmp / "pos.log"
    log.write_text("\n".join(CLEAN + DIRTY) + "\n")
    config = write_config(tmp / "posdiag.toml", {"txlog": {"path": str(log)},
                                                 "daemon": {"state_dir": str(tmp / "state"),
                                                            "control_socket": str(tmp / "ctl.sock")}})
    proc = subprocess.run([sys.executable, "-m", "posdiag.agent", "diagnose", "--json", "--config", str(config)],
                          capture_output=True, text=True, cwd=REPO, timeout=120)
    return json.loads(proc.stdout)


def per_call_us(function, value, repeat: int) -> tuple[float, float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        function(value)
        times.append((time.perf_counter() - start) * 1e6)
    return statistics.median(times), max(times)


def startup_ms(report_file: Path, with_masking: bool) -> float:
    work = ("import json, sys; from posdiag.core.redact import mask_data; mask_data(json.load(open(sys.argv[1])))"
            if with_masking else "import json, sys; json.load(open(sys.argv[1]))")
    timer = f"import time; t = time.perf_counter(); exec({work!r}); print((time.perf_counter() - t) * 1000)"
    runs = [float(subprocess.run([sys.executable, "-c", timer, str(report_file)], capture_output=True, text=True,
                                 check=True, cwd=REPO).stdout) for _ in range(9)]
    return statistics.median(runs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=200)
    parser.add_argument("--report", type=Path, help="the report to time (written there first if missing)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        report_file = args.report or Path(tmp) / "report.json"
        if not report_file.exists():
            report_file.write_text(json.dumps(full_report(Path(tmp))))
        report = json.loads(report_file.read_text())
        size = len(report_file.read_bytes())
        median, worst = per_call_us(mask_data, report, args.repeat)
        print(f"mask_data, full report ({len(report['probes'])} probes, {size} bytes JSON): "
              f"median {median:.0f} µs, worst {worst:.0f} µs over {args.repeat}")
        for name, lines in (("clean", CLEAN), ("card data", DIRTY)):
            median, _ = per_call_us(lambda ls: [mask_text(x) for x in ls], lines, args.repeat)
            print(f"mask_text, POS log line with {name}: {median / len(lines):.1f} µs a line")
        plain, masked = startup_ms(report_file, False), startup_ms(report_file, True)
        print(f"start-up: import + first mask_data of the report {masked - plain:.1f} ms "
              f"({masked:.1f} against {plain:.1f} ms, median of 9 fresh interpreters)")


if __name__ == "__main__":
    main()
