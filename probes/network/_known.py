"""Last-known-good addresses of the payment hosts, kept in ``state_dir`` across sweeps.

When the resolvers fall silent, the question that separates "only DNS fails" from "nothing beyond
the gateway answers" is whether the payment host itself still answers at the address it had when
things worked. The TCP probe records every address a connect succeeded to; the DNS probe reads them
back. The file is tiny, written atomically, and rewritten only when an address is new, so that a
terminal on flash storage does not write on every sweep.
"""

from __future__ import annotations

import contextlib
import json
import os
import time

FILE_NAME = "known-addresses.json"
#: Addresses kept per host name, newest first: enough to survive a DNS round-robin change.
KEEP = 4


def _path(state_dir: str) -> str:
    return os.path.join(state_dir, FILE_NAME)


def load(state_dir: str | None) -> dict[str, tuple[str, ...]]:
    """host name → addresses that accepted a connection in an earlier sweep (empty when none)."""
    if not state_dir:
        return {}
    try:
        with open(_path(state_dir), encoding="utf-8") as fh:
            data = json.load(fh)
        return {str(name): tuple(str(a) for a in entry["addresses"]) for name, entry in data["hosts"].items()}
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return {}


def remember(state_dir: str | None, found: dict[str, str]) -> bool:
    """Record ``host name → address that worked``; True when the file changed. Never raises: the
    record is a help for a later diagnosis, not something this one depends on."""
    if not state_dir or not found:
        return False
    known = load(state_dir)
    changed = {name: addr for name, addr in found.items() if known.get(name, ())[:1] != (addr,)}
    if not changed:
        return False
    hosts = {name: {"addresses": list(addrs)} for name, addrs in known.items()}
    for name, addr in changed.items():
        rest = [a for a in known.get(name, ()) if a != addr]
        hosts[name] = {"addresses": [addr, *rest][:KEEP], "seen_at": round(time.time())}
    path = _path(state_dir)
    tmp = f"{path}.{os.getpid()}.tmp"
    try:
        os.makedirs(state_dir, exist_ok=True)
        with open(tmp, "w", encoding="utf-8") as fh:
            json.dump({"hosts": hosts}, fh, indent=1)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        return False
    return True
