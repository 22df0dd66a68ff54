"""The language a person reads: which one, and the translated text.

posdiag speaks English (the language of the source, so the identity) and Simplified Chinese, the
language of the 2824 field guide and of most people who meet the error at a till. The text lives in
gettext catalogues (``core/locale/<lang>/LC_MESSAGES/posdiag.po``), compiled to ``.mo`` when the
package is built; code marks a message with :func:`tr` (or :func:`ntr` where English counts, or
:func:`N_` for a constant translated later), and the test suite holds the catalogues and the code to
each other both ways.

A process speaks one language, chosen once (:func:`use`): a terminal's report is written in one
language from its first finding to its last step, and says which (``"lang"``). Code that serves
several languages at once — the collector's pages, rendering a stored report in the language it was
written in — asks for a :class:`Translator` of its own.

Translation must never cost a diagnosis: a catalogue that is missing or damaged (a damaged one is
said in one line on stderr) or a translation whose fields do not match the English falls back to
English, and English costs nothing to load.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Mapping
from typing import Any

from posdiag.core.numfmt import plain

#: Languages posdiag speaks, by the name used for ``--lang``, ``[terminal] language`` and ``"lang"``.
LANGUAGES = ("en", "zh_CN")
DEFAULT = "en"
DOMAIN = "posdiag"
#: Environment variables that name the locale, in the order POSIX gives them precedence for messages.
LOCALE_VARIABLES = ("LC_ALL", "LC_MESSAGES", "LANG")


def normalise(tag: str) -> str | None:
    """The language posdiag speaks for a locale name or language tag, or None if it speaks none of it.

    Accepts what people and browsers write: ``zh_CN.UTF-8``, ``zh-CN``, ``zh-Hans``, ``zh_SG``,
    ``zh``, ``en_US.UTF-8``, ``C``. Traditional Chinese (``zh_TW``, ``zh-Hant``, ``zh_HK``) is not
    Simplified Chinese and is not offered it.
    """
    base = tag.strip().split(".")[0].split("@")[0].replace("-", "_")
    if not base:
        return None
    parts = [p.lower() for p in base.split("_")]
    if parts[0] in ("c", "posix", "en"):
        return "en"
    if parts[0] == "zh":
        rest = set(parts[1:])
        if rest & {"tw", "hk", "mo", "hant"}:
            return None
        return "zh_CN"
    return None


def from_environment(environ: Mapping[str, str] | None = None) -> str | None:
    """The language the locale asks for: the first of LC_ALL, LC_MESSAGES, LANG that is set decides,
    as it does for every other program on the host."""
    environ = os.environ if environ is None else environ
    for name in LOCALE_VARIABLES:
        value = environ.get(name, "")
        if value:
            return normalise(value)
    return None


def choose(cli: str | None = None, configured: str | None = None, environ: Mapping[str, str] | None = None) -> str:
    """``--lang``, then ``[terminal] language``, then the locale; English when nothing says."""
    for candidate in (cli, configured):
        chosen = normalise(candidate) if candidate else None
        if chosen:  # a value posdiag does not speak is refused by its parser, in the next language that applies
            return chosen
    return from_environment(environ) or DEFAULT


class Translator:
    """One language's catalogue. English is the source text, so its translator returns it as is."""

    def __init__(self, lang: str, catalogue: Any = None) -> None:
        self.lang = lang
        self._catalogue = catalogue

    def gettext(self, message: str) -> str:
        """The message in this language, unformatted (what argparse's own text goes through)."""
        return self._catalogue.gettext(message) if self._catalogue is not None else message

    def ngettext(self, singular: str, plural: str, n: int) -> str:
        if self._catalogue is not None:
            return self._catalogue.ngettext(singular, plural, n)
        return singular if n == 1 else plural

    def tr(self, message: str, /, **fields: Any) -> str:
        """The message in this language, with ``{fields}`` filled in (no formatting without fields,
        so that text with literal braces or ``%`` passes through untouched)."""
        return self._tidy(_fill(self.gettext(message), message, fields))

    def ntr(self, singular: str, plural: str, n: int, /, **fields: Any) -> str:
        """A message that counts ``n`` (available as ``{n}``): English has two forms, Chinese one."""
        return self._tidy(_fill(self.ngettext(singular, plural, n), singular if n == 1 else plural, {"n": n, **fields}))

    def _tidy(self, text: str) -> str:
        """Chinese sets full-width punctuation (（）：，。) without a space on either side; a field that
        ends or starts at one ("{label} 拒绝连接" with a label ending in "（主用）") must not leave one."""
        return _AROUND_FULL_WIDTH.sub("", text) if self._catalogue is not None else text


#: spaces (never a line break or an indent after one) before or after a full-width punctuation mark
_AROUND_FULL_WIDTH = re.compile(r"[ \t]+(?=[\u3001\u3002\u300a-\u300f\uff08\uff09\uff0c\uff1a\uff1b\uff01\uff1f])"
                                r"|(?<=[\u3001\u3002\u300a-\u300f\uff08\uff09\uff0c\uff1a\uff1b\uff01\uff1f])[ \t]+(?=\S)")


class _Plain(float):
    """A number filled into a message: ``{limit:g}`` (or no format at all) never gives ``1e+07``."""

    def __format__(self, spec: str) -> str:
        return plain(float(self)) if spec in ("", "g") else super().__format__(spec)


def _fill(text: str, source: str, fields: Mapping[str, Any]) -> str:
    if not fields:
        return text
    fields = {k: _Plain(v) if type(v) is float else v for k, v in fields.items()}
    try:
        return text.format_map(fields)
    except (KeyError, IndexError, ValueError):  # a translation that names other fields: English rather than nothing
        return source.format_map(fields)


def catalogue_path(lang: str) -> Any:
    """Where the compiled catalogue of ``lang`` is installed (a Traversable, may not exist)."""
    from importlib.resources import files

    return files("posdiag.core").joinpath("locale", lang, "LC_MESSAGES", f"{DOMAIN}.mo")


@functools.cache
def translator(lang: str) -> Translator:
    """The translator for ``lang``, loaded once per process. A language posdiag does not speak, or a
    catalogue that is missing or unreadable, gives English: a till must still get its diagnosis."""
    lang = normalise(lang) or DEFAULT
    if lang == DEFAULT:
        return Translator(DEFAULT)
    import gettext  # only a process that speaks another language pays for it

    path = catalogue_path(lang)
    try:
        with path.open("rb") as data:
            return Translator(lang, gettext.GNUTranslations(data))
    except FileNotFoundError:  # a build without catalogues: English, as it always was
        return Translator(DEFAULT)
    except Exception as exc:  # noqa: BLE001 - a damaged .mo fails in gettext's own ways (struct.error, OSError, …)
        _say_damaged(lang, path, exc)
        return Translator(DEFAULT)


def _say_damaged(lang: str, path: Any, exc: Exception) -> None:
    """One line on stderr (in English: there is no catalogue to say it in) that the language asked
    for is not spoken and why, so that the English a technician then reads is not a mystery."""
    import sys

    try:
        sys.stderr.write(f"posdiag: the {lang} message catalogue {path} is damaged ({exc!r}); speaking English\n")
        sys.stderr.flush()
    except (AttributeError, OSError, ValueError):
        pass  # no stderr to say it on: English all the same


_active = Translator(DEFAULT)


def use(lang: str) -> Translator:
    """Make ``lang`` the language of this process's text (its reports, output and errors)."""
    global _active
    _active = translator(lang)
    return _active


def active() -> str:
    """The language this process speaks (what a report records as ``"lang"``)."""
    return _active.lang


def current() -> Translator:
    """The translator of this process's language."""
    return _active


def tr(message: str, /, **fields: Any) -> str:
    """``message`` in the process's language, ``{fields}`` filled in. Extracted into the catalogues."""
    return _active.tr(message, **fields)


def ntr(singular: str, plural: str, n: int, /, **fields: Any) -> str:
    """A counted message in the process's language; ``{n}`` is the count."""
    return _active.ntr(singular, plural, n, **fields)


def N_(message: str) -> str:
    """Marks a constant for the catalogue without translating it yet (it is passed to :func:`tr` later)."""
    return message


def N_plural(singular: str, plural: str) -> tuple[str, str]:
    """Marks a counted message kept in a table, for :func:`ntr` later: ``ntr(*words, n, ...)``."""
    return singular, plural
