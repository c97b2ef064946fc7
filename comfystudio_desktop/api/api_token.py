"""The API's bearer token: generated once into the home's `api_token` file (0600), never logged."""

from __future__ import annotations

import hmac
import logging
import os
import re
import secrets
import stat
from pathlib import Path

from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.home import Home

__all__ = ["TOKEN_FILE", "load_or_create_token", "token_matches"]

log = logging.getLogger(__name__)
TOKEN_FILE = "api_token"
_TOKEN_RE = re.compile(r"[A-Za-z0-9_-]{43}")


def token_path(home: Home) -> Path:
    """Where the token lives."""
    return home.root / TOKEN_FILE


def load_or_create_token(home: Home) -> str:
    """The home's token; a missing or malformed file is replaced by a fresh token (32 random bytes)."""
    path = token_path(home)
    existing = _read_token(path)
    if existing is not None:
        return existing
    token = secrets.token_urlsafe(32)
    tmp = path.with_name(f".{TOKEN_FILE}-{secrets.token_hex(4)}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0), 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(token + "\n")
        fh.flush()
        os.fsync(fh.fileno())
    replace_file(tmp, path)
    log.info("API token written to %r", str(path))
    return token


def _read_token(path: Path) -> str | None:
    try:
        info = path.lstat()
    except FileNotFoundError:
        return None
    if not stat.S_ISREG(info.st_mode):
        raise OSError(f"{path} is not a regular file; remove it and start again")
    if os.name == "posix" and info.st_mode & 0o077:
        path.chmod(0o600)  # our own file, made readable by others by someone: narrow it again
    text = path.read_text(encoding="ascii", errors="replace").strip()
    return text if _TOKEN_RE.fullmatch(text) else None


def token_matches(expected: str, given: str) -> bool:
    """Constant-time comparison, so the time taken says nothing about how much of a guess was right."""
    return hmac.compare_digest(expected.encode("ascii"), given.encode("utf-8", "surrogateescape"))
