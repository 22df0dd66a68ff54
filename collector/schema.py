"""Validation against ``config/report.schema.json``, the report contract terminals and server share.

Checking runs on every received report, so the schema is compiled once (fastjsonschema: ~25 µs a
report); only a report that fails is run through jsonschema too, for a message that names the JSON
path and what was expected there.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import lru_cache
from importlib.resources import files
from typing import Any

import fastjsonschema
import jsonschema

SCHEMA_ID = "posdiag.report/1"


@lru_cache(maxsize=1)
def _schema() -> dict[str, Any]:
    return json.loads((files("posdiag.config") / "report.schema.json").read_text(encoding="utf-8"))


@lru_cache(maxsize=1)
def _fast() -> Callable[[Any], Any]:
    return fastjsonschema.compile(_schema())


def problem(report: Any) -> str | None:
    """What is wrong with ``report`` for a person to read, or None when it is a valid report."""
    if not isinstance(report, dict):
        return "the body is JSON but not an object"
    if report.get("schema") != SCHEMA_ID:
        return f"$.schema: expected {SCHEMA_ID!r}, got {report.get('schema')!r}"
    try:
        _fast()(report)
        return None
    except fastjsonschema.JsonSchemaValueException as fast_error:
        error = jsonschema.exceptions.best_match(jsonschema.Draft202012Validator(_schema()).iter_errors(report))
        if error is None:  # the two validators disagree: trust the stricter one, say what it said
            return fast_error.message
        return f"{error.json_path}: {error.message}"


def warm() -> None:
    """Compile at start, so the first terminal does not pay for it."""
    _fast()
