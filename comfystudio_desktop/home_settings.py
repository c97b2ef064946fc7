"""Opening the home for a command or the window: the folder, its settings, logging.

Kept apart from `runtime` (Redis and the queue), so that a command that reads one record (`status`) can open the
home without importing redis-py.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
from pathlib import Path

from comfystudio_desktop.home import Home, check_home_root, resolve_home
from comfystudio_desktop.logging_setup import configure_logging
from comfystudio_desktop.settings import Settings, load_settings

__all__ = ["COMFY_URL_ENV", "load_home_and_settings"]

COMFY_URL_ENV = "COMFYSTUDIO_COMFY_URL"


def load_home_and_settings(home_dir: str | os.PathLike[str] | None = None, *, comfy_url: str | None = None,
                           log_to_stderr: bool = True, stderr_level: int = logging.INFO) -> tuple[Home, Settings]:
    """Resolve and create the home, configure logging (INFO to the log file), load settings, apply the URL."""
    root = resolve_home(home_dir)
    check_home_root(root)  # a file named as the home: one clear HomeError, before reading config.json "in" it
    settings = load_settings(root / "config.json")
    home = Home(root, Path(settings.storage_dir) if settings.storage_dir else None).create()
    configure_logging(home.logs, stderr=log_to_stderr, level=logging.INFO, stderr_level=stderr_level)
    url = comfy_url or os.environ.get(COMFY_URL_ENV)
    if url:
        settings = replace(settings, comfy_url=url).validate()
    return home, settings
