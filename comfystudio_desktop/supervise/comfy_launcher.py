"""How to run a managed ComfyUI (argv, cwd, env from the settings) and how to tell that it answers."""

from __future__ import annotations

import ipaddress
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlparse

import requests

from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.process_spec import HealthCheck, ProcessSpec

__all__ = [
    "COMFY_SERVICE",
    "ComfyCommand",
    "ComfyLaunchError",
    "check_user_args",
    "comfy_command",
    "comfy_health_check",
    "comfy_pidfile",
    "comfy_process_spec",
    "find_comfy_python",
]

COMFY_SERVICE = "comfyui"
_LOOPBACK_NAMES = {"localhost", "localhost.localdomain"}
# Relative to the folder holding main.py: the Windows portable build, then the usual virtualenvs.
_PORTABLE_PYTHON = Path("..") / "python_embeded" / "python.exe"
_VENV_PYTHONS = (Path("venv") / "Scripts" / "python.exe", Path(".venv") / "Scripts" / "python.exe",
                 Path("venv") / "bin" / "python", Path(".venv") / "bin" / "python")


class ComfyLaunchError(ValueError):
    """The settings do not describe a ComfyUI we can start; the message says which setting to fix."""


@dataclass(frozen=True, slots=True)
class ComfyCommand:
    """What to run for a managed ComfyUI and where it will answer."""

    argv: tuple[str, ...]
    cwd: Path
    url: str
    env: dict[str, str] = field(default_factory=dict)


def find_comfy_python(main_py: Path) -> Path | None:
    """The portable install's `python_embeded\\python.exe` next to `ComfyUI/`, or a venv inside it."""
    base = main_py.parent
    for candidate in (_PORTABLE_PYTHON, *_VENV_PYTHONS):
        if (base / candidate).is_file():
            return (base / candidate).resolve()
    return None


def comfy_command(settings: Settings, port: int) -> ComfyCommand:
    """Build the managed ComfyUI command: its python, main.py, loopback address and port, then the user's args.

    Raises ComfyLaunchError for a missing main.py or python, and for user args that would expose ComfyUI on
    the network or fight over the port.
    """
    if not settings.comfy_main:
        raise ComfyLaunchError("set comfy_main to ComfyUI's main.py")
    main_py = Path(settings.comfy_main).expanduser()
    if not main_py.is_file():
        raise ComfyLaunchError(f"comfy_main {str(main_py)!r} is not a file")
    if not 0 < port <= 65535:
        raise ComfyLaunchError(f"port {port} is out of range")
    if settings.comfy_python:
        python = Path(settings.comfy_python).expanduser()
    elif (found := find_comfy_python(main_py)) is not None:
        python = found
    else:
        raise ComfyLaunchError("set comfy_python: no python_embeded or venv found next to ComfyUI's main.py")
    check_user_args(settings.comfy_args)
    argv = (str(python), str(main_py.resolve()), "--listen", "127.0.0.1", "--port", str(port), *settings.comfy_args)
    # Unbuffered UTF-8 output, so the log shows lines as they happen and a Windows code page cannot mangle them.
    env = {"PYTHONUNBUFFERED": "1", "PYTHONIOENCODING": "utf-8"}
    return ComfyCommand(argv=argv, cwd=main_py.parent.resolve(), url=f"http://127.0.0.1:{port}", env=env)


def check_user_args(args: Sequence[str]) -> None:
    """Refuse `--listen` to a non-loopback address and any `--port` (the app picks it; use comfy_port)."""
    # argparse accepts unambiguous prefixes (`--lis`), so match those too.
    for i, arg in enumerate(args):
        option, has_value, inline = arg.partition("=")
        if not option.startswith("--") or len(option) < 4:
            continue
        if "--port".startswith(option):
            raise ComfyLaunchError("comfy_args must not set --port; use the comfy_port setting")
        if not "--listen".startswith(option):
            continue
        value = inline if has_value else (args[i + 1] if i + 1 < len(args) else "")
        if value.startswith("-") and not has_value:
            value = ""  # a bare --listen means every interface
        if not value or not all(_is_loopback(host) for host in value.split(",")):
            raise ComfyLaunchError(f"comfy_args must not expose ComfyUI beyond this computer ({arg} {value})".strip())


def _is_loopback(host: str) -> bool:
    host = host.strip().strip("[]").lower()
    if host in _LOOPBACK_NAMES:
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def comfy_health_check(url: str, *, timeout_s: float = 3.0) -> HealthCheck:
    """A check that `GET {url}/system_stats` answers 200 within `timeout_s`."""
    target = url.rstrip("/") + "/system_stats"
    session = requests.Session()
    # A proxy from the environment must not stand between us and a ComfyUI on this computer.
    session.trust_env = not _is_loopback(urlparse(url).hostname or "")

    def check() -> bool:
        try:
            return session.get(target, timeout=timeout_s).status_code == 200
        except requests.RequestException:
            return False

    return check


def comfy_pidfile(run_dir: Path) -> Path:
    """Where a managed ComfyUI's pid file (pid, start time, port) lives."""
    return run_dir / f"{COMFY_SERVICE}.pid.json"


def comfy_process_spec(settings: Settings, *, port: int, run_dir: Path, readiness_timeout_s: float = 300.0,
                       health_timeout_s: float = 3.0) -> ProcessSpec:
    """The supervised-process spec of a managed ComfyUI (or, in external mode, of the ComfyUI we only watch)."""
    if settings.comfy_mode != "managed":
        return ProcessSpec(name=COMFY_SERVICE, health_check=comfy_health_check(settings.comfy_url,
                                                                               timeout_s=health_timeout_s))
    command = comfy_command(settings, port)
    # ComfyUI imports torch and every custom node before it listens: minutes on a cold disk.
    return ProcessSpec(name=COMFY_SERVICE, argv=command.argv, cwd=command.cwd, env=command.env,
                       health_check=comfy_health_check(command.url, timeout_s=health_timeout_s),
                       readiness_timeout_s=readiness_timeout_s, stop_grace_s=10.0,
                       pidfile=comfy_pidfile(run_dir), pid_extra={"port": port})


