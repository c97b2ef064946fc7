"""The home folder: one place for config, logs, storage, Redis data and pid files.

Resolution order: `--home DIR`, env `COMFYSTUDIO_HOME`, a `portable` marker beside the frozen executable
(the folder `data/` next to it), the platform's user data folder (on Windows the local, not the roaming, one).
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "Home", "HomeError", "check_home_root", "resolve_home"]

APP_NAME = "ComfyStudio"
HOME_ENV = "COMFYSTUDIO_HOME"


class HomeError(Exception):
    """The home folder cannot be used (it is a file, under a file, read-only, …); the message says which and why."""


def check_home_root(root: Path) -> None:
    """Raise HomeError if `root` exists but is not a folder (checked before anything is read from it)."""
    try:
        is_file = root.exists() and not root.is_dir()
    except (OSError, ValueError) as exc:  # e.g. a NUL byte, a name too long
        raise HomeError(f"Cannot use {str(root)!r} as the home folder: {_reason(exc)}") from exc
    if is_file:
        raise HomeError(f"The home {str(root)!r} is a file, not a folder; choose another with --home.")


def resolve_home(cli_home: str | os.PathLike[str] | None = None) -> Path:
    """Pick the home folder (not created here)."""
    if cli_home:
        return Path(cli_home).expanduser().resolve()
    env = os.environ.get(HOME_ENV)
    if env:
        return Path(env).expanduser().resolve()
    if getattr(sys, "frozen", False):
        exe_dir = Path(sys.executable).resolve().parent
        if (exe_dir / "portable").exists():
            return exe_dir / "data"
    # Windows: %LOCALAPPDATA%, not the roaming profile that is copied at every logon (the queue's AOF and the images
    # belong to this machine); a home an earlier version made in %APPDATA% is kept. Elsewhere both are the same.
    local = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=False))
    roaming = Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=True))
    if roaming != local and roaming.is_dir() and not local.exists():
        return roaming
    return local


@dataclass(frozen=True, slots=True)
class Home:
    """Paths inside one home folder. `storage` may be moved elsewhere by the settings."""

    root: Path
    storage_override: Path | None = None

    def __post_init__(self) -> None:
        if os.name == "nt":
            # Windows drops trailing spaces and dots from the last name of a path it creates, but not from a folder
            # name inside a longer path: `C:\x\home \logs` is then not found. Name the home as Windows does.
            object.__setattr__(self, "root", Path(os.path.abspath(self.root)))

    @property
    def config_file(self) -> Path:
        """The typed settings, as JSON."""
        return self.root / "config.json"

    @property
    def logs(self) -> Path:
        """Rotating log files of the app and of the processes it starts."""
        return self.root / "logs"

    @property
    def storage(self) -> Path:
        """Inputs and outputs of jobs."""
        return self.storage_override or self.root / "storage"

    @property
    def inputs(self) -> Path:
        """Copies of the images a job was given: `upload_{job_id}_{slot}.png`."""
        return self.storage / "inputs"

    @property
    def outputs(self) -> Path:
        """Results: `{job_id}.png` (and `{job_id}_{n}.png` for batches)."""
        return self.storage / "outputs"

    @property
    def redis(self) -> Path:
        """The embedded server's config, secret, AOF and pid file."""
        return self.root / "redis"

    @property
    def outbox(self) -> Path:
        """Jobs accepted while Redis was unreachable, one fsync'ed file each."""
        return self.root / "outbox"

    @property
    def run(self) -> Path:
        """Pid files of supervised processes."""
        return self.root / "run"

    @property
    def workflows(self) -> Path:
        """User workflow templates (next to the shipped ones)."""
        return self.root / "workflows"

    def create(self) -> Home:
        """Create the folders that are missing; raise HomeError when that is impossible.

        Only folders created here are made private (0700 on POSIX): the root when it is new, and `redis/` (config
        and secret). A folder that already existed keeps its mode: `--home ~` must not change the user's home.
        """
        check_home_root(self.root)
        made_root = _make_folder(self.root, parents=True)
        if made_root:
            _restrict(self.root)
        for folder in (self.logs, self.inputs, self.outputs, self.outbox, self.run, self.workflows):
            _make_folder(folder, parents=True)
        if _make_folder(self.redis):
            _restrict(self.redis)
        return self

    def resolve_inside_storage(self, relative: str) -> Path:
        """Resolve `relative` under storage; raise ValueError if it points outside (e.g. `../x`)."""
        base = self.storage.resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base):
            raise ValueError(f"path {relative!r} is outside the storage folder")
        return target


def _make_folder(path: Path, *, parents: bool = False) -> bool:
    """Create `path` if missing; True if this call created it. Any failure is one HomeError naming the folder."""
    try:
        if path.is_dir():
            return False
        path.mkdir(parents=parents)
    except FileExistsError:
        if path.is_dir():
            return False  # another process made it meanwhile
        raise HomeError(f"Cannot create the folder {str(path)!r}: a file of that name is in the way.") from None
    except (OSError, ValueError) as exc:
        raise HomeError(f"Cannot create the folder {str(path)!r}: {_reason(exc)}") from exc
    return True


def _reason(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror  # "Read-only file system", "Not a directory", … without the path a second time
    return str(exc)


def _restrict(path: Path) -> None:
    # Only on folders we just created. chmod only narrows POSIX permissions; on Windows the user profile folder is
    # already private.
    if os.name == "posix":
        try:
            path.chmod(0o700)
        except OSError as exc:
            raise HomeError(f"Cannot make the folder {str(path)!r} private: {_reason(exc)}") from exc
