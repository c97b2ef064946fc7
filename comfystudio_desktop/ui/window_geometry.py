"""Where the window was: its geometry and splitter positions, kept in an INI file in the home (QSettings).

QSettings keeps UI state only; the app's settings live in config.json.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QByteArray, QSettings
from PySide6.QtWidgets import QMainWindow, QSplitter

__all__ = ["SavedLayout", "WindowGeometry"]


class SavedLayout(Protocol):
    """A part of the window whose layout is remembered (the jobs table's columns)."""

    def save_state(self) -> QByteArray:
        """The layout now."""

    def restore(self, state: object) -> bool:
        """Apply a saved layout (anything else, or one that does not fit, leaves the default)."""


class WindowGeometry:
    """Restores and saves a window's geometry and its named splitters' positions."""

    def __init__(self, path: Path, window: QMainWindow, splitters: Mapping[str, QSplitter],
                 layouts: Mapping[str, SavedLayout] | None = None) -> None:
        self._state = QSettings(str(path), QSettings.Format.IniFormat)
        self._window = window
        self._splitters = dict(splitters)
        self._layouts = dict(layouts or {})

    def restore(self, default_width: int, default_height: int) -> None:
        """Put the window and splitters back where they were (the default size the first time)."""
        geometry = self._state.value("geometry")
        if isinstance(geometry, QByteArray):
            self._window.restoreGeometry(geometry)
        else:
            self._window.resize(default_width, default_height)
        for key, splitter in self._splitters.items():
            value = self._state.value(key)
            if isinstance(value, QByteArray):
                splitter.restoreState(value)
        for key, layout in self._layouts.items():
            layout.restore(self._state.value(key))

    def save(self) -> None:
        """Remember geometry and splitter positions now."""
        self._state.setValue("geometry", self._window.saveGeometry())
        for key, splitter in self._splitters.items():
            self._state.setValue(key, splitter.saveState())
        for key, layout in self._layouts.items():
            self._state.setValue(key, layout.save_state())
        self._state.sync()
