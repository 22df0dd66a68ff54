#!/usr/bin/env python3
"""The message catalogues: extract what the code marks, merge it into each language's ``.po``, and
compile the ``.po`` files to the ``.mo`` files the agent loads.

    python3 packaging/catalogues.py update    # after changing marked text: new entries appear untranslated
    python3 packaging/catalogues.py compile   # what the build does (setup.py) and the test suite checks

Marked text is ``tr("...")``, ``ntr("one", "many", n)``, ``N_("...")`` and ``N_plural("one", "many")``
in Python and JavaScript,
and ``data-tr`` elements in the collector's HTML (see :func:`extract_html`). Needs Babel, a build and
test dependency only: a terminal loads the compiled ``.mo`` with the standard library.
"""

from __future__ import annotations

import io
import os
import sys
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LOCALE = REPO / "core" / "locale"
DOMAIN = "posdiag"
KEYWORDS = {"tr": None, "ntr": (1, 2), "N_": None, "N_plural": (1, 2)}
#: where marked text is looked for, and how (Babel's method map, relative to the repository)
METHOD_MAP = [
    ("core/**.py", "python"),
    ("agent/**.py", "python"),
    ("probes/**.py", "python"),
    ("collector/**.py", "python"),
    ("collector/static/**.js", "javascript"),
    ("collector/static/**.html", "html"),
]
def extract_html(fileobj: io.BufferedReader, keywords, comment_tags, options) -> Iterator[tuple]:
    """Babel extractor for the collector's pages: element text marked ``data-tr`` (an element with text
    only: markup inside it would be lost), and ``data-tr-title`` / ``data-tr-placeholder`` /
    ``data-tr-label`` / ``data-tr-alt`` attribute text."""
    from posdiag.collector.markup import marked_messages  # the page server reads the markup the same way

    text = fileobj.read().decode("utf-8")
    for offset, message in marked_messages(text):
        yield text.count("\n", 0, offset) + 1, None, message, []


def extract() -> object:
    """Every marked message in the code, as a Babel catalogue."""
    from babel.messages.catalog import Catalog
    from babel.messages.extract import extract_from_dir

    catalog = Catalog(domain=DOMAIN, project="posdiag")
    methods = [(pattern, extract_html if method == "html" else method) for pattern, method in METHOD_MAP]
    for filename, lineno, message, comments, context in extract_from_dir(
            str(REPO), methods, keywords=KEYWORDS, comment_tags=("TRANSLATORS:",), strip_comment_tags=True):
        catalog.add(message, None, [(filename, lineno)], auto_comments=comments, context=context)
    return catalog


def po_files() -> list[Path]:
    return sorted(LOCALE.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))


def read(po: Path) -> object:
    from babel.messages.pofile import read_po

    with po.open("rb") as data:
        return read_po(data, locale=po.parent.parent.name, domain=DOMAIN)


def update() -> None:
    """Merge the extracted messages into every language's ``.po``: new ones untranslated, gone ones dropped."""
    from babel.messages.pofile import write_po

    template = extract()
    for po in po_files():
        catalog = read(po)
        catalog.update(template, no_fuzzy_matching=True)
        catalog.obsolete.clear()
        with po.open("wb") as out:
            write_po(out, catalog, width=110, sort_output=False, omit_header=False, include_previous=False)
        print(f"{po.relative_to(REPO)}: {sum(1 for m in catalog if m.id and not m.string)} untranslated")


def compile_to(out_root: Path) -> list[Path]:
    """Compile every ``.po`` to ``<out_root>/<lang>/LC_MESSAGES/posdiag.mo``; returns what was written.

    Each catalogue is written beside its target and renamed over it: posdiag processes running
    meanwhile (the test suite compiles on every run, while other runs read) open either the whole
    old catalogue or the whole new one, never half of one."""
    import tempfile

    from babel.messages.mofile import write_mo

    written = []
    for po in po_files():
        target = out_root / po.parent.parent.name / "LC_MESSAGES" / f"{DOMAIN}.mo"
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=f".{DOMAIN}.", suffix=".mo")
        try:
            with os.fdopen(fd, "wb") as out:
                write_mo(out, read(po), use_fuzzy=False)
            os.chmod(temp, 0o644)  # as the file it replaces: every posdiag user reads it
            os.replace(temp, target)
        except BaseException:
            Path(temp).unlink(missing_ok=True)
            raise
        written.append(target)
    return written


if __name__ == "__main__":
    command = sys.argv[1] if len(sys.argv) > 1 else ""
    if command == "update":
        update()
    elif command == "compile":
        for path in compile_to(LOCALE):
            print(path.relative_to(REPO))
    else:
        sys.exit(__doc__)
