"""Look and feel: Fusion style on the system palette, the app and tray icons, and palette-derived colours.

Nothing here hard-codes a foreground or background: every colour is derived from the current palette so
light and dark system themes both stay readable, and follow a theme switch while the app runs.
"""

from __future__ import annotations

from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.ui.resources_path import icon_path

__all__ = ["app_icon", "apply_theme", "error_color", "is_dark", "status_color", "tray_icon"]

# Hue per status (HSL degrees); None means grey.
_STATUS_HUES: dict[JobStatus, int | None] = {
    JobStatus.QUEUED: None,
    JobStatus.PROCESSING: 212,
    JobStatus.FINISHED: 135,
    JobStatus.FAILED: 0,
    JobStatus.CANCELLED: 35,
}


def apply_theme(app: QApplication) -> None:
    """Use the Fusion style with the platform's palette (light or dark) and set the window icon."""
    app.setStyle("Fusion")
    app.setWindowIcon(app_icon())


def app_icon() -> QIcon:
    """The application icon."""
    return QIcon(str(icon_path("app.png")))


def tray_icon(state: str) -> QIcon:
    """The tray icon for "idle", "working" (jobs running) or "error" (a service is down)."""
    return QIcon(str(icon_path(f"tray-{state}.png")))


def is_dark(palette: QPalette) -> bool:
    """True when the palette has a dark window background."""
    return palette.color(QPalette.ColorRole.Window).lightness() < 128


def error_color(palette: QPalette) -> QColor:
    """A red that reads well as text on the palette's window colour."""
    return QColor.fromHsl(0, 200, 165) if is_dark(palette) else QColor.fromHsl(0, 170, 95)


def status_color(status: JobStatus, palette: QPalette) -> QColor:
    """The fill of a status pill: a tint that keeps the palette's text colour readable on it."""
    hue = _STATUS_HUES.get(status)
    dark = is_dark(palette)
    if hue is None:
        return QColor.fromHsl(0, 0, 85 if dark else 215)
    return QColor.fromHsl(hue, 150, 70 if dark else 200)
