"""Build steps pyproject.toml cannot express: compile the message catalogues (``.po`` → ``.mo``) and
freeze the cause knowledge base (``causes.toml`` → ``causes.frozen.json``, read at start-up instead
of parsing the TOML; see ``core/frozen.py``).

A wheel (and the Debian package built from it) carries only the compiled files; an editable install
makes them next to their sources in the checkout, where the installed package finds them.
"""

import importlib.util
import sys
from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "packaging"))

from catalogues import compile_to  # noqa: E402 - found through the path set just above


def _freeze(source: Path, target_dir: Path) -> None:
    # core/frozen.py imports nothing of posdiag, so it is loaded from its file: the package is not
    # importable while it is being built
    spec = importlib.util.spec_from_file_location("posdiag_frozen", HERE / "core" / "frozen.py")
    frozen = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(frozen)
    frozen.freeze(source, target_dir)


class BuildWithCatalogues(build_py):
    def run(self) -> None:
        super().run()
        if getattr(self, "editable_mode", False):
            compile_to(HERE / "core" / "locale")
            _freeze(HERE / "config" / "causes.toml", HERE / "config")
        else:
            compile_to(Path(self.build_lib) / "posdiag" / "core" / "locale")
            _freeze(HERE / "config" / "causes.toml", Path(self.build_lib) / "posdiag" / "config")


setup(cmdclass={"build_py": BuildWithCatalogues})
