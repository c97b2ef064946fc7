"""Find the shipped `resources/` folder, from a source checkout and from a PyInstaller build.

The PyInstaller spec must bundle the folder as `("resources", "resources")`.
"""

from __future__ import annotations

import sys
from pathlib import Path

__all__ = ["icon_path", "resource_path", "resources_dir"]


def resources_dir() -> Path:
    """The `resources/` folder: under `sys._MEIPASS` when frozen, else at the repository root."""
    frozen_root = getattr(sys, "_MEIPASS", None)
    if frozen_root is not None:
        return Path(frozen_root) / "resources"
    return Path(__file__).resolve().parents[2] / "resources"


def resource_path(*parts: str) -> Path:
    """A file inside `resources/`; raise FileNotFoundError naming it if it is missing."""
    path = resources_dir().joinpath(*parts)
    if not path.exists():
        raise FileNotFoundError(f"resource {'/'.join(parts)} not found in {resources_dir()}")
    return path


def icon_path(name: str) -> Path:
    """An icon in `resources/icons/`, e.g. `icon_path("app.png")`."""
    return resource_path("icons", name)
