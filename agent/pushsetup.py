"""Is this terminal set up to push? The token file and the server's CA, checked before any send;
and which CAs the server is checked against when none is configured.

The configuration parser checks the keys themselves (an ``https://`` URL unless ``allow_insecure``,
a ``token_file`` when a URL is set); this module checks the files they name, as they are now:
``config check``, ``run``, ``push`` and ``diagnose --push`` refuse a token that group or others can
read — a bearer token is a password. No message here ever contains the token itself.
"""

from __future__ import annotations

import os
import stat
from typing import Any

from posdiag.core.files import NotRegularFile, file_kind, open_regular
from posdiag.core.i18n import N_
from posdiag.core.message import Message
from posdiag.core.redact import remember
from posdiag.core.settings import MAX_TOKEN_BYTES


class PushSetupError(RuntimeError):
    """The push setup cannot be used; ``problems`` name the key and what is expected (English as a
    string, for the sender's and the daemon's log; in the reader's language through ``translated``)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__("; ".join(problems))


def read_token(path: str) -> str:
    """The bearer token in ``path``; raises :class:`PushSetupError` saying what is wrong with the file."""
    try:
        fd, st = open_regular(path, follow_symlinks=False)
    except NotRegularFile:
        raise PushSetupError([Message(N_("server.token_file: {path} is not a regular file"), path=path)]) from None
    except FileNotFoundError:
        raise PushSetupError([Message(N_("server.token_file: {path} does not exist"), path=path)]) from None
    except PermissionError:
        raise PushSetupError([Message(N_("server.token_file: {path}: permission denied (run as root or the posdiag user)"),
                                      path=path)]) from None
    except OSError as exc:
        raise PushSetupError([Message(N_("server.token_file: cannot open {path} ({error}; a symlink is not followed)"),
                                      path=path, error=exc.strerror)]) from None
    try:
        raw = os.read(fd, MAX_TOKEN_BYTES + 1)
    finally:
        os.close(fd)
    token = raw.decode("ascii", errors="replace").strip()
    remember(token)  # from now on this process masks it wherever it would show up
    mode = stat.S_IMODE(st.st_mode)
    if mode & 0o077:
        raise PushSetupError([Message(N_("server.token_file: {path} is readable by group or others (mode {mode:04o}); "
                                         "a bearer token is a password: run 'chmod 600 {path}'"), path=path, mode=mode)])
    if not token:
        raise PushSetupError([Message(N_("server.token_file: {path} is empty; expected the terminal's token"), path=path)])
    if len(raw) > MAX_TOKEN_BYTES or any(c.isspace() or not c.isprintable() or c == "\ufffd" for c in token):
        raise PushSetupError([Message(N_("server.token_file: {path} does not hold one token "
                                         "(expected a single line of printable ASCII)"), path=path)])
    return token


def system_ca_bundle() -> str | bool:
    """The operating system's CA bundle, which the server's certificate is checked against when no
    ``ca_file`` is set (requests would otherwise trust its own certifi copy)."""
    import ssl

    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile, "/etc/ssl/certs/ca-certificates.crt"):
        if candidate and os.path.isfile(candidate):
            return candidate
    return paths.capath if paths.capath and os.path.isdir(paths.capath) else True


def token_state(path: str) -> dict[str, Any]:
    """What a support bundle says about the token file: whether it is there, what it is, its mode and
    what is wrong with it for pushing — never the token. The file is opened only as push opens it
    (:func:`read_token`: no symlink followed, non-blocking, at most :data:`MAX_TOKEN_BYTES` read)."""
    try:
        st = os.lstat(path)  # the name only: what is there, without opening it
    except OSError as exc:
        return {"path": path, "present": False, "problem": exc.strerror}
    try:
        read_token(path)
        problem = None
    except PushSetupError as exc:
        problem = "; ".join(exc.problems)
    return {"path": path, "present": True, "kind": str(file_kind(st.st_mode)), "mode": f"{stat.S_IMODE(st.st_mode):04o}",
            "uid": st.st_uid, "gid": st.st_gid, "problem": problem}


def check(server: Any) -> list[str]:
    """Problems with the push setup's files, empty when pushing can start (or no server is set)."""
    if not server.url:
        return []
    problems = []
    try:
        read_token(server.token_file)
    except PushSetupError as exc:
        problems += exc.problems
    if server.ca_file and not os.path.isfile(server.ca_file):
        problems.append(Message(N_("server.ca_file: expected an existing CA bundle file, got {value!r}"),
                                value=server.ca_file))
    return problems


def require(server: Any) -> None:
    problems = check(server)
    if problems:
        raise PushSetupError(problems)
