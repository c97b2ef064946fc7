"""Finding ComfyUI where people keep it, for the first-run assistant. Qt-free; the file checks are pure functions
of a folder, so tests run them on folders they create.

Kinds of install: a server already answering (`probe_server`), the Windows portable build
(`ComfyUI_windows_portable/python_embeded/python.exe` + `ComfyUI/main.py`), ComfyUI Desktop's base folder (its
`.venv` and `models/`; the app's `config.json` names it) and any ComfyUI folder (a `main.py` beside `comfy/`),
whose Python is looked for in the usual virtual-environment places.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path, PureWindowsPath

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyError

__all__ = [
    "ComfyInstall",
    "InstallKind",
    "ServerProbe",
    "candidate_folders",
    "desktop_base_from_config",
    "desktop_config_files",
    "desktop_install",
    "discover_installs",
    "find_python",
    "folder_install",
    "install_at",
    "portable_install",
    "probe_server",
    "server_version",
]

DEFAULT_URL = "http://127.0.0.1:8188"
_MAX_CONFIG_BYTES = 256 * 1024
# Virtual environments a ComfyUI folder usually has, Windows and POSIX layouts.
_VENV_PYTHONS = (".venv/Scripts/python.exe", "venv/Scripts/python.exe", ".venv/bin/python", "venv/bin/python",
                 ".venv/bin/python3", "venv/bin/python3")


class InstallKind(Enum):
    """Where a ComfyUI was found."""

    RUNNING = "running"  # a server answering on a URL (external mode)
    PORTABLE = "portable"  # the Windows portable build
    DESKTOP = "desktop"  # ComfyUI Desktop's base folder
    FOLDER = "folder"  # a ComfyUI checkout (git clone, manual install)


@dataclass(frozen=True, slots=True)
class ComfyInstall:
    """A ComfyUI found on this machine: enough to run it (managed) or to watch it (external)."""

    kind: InstallKind
    root: Path | None = None  # the folder the user would recognise
    main: Path | None = None  # ComfyUI's main.py (managed mode needs it)
    python: Path | None = None  # the Python that runs it (None: not found, the user picks one)
    models_dir: Path | None = None
    url: str = ""  # for RUNNING
    version: str = ""  # for RUNNING, from /system_stats

    @property
    def can_manage(self) -> bool:
        """We can start and watch this one ourselves."""
        return self.main is not None and self.python is not None

    def describe(self) -> str:
        """One line for a list of found installs."""
        match self.kind:
            case InstallKind.RUNNING:
                return f"ComfyUI {self.version or ''} running at {self.url}".replace("  ", " ")
            case InstallKind.PORTABLE:
                return f"Windows portable build in {self.root}"
            case InstallKind.DESKTOP:
                return f"ComfyUI Desktop's folder {self.root}"
        python = "" if self.python is not None else " (Python not found: choose it)"
        return f"ComfyUI folder {self.root}{python}"


@dataclass(frozen=True, slots=True)
class ServerProbe:
    """What a ComfyUI server said about itself (None from `probe_server` if nothing answered)."""

    url: str
    version: str


def server_version(stats: object) -> str | None:
    """ComfyUI's version from a `/system_stats` reply; None if the reply is not ComfyUI's."""
    if not isinstance(stats, dict):
        return None
    system = stats.get("system")
    if not isinstance(system, dict) or not isinstance(stats.get("devices"), list):
        return None
    version = system.get("comfyui_version", "")
    return version if isinstance(version, str) else None


def probe_server(url: str = DEFAULT_URL, timeout: float = 2.0) -> ServerProbe | None:
    """Ask `url` for `/system_stats`; a `ServerProbe` if ComfyUI answers, else None (blocking: not on the GUI)."""
    with ComfyClient(url, connect_timeout=timeout, read_timeout=timeout) as client:
        try:
            version = server_version(client.system_stats())
        except ComfyError:
            return None
    return ServerProbe(url, version) if version is not None else None


def portable_install(folder: Path) -> ComfyInstall | None:
    """The portable build at `folder` (its root, or the `ComfyUI` folder inside it)."""
    for root in (folder, folder.parent):
        python, main = root / "python_embeded" / "python.exe", root / "ComfyUI" / "main.py"
        if python.is_file() and main.is_file():
            return ComfyInstall(InstallKind.PORTABLE, root=root, main=main, python=python,
                                models_dir=_dir_or_none(root / "ComfyUI" / "models"))
    return None


def find_python(folder: Path) -> Path | None:
    """The Python of a ComfyUI folder: its `.venv`/`venv`, or the portable build's embedded one next to it."""
    for relative in _VENV_PYTHONS:
        if (folder / relative).is_file():
            return folder / relative
    embedded = folder.parent / "python_embeded" / "python.exe"
    return embedded if embedded.is_file() else None


def folder_install(folder: Path) -> ComfyInstall | None:
    """A ComfyUI checkout at `folder`: `main.py` beside the `comfy` package (not just any main.py)."""
    main = folder / "main.py"
    if not main.is_file() or not (folder / "comfy").is_dir():
        return None
    return ComfyInstall(InstallKind.FOLDER, root=folder, main=main, python=find_python(folder),
                        models_dir=_dir_or_none(folder / "models"))


def desktop_install(base: Path, app_main: Path | None = None) -> ComfyInstall | None:
    """ComfyUI Desktop's base folder (its `.venv` and `models/`); `app_main` is the app's bundled main.py if known.

    Desktop keeps ComfyUI's code inside its own program files; without that main.py it can only be watched.
    """
    python = next((base / rel for rel in _VENV_PYTHONS if (base / rel).is_file()), None)
    if python is None or not (base / "models").is_dir():
        return None
    main = app_main if app_main is not None and app_main.is_file() else None
    return ComfyInstall(InstallKind.DESKTOP, root=base, main=main, python=python, models_dir=base / "models")


def install_at(folder: Path) -> ComfyInstall | None:
    """Whatever ComfyUI the user pointed at: portable build, ComfyUI folder or Desktop base folder."""
    return portable_install(folder) or folder_install(folder) or desktop_install(folder)


def desktop_base_from_config(text: str) -> Path | None:
    """The `basePath` in ComfyUI Desktop's `config.json`; None if the text is not such a file."""
    try:
        data = json.loads(text)
    except ValueError:
        return None
    base = data.get("basePath") if isinstance(data, dict) else None
    return Path(base) if isinstance(base, str) and base.strip() and "\x00" not in base else None


def desktop_config_files(env: Mapping[str, str], home: Path, platform: str) -> list[Path]:
    """Where ComfyUI Desktop keeps its `config.json` on `platform` ("win32", "darwin", "linux")."""
    if platform == "win32":
        appdata = env.get("APPDATA")
        return [Path(appdata) / "ComfyUI" / "config.json"] if appdata else []
    if platform == "darwin":
        return [home / "Library" / "Application Support" / "ComfyUI" / "config.json"]
    config = env.get("XDG_CONFIG_HOME") or str(home / ".config")
    return [Path(config) / "ComfyUI" / "config.json"]


def desktop_app_main(env: Mapping[str, str], platform: str) -> Path | None:
    """ComfyUI Desktop's bundled main.py (Windows per-user install), if it is there."""
    local = env.get("LOCALAPPDATA")
    if platform != "win32" or not local:
        return None
    main = Path(local) / "Programs" / "@comfyorgcomfyui-electron" / "resources" / "ComfyUI" / "main.py"
    return main if main.is_file() else None


def candidate_folders(env: Mapping[str, str], home: Path, platform: str) -> list[Path]:
    """Folders people usually unpack or clone ComfyUI into, most likely first."""
    names = ("ComfyUI_windows_portable", "ComfyUI")
    places = [home, home / "Desktop", home / "Downloads", home / "Documents"]
    if platform == "win32":
        places += [Path(PureWindowsPath(f"{drive}:\\")) for drive in "CDEF"]
        if env.get("USERPROFILE"):
            places.insert(0, Path(env["USERPROFILE"]))
    found: list[Path] = []
    for place in places:
        for name in names:
            if place / name not in found:
                found.append(place / name)
    return found


def discover_installs(env: Mapping[str, str], home: Path, platform: str) -> list[ComfyInstall]:
    """Every ComfyUI install found in the usual places (no server probe: see `probe_server`)."""
    found: list[ComfyInstall] = []
    for install in _installs(env, home, platform):
        if install.root not in {f.root for f in found}:
            found.append(install)
    return found


def _installs(env: Mapping[str, str], home: Path, platform: str) -> Iterator[ComfyInstall]:
    for config in desktop_config_files(env, home, platform):
        base = desktop_base_from_config(_read_small(config))
        if base is not None:
            install = desktop_install(base, desktop_app_main(env, platform))
            if install is not None:
                yield install
    for folder in candidate_folders(env, home, platform):
        install = install_at(folder) if _is_dir(folder) else None
        if install is not None:
            yield install


def _read_small(path: Path) -> str:
    try:
        with path.open("rb") as handle:
            return handle.read(_MAX_CONFIG_BYTES).decode("utf-8", errors="replace")
    except OSError:
        return ""


def _is_dir(path: Path) -> bool:
    try:
        return path.is_dir()
    except OSError:
        return False


def _dir_or_none(path: Path) -> Path | None:
    return path if _is_dir(path) else None
