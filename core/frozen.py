"""The knowledge base read as JSON made at build time, not parsed as TOML at every start.

``causes.toml`` is about 50 KB of TOML; parsing it costs some 10 ms of every ``posdiag diagnose``,
while a technician waits and on a slow till more. JSON of the same content loads some forty times
faster. So the build (``setup.py``) writes a twin, ``causes.frozen.json``, beside the TOML, holding
the parsed document and the size and CRC-32 of the TOML bytes it was made from. The TOML stays the
one source: the twin is used only while it matches those bytes exactly, so a file edited on a till,
a checkout without a rebuild, or a twin that cannot be read all fall back to parsing the TOML.
"""

from __future__ import annotations

import json
import sys
import zlib
from pathlib import Path
from typing import Any

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on 3.10 only
    import tomli as tomllib

#: what the twin's name adds to the TOML's stem
SUFFIX = ".frozen.json"


def twin_of(path: Path) -> Path:
    return path.with_name(path.stem + SUFFIX)


def _stamp(raw: bytes) -> dict[str, int]:
    return {"size": len(raw), "crc32": zlib.crc32(raw)}


def load_toml(path: Path) -> dict[str, Any]:
    """The TOML document at ``path``, from its twin when the twin was made from these very bytes.

    Raises what reading and parsing the TOML raise (``FileNotFoundError``, ``TOMLDecodeError``,
    ``UnicodeDecodeError``): a twin never hides a broken or missing file."""
    raw = path.read_bytes()
    try:
        frozen = json.loads(twin_of(path).read_bytes())
        if isinstance(frozen, dict) and frozen.get("source") == _stamp(raw) and isinstance(frozen.get("data"), dict):
            return frozen["data"]
    except (OSError, ValueError):
        pass
    return tomllib.loads(raw.decode("utf-8"))


def freeze(path: Path, target_dir: Path | None = None) -> Path:
    """Write the twin of the TOML at ``path`` (into ``target_dir``, default beside it); the build
    calls this. TOML dates and times have no JSON form: a file holding them is refused (TypeError)."""
    raw = path.read_bytes()
    twin = twin_of(path if target_dir is None else target_dir / path.name)
    document = {"source": _stamp(raw), "data": tomllib.loads(raw.decode("utf-8"))}
    twin.write_text(json.dumps(document, ensure_ascii=False, separators=(",", ":")), encoding="utf-8")
    return twin
