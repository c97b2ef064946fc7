"""A stable id for this machine, so a job's record can say on which machine its files were written.

The id is a hash of the operating system's machine id (`/etc/machine-id` on Linux, `MachineGuid` on Windows), so
every home on one machine gives the same id and the raw machine id never leaves it. Without one, a random id is
kept in the home's `host_id` file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import secrets
import socket
import sys
from functools import cache
from pathlib import Path

from comfystudio_desktop.file_replace import replace_file

__all__ = ["host_id", "host_name"]

log = logging.getLogger(__name__)
_MACHINE_ID_FILES = (Path("/etc/machine-id"), Path("/var/lib/dbus/machine-id"))
_OWN_ID_RE = re.compile(r"[0-9a-f]{32}")


def _system_machine_id() -> str:
    if sys.platform == "win32":
        import winreg  # Windows only

        try:
            with winreg.OpenKey(winreg.HKEY_LOCAL_MACHINE, r"SOFTWARE\Microsoft\Cryptography") as key:
                value, _kind = winreg.QueryValueEx(key, "MachineGuid")
        except OSError:
            return ""
        return value.strip() if isinstance(value, str) else ""
    for path in _MACHINE_ID_FILES:
        try:
            text = path.read_text(encoding="ascii", errors="replace").strip()
        except OSError:
            continue
        if text:
            return text
    return ""


def _own_id(home_root: Path) -> str:
    path = home_root / "host_id"
    try:
        text = path.read_text(encoding="ascii", errors="replace").strip()
        if _OWN_ID_RE.fullmatch(text):
            return text
    except OSError:
        pass
    made = secrets.token_hex(16)
    tmp = path.with_name(f".host_id.{os.getpid()}.tmp")
    try:
        tmp.write_text(made, encoding="ascii")
        replace_file(tmp, path)
    except OSError as exc:
        log.warning("Host id not kept in %r (%s)", str(path), exc)
    return made


@cache
def host_id(home_root: Path) -> str:
    """32 hex digits naming this machine (the same for every home on it when the system has a machine id)."""
    machine = _system_machine_id()
    if not machine:
        return _own_id(home_root)
    return hashlib.sha256(f"comfystudio-host:{machine}".encode()).hexdigest()[:32]


def host_name() -> str:
    """This machine's name, for messages (at most 64 printable characters)."""
    name = "".join(c for c in socket.gethostname() if c.isprintable())
    return name[:64]
