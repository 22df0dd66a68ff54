"""Where the packaged data lives, whether posdiag runs from a checkout or an installed wheel."""

from __future__ import annotations

from pathlib import Path


def data_dir() -> Path:
    """The folder holding ``posdiag.toml``, ``causes.toml`` and the report schema.

    In a checkout (and an editable install) that is the repository's ``config/``; an installed
    wheel carries the same files as the ``posdiag_config`` package.
    """
    checkout = Path(__file__).resolve().parent.parent / "config"
    if (checkout / "causes.toml").is_file():
        return checkout
    import importlib.resources

    return Path(str(importlib.resources.files("posdiag_config")))


def default_config_path() -> Path:
    return data_dir() / "posdiag.toml"


def causes_path() -> Path:
    return data_dir() / "causes.toml"


def report_schema_path() -> Path:
    return data_dir() / "report.schema.json"
