"""Noticing that `config.json` changed (e.g. `comfystudio-desktop config set`) while a window or worker runs. Qt-free.

`SettingsWatch.poll()` is cheap (one `stat`): the file is read only when its size or mtime changed, and a change
counts only when its content hash differs, so a rewrite with the same content or a coarse mtime does not fire
twice and an edit within the same mtime tick is still seen at the next size change or poll after it. The owner
polls it from its own loop (the headless worker between jobs, the window from a QTimer).
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass, fields
from pathlib import Path

from comfystudio_desktop.settings import RESTART_FIELDS, Settings, SettingsError, load_settings

__all__ = ["SETTINGS_POLL_S", "SettingsChange", "SettingsWatch"]

#: How often a running window or worker looks at config.json for changes.
SETTINGS_POLL_S = 1.0

log = logging.getLogger(__name__)

_UNREAD = (-1, -1)  # a stamp no file has: the next poll reads again


@dataclass(frozen=True, slots=True)
class SettingsChange:
    """New settings read from the file, and which fields changed (split by whether a restart is needed)."""

    settings: Settings
    live: frozenset[str]
    need_restart: frozenset[str]


class SettingsWatch:
    """Polls one settings file; `poll()` returns a `SettingsChange` when its valid content changed."""

    def __init__(self, path: Path, current: Settings) -> None:
        self.path = path
        self.current = current
        self._stamp = self._stat()
        self._digest = self._hash()
        self._bad_digest: bytes | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            info = os.stat(self.path)
        except OSError:
            return None
        return info.st_size, info.st_mtime_ns

    def _hash(self) -> bytes | None:
        try:
            return hashlib.sha256(self.path.read_bytes()).digest()
        except OSError:
            return None

    def poll(self) -> SettingsChange | None:
        """Check the file; the change if it now holds different valid settings, else None.

        An invalid file is logged once (per content) and ignored: the running settings stay in force.
        """
        stamp = self._stat()
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        digest = self._hash()
        if digest is None and stamp is not None:
            # There but unreadable for now (on Windows: being replaced by a writer): look again at the next poll.
            self._stamp = _UNREAD
            return None
        if digest in (self._digest, self._bad_digest):
            return None
        try:
            new = load_settings(self.path)
        except SettingsError as exc:
            self._bad_digest = digest
            log.warning("Settings file changed but is not valid, keeping the running settings: %s", exc)
            return None
        self._digest = digest
        changed = frozenset(f.name for f in fields(Settings) if getattr(new, f.name) != getattr(self.current, f.name))
        if not changed:
            return None
        self.current = new
        change = SettingsChange(new, changed - RESTART_FIELDS, changed & RESTART_FIELDS)
        log.info("Settings changed: %s%s", ", ".join(sorted(change.live)) or "-",
                 f" (after a restart: {', '.join(sorted(change.need_restart))})" if change.need_restart else "")
        return change
