"""The home folder: one place for config, logs, storage, Redis data and pid files.

Resolution order: `--home DIR`, env `COMFYSTUDIO_HOME`, a `portable` marker beside the frozen executable
(the folder `data/` next to it), the platform's user data folder.
"""

from __future__ import annotations

import os
import sys
from dataclasses import dataclass
from pathlib import Path

import platformdirs

__all__ = ["APP_NAME", "Home", "resolve_home"]

APP_NAME = "ComfyStudio"
HOME_ENV = "COMFYSTUDIO_HOME"


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
    return Path(platformdirs.user_data_dir(APP_NAME, appauthor=False, roaming=True))


@dataclass(frozen=True, slots=True)
class Home:
    """Paths inside one home folder. `storage` may be moved elsewhere by the settings."""

    root: Path
    storage_override: Path | None = None

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
        """Create every folder; the ones holding secrets are private to the user."""
        for folder in (self.root, self.logs, self.inputs, self.outputs, self.redis, self.outbox, self.run,
                       self.workflows):
            folder.mkdir(parents=True, exist_ok=True)
        for private in (self.root, self.redis):
            _restrict(private)
        return self

    def resolve_inside_storage(self, relative: str) -> Path:
        """Resolve `relative` under storage; raise ValueError if it points outside (e.g. `../x`)."""
        base = self.storage.resolve()
        target = (base / relative).resolve()
        if not target.is_relative_to(base):
            raise ValueError(f"path {relative!r} is outside the storage folder")
        return target


def _restrict(path: Path) -> None:
    # chmod only narrows POSIX permissions; on Windows the user profile folder is already private.
    if os.name == "posix":
        path.chmod(0o700)
