"""Build step pyproject.toml cannot express: compile the message catalogues (``.po`` → ``.mo``).

A wheel (and the Debian package built from it) carries only the compiled ``.mo``; an editable
install compiles them next to their ``.po`` in the checkout, where the installed package finds them.
"""

import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "packaging"))

from catalogues import compile_to  # noqa: E402 - found through the path set just above


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            compile_to(HERE / "core" / "locale")
        else:
            compile_to(Path(self.build_lib) / "posdiag" / "core" / "locale")


setup(cmdclass={"build_py": BuildWithCatalogues})
