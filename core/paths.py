"""Where the packaged data lives: the ``posdiag.config`` package, in a checkout or an installed wheel."""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path


def data_dir() -> Path:
    """The folder holding ``posdiag.toml``, ``causes.toml``, the reader presets and the report schema.

    ``config/`` installs as the package ``posdiag.config``; importlib.resources finds it the same way
    for an editable install (the repository's folder) and a wheel (site-packages). Both are plain
    directories, so a ``Path`` is safe to hand to code that opens files by name.
    """
    return Path(str(files("posdiag.config")))


def default_config_path() -> Path:
    return data_dir() / "posdiag.toml"


def causes_path() -> Path:
    return data_dir() / "causes.toml"


def report_schema_path() -> Path:
    return data_dir() / "report.schema.json"
