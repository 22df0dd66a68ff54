"""Transaction-log scenarios: a real POS log with declines, PIN errors, format errors, host outages."""

from __future__ import annotations

from contextlib import ExitStack
from datetime import datetime, timedelta
from pathlib import Path

from harness import Setup, exits, scenario


def _log(tmp: Path, entries: list[tuple[str, str | None, float, int]]) -> Setup:
    lines = []
    for code, rc, ago, txn in entries:
        ts = (datetime.now() - timedelta(seconds=ago)).strftime("%Y-%m-%d %H:%M:%S")
        lines.append(f"{ts} txn={txn} amount=23.90 code={code}" + (f" rc={rc}" if rc else ""))
    path = tmp / "pos.log"
    path.write_text("\n".join(lines) + "\n")
    return Setup({"txlog": {"path": str(path)}})


def tx(name: str, expect: str, responses: list[str | None], spacing_s: float = 90.0, same_txn: bool = False,
       check=None) -> None:
    def build(tmp: Path, stack: ExitStack) -> Setup:
        n = len(responses)
        return _log(tmp, [("2824", rc, (n - i) * spacing_s, 1 if same_txn else i) for i, rc in enumerate(responses)])

    scenario(name, expect, group="txlog", check=check)(build)


tx("tx-declines", "account.declined", ["51", "05", "51", "61", "54"])
tx("tx-pin-errors", "operator.input", ["55", "55", "75"])
tx("tx-format-errors", "data.format", ["30", "30", "12"])
tx("tx-host-outage", "host.service_down", ["91", "91", "96", "68"])
tx("tx-repeated-swipes", "operator.input", [None, None, None, None], spacing_s=3, same_txn=True)
# The POS log is evidence of the symptom (issue #18): 2824s and nothing wrong on the terminal is a
# fault beyond it — degraded, exit 1, never healthy; and response codes weigh by how often they occur.
tx("tx-2824-only", "host.upstream", [None] * 6, spacing_s=60, check=exits(1))
tx("tx-codes-by-count", "host.service_down", ["91", "96", None, "91", "30"])
