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
    import importlib.util

    spec = importlib.util.find_spec("posdiag_config")  # a namespace package: data files only
    for location in (spec.submodule_search_locations or []) if spec else []:
        if (Path(location) / "causes.toml").is_file():
            return Path(location)
    raise FileNotFoundError("posdiag's data files (causes.toml, posdiag.toml) are not installed")


def default_config_path() -> Path:
    return data_dir() / "posdiag.toml"


def causes_path() -> Path:
    return data_dir() / "causes.toml"


def report_schema_path() -> Path:
    return data_dir() / "report.schema.json"
