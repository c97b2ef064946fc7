"""Opening files and folders with the desktop's own programs (the image viewer, the file manager)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

from PySide6.QtCore import QUrl
from PySide6.QtGui import QDesktopServices

__all__ = ["open_path", "show_in_folder"]

log = logging.getLogger(__name__)


def open_path(path: Path) -> None:
    """Open a file or folder with the program the desktop uses for it."""
    if not QDesktopServices.openUrl(QUrl.fromLocalFile(str(path))):
        log.warning("The desktop could not open %r", str(path))


def show_in_folder(path: Path) -> None:
    """Show a file in its folder: selected in Explorer on Windows, its folder elsewhere."""
    if sys.platform == "win32":
        subprocess.Popen(["explorer", "/select,", os.path.normpath(path)])
    else:
        open_path(path.parent)
