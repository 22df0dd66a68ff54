"""Text that is English where it is logged and the reader's language where a person reads it.

The same refusal travels two ways: a bad configuration, a token file others can read or a socket
path that is taken is printed by the CLI to a technician, in the language they chose, and logged by
the daemon to journald, where it stays English because operators grep for it. A :class:`Message` is
therefore a ``str`` holding the English (what ``str()``, ``%s``, ``join`` and JSON see, so every
existing use keeps working) that remembers its template and fields, and :func:`translated` says it
again in a language when it reaches a person.

The template is marked where the message is made — ``Message(N_("{key}: expected {what}"), ...)``
— so the catalogue extractor sees the literal. A field may itself be a Message (what a key expects,
the kind of a file) and is translated with the sentence around it.
"""

from __future__ import annotations

from typing import Any

from posdiag.core import i18n


class Message(str):
    """English text that can be said again in another language (:func:`translated`)."""

    template: str
    fields: dict[str, Any]

    def __new__(cls, template: str, /, **fields: Any) -> Message:
        english = i18n.translator(i18n.DEFAULT).tr(template, **fields)
        self = super().__new__(cls, english)
        self.template, self.fields = template, fields
        return self

    def __reduce__(self) -> tuple:  # pickled (multiprocessing) as the plain English it is
        return (str, (str(self),))


def translated(text: Any, translator: i18n.Translator | None = None) -> str:
    """``text`` in ``translator``'s language (the process's by default): a :class:`Message` is
    translated with its fields, an exception says its message, anything else is shown as it is."""
    if isinstance(text, BaseException):
        said = getattr(text, "message", None)
        return translated(said, translator) if isinstance(said, Message) else str(text)
    if not isinstance(text, Message):
        return str(text)
    t = translator or i18n.current()
    return t.tr(text.template, **{k: translated(v, t) if isinstance(v, Message) else v for k, v in text.fields.items()})


class Refusal(Exception):
    """An error whose text is a :class:`Message`: English where it is logged or put in JSON (``str()``),
    in the reader's language where the CLI prints it (:func:`translated` reads ``message``)."""

    def __init__(self, message: Message) -> None:
        self.message = message
        super().__init__(str(message))
