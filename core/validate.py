"""The generic validator: a TOML table checked against a frozen dataclass that declares it.

The schema lives apart, in :mod:`posdiag.core.settings` (a field's type, default and ``metadata``:
``min``/``max``, ``pattern``, ``regex``, ``required``); this module knows no key of posdiag's. Every
problem is a :class:`Message` naming the key and what was expected, so ``config check`` reports all
of them at once, in the reader's language.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from typing import Any, Literal, Union

from posdiag.core.i18n import N_
from posdiag.core.message import Message
from posdiag.core.numfmt import plain
from posdiag.core.redact import mask_text

#: any integer beyond this is refused before it is compared or converted (no key needs more)
MAX_INTEGER = 2**53


#: What a key of each type expects, said whole (a list's words are not built from its items' words:
#: Chinese does not make plurals with "s").
_TYPE_WORDS = {str: N_("a string"), int: N_("an integer"), float: N_("a number"), bool: N_("true or false")}
_LIST_WORDS = {str: N_("a list of strings"), int: N_("a list of integers"), float: N_("a list of numbers")}
#: What a TOML value is, with the value shown after it.
_GOT_WORDS = {str: N_("string {value}"), bool: N_("boolean {value}"), int: N_("integer {value}"),
              float: N_("number {value}"), list: N_("list {value}"), dict: N_("table {value}")}


def describe(tp: Any) -> str:
    """What a value of type ``tp`` must be, as a :class:`Message` ("an integer", "one of 'a', 'b'")."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return Message(N_("one of {choices}"), choices=", ".join(repr(a) for a in typing.get_args(tp)))
    if origin is list:
        item = typing.get_args(tp)[0]
        return Message(_LIST_WORDS[item]) if item in _LIST_WORDS else Message(N_("a list of {item}"), item=describe(item))
    if origin in (Union, types.UnionType):
        first, *rest = typing.get_args(tp)
        said = describe(first)
        for other in rest:
            said = Message(N_("{first} or {second}"), first=said, second=describe(other))
        return said
    return Message(_TYPE_WORDS[tp]) if tp in _TYPE_WORDS else getattr(tp, "__name__", str(tp))


def got(value: Any) -> str:
    """What a TOML value is and the value itself ("string 'x'"), long lists and tables elided; card data
    and secrets masked (a refused value may be a URL with a password, and errors end up in logs and tickets)."""
    if type(value) is float:
        shown = plain(value)  # 1e16 as the number it is, not in scientific notation
    else:
        shown = mask_text(repr(value)) if not isinstance(value, (dict, list)) or len(repr(value)) < 40 else "…"
    words = _GOT_WORDS.get(type(value))
    return Message(words, value=shown) if words else f"{type(value).__name__} {shown}"


def matches_type(value: Any, tp: Any) -> bool:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return value in typing.get_args(tp)
    if origin in (Union, types.UnionType):
        return any(matches_type(value, a) for a in typing.get_args(tp))
    if origin is list:
        return isinstance(value, list) and all(matches_type(v, typing.get_args(tp)[0]) for v in value)
    if tp is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if tp is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, tp)


def unknown_name(key: str, where: str, known: list[str]) -> str:
    """An unknown key (``where`` is its full name) or section (``where`` is ``[name]``), with the
    closest known name, or all of them."""
    import difflib  # only a misspelt name needs it

    close = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    if where.startswith("["):
        if close:
            return Message(N_("{section}: unknown section (did you mean '{suggestion}'?)"), section=where,
                           suggestion=close[0])
        return Message(N_("{section}: unknown section (known sections: {known})"), section=where,
                       known=", ".join(sorted(known)))
    if close:
        return Message(N_("{key}: unknown key (did you mean '{suggestion}'?)"), key=where, suggestion=close[0])
    return Message(N_("{key}: unknown key (known keys: {known})"), key=where, known=", ".join(sorted(known)))


def build_section(cls: type, table: Any, where: str, problems: list[str], refused: set[str] | None = None) -> Any:
    """The section ``where`` as ``cls``, each refused key left at its default (None when a required one
    is missing). Problems go to ``problems``; the names of refused values (``network.ping_count``, or
    the whole section) to ``refused``, so that rules spanning keys can leave out those that read them."""
    refused = set() if refused is None else refused
    if not isinstance(table, dict):
        problems.append(Message(N_("[{section}]: expected a table, got {got}"), section=where, got=got(table)))
        refused.add(where)
        return cls()
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.name != "source"}
    values: dict[str, Any] = {}
    for key, value in table.items():
        if key not in fields:
            problems.append(unknown_name(key, f"{where}.{key}", list(fields)))
            continue
        checked = check_value(value, hints[key], fields[key].metadata, f"{where}.{key}", problems)
        if checked is INVALID:
            refused.add(f"{where}.{key}")
        else:
            values[key] = checked
    for name, f in fields.items():
        if f.metadata.get("required") and name not in table:
            problems.append(Message(N_("{key}: missing, expected {expected}"), key=f"{where}.{name}",
                                    expected=describe(hints[name])))
    try:
        return cls(**values)
    except TypeError:  # only reachable when a required value was refused above
        refused.add(where)
        return None


INVALID = object()


def check_value(value: Any, tp: Any, meta: Any, key: str, problems: list[str]) -> Any:
    if not matches_type(value, tp):
        problems.append(Message(N_("{key}: expected {expected}, got {got}"), key=key, expected=describe(tp),
                                got=got(value)))
        return INVALID
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        problem = number_problem(value, meta.get("min"), meta.get("max"))
        if problem:
            problems.append(Message(N_("{key}: {problem}"), key=key, problem=problem))
            return INVALID
    if tp is float:
        value = float(value)  # safe now: the value is finite and within its range
    if meta.get("pattern") and isinstance(value, str) and not re.fullmatch(meta["pattern"], value):
        expected = Message(meta["pattern_doc"]) if "pattern_doc" in meta else meta["pattern"]
        problems.append(Message(N_("{key}: expected {expected}, got {value!r}"), key=key, expected=expected,
                                value=mask_text(value)))
        return INVALID
    if meta.get("regex") and value:
        try:
            re.compile(value)
        except re.error as exc:
            problems.append(Message(N_("{key}: expected a valid regular expression, got {value!r} ({error})"),
                                    key=key, value=value, error=str(exc)))
            return INVALID
    return value


def number_problem(value: float, lo: float | None, hi: float | None) -> str | None:
    """Why a number is refused, or None. Checked on the value as TOML gave it, before any conversion:
    a 400-digit integer must not reach ``float()`` or a format string, and NaN compares false with
    every bound, so it would pass a plain range test."""
    if isinstance(value, float) and not math.isfinite(value):
        return Message(N_("expected a finite number, got {value!r}"), value=value)
    if isinstance(value, int) and abs(value) > MAX_INTEGER:
        return Message(N_("expected a number from {lo} to {hi}, got an integer of {digits} digits"), lo=show_bound(lo),
                       hi=show_bound(hi), digits=len(str(abs(value))))
    if (lo is not None and value < lo) or (hi is not None and value > hi):
        return Message(N_("expected a number from {lo} to {hi}, got {value}"), lo=show_bound(lo), hi=show_bound(hi),
                       value=plain(value))
    return None


def show_bound(bound: float | None) -> str:
    return Message(N_("any")) if bound is None else plain(bound)


def nesting_depth(data: Any, limit: int) -> int:
    """How deeply lists and tables nest in ``data``, counted no further than past ``limit`` (iterative:
    no recursion to exhaust)."""
    deepest, stack = 0, [(data, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        if level > limit:
            break
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack += [(child, level + 1) for child in children if isinstance(child, (dict, list))]
    return deepest
