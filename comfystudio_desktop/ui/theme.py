"""Look and feel: Fusion style on the system palette, the app and tray icons, and palette-derived colours.

Nothing here hard-codes a foreground or background: every colour is derived from the current palette so
light and dark system themes both stay readable, and follow a theme switch while the app runs.
"""

from __future__ import annotations

from enum import Enum

from PySide6.QtCore import QObject, Qt
from PySide6.QtGui import QColor, QIcon, QPalette
from PySide6.QtWidgets import QApplication, QWidget

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.ui.resources_path import icon_path

__all__ = [
    "Scheme",
    "ThemeFollower",
    "app_icon",
    "apply_theme",
    "dark_palette",
    "error_color",
    "is_dark",
    "scheme_for",
    "set_app_theme",
    "status_color",
    "tray_icon",
]


class Scheme(Enum):
    """The palette the app shows."""

    LIGHT = "light"
    DARK = "dark"
    PLATFORM = "platform"  # the system did not say: keep the platform's own palette


def scheme_for(theme: str, system: Qt.ColorScheme) -> Scheme:
    """The scheme for the `theme` setting (system | light | dark) while the OS reports `system`."""
    if theme == "light":
        return Scheme.LIGHT
    if theme == "dark":
        return Scheme.DARK
    return {Qt.ColorScheme.Dark: Scheme.DARK, Qt.ColorScheme.Light: Scheme.LIGHT}.get(system, Scheme.PLATFORM)


def dark_palette() -> QPalette:
    """A dark palette (the colours Qt's Fusion uses in dark mode), for platforms that do not provide one."""
    base, window, text, dim = QColor(36, 36, 36), QColor(48, 48, 48), QColor(232, 232, 232), QColor(140, 140, 140)
    palette = QPalette(window)
    role = QPalette.ColorRole
    for which, color in ((role.Window, window), (role.WindowText, text), (role.Base, base),
                         (role.AlternateBase, QColor(56, 56, 56)), (role.Text, text), (role.Button, window),
                         (role.ButtonText, text), (role.ToolTipBase, QColor(60, 60, 60)), (role.ToolTipText, text),
                         (role.Highlight, QColor(42, 130, 218)), (role.HighlightedText, QColor(255, 255, 255)),
                         (role.Link, QColor(110, 170, 255)), (role.PlaceholderText, dim),
                         (role.BrightText, QColor(255, 90, 90)), (role.Light, QColor(72, 72, 72)),
                         (role.Midlight, QColor(60, 60, 60)), (role.Mid, QColor(40, 40, 40)),
                         (role.Dark, QColor(24, 24, 24)), (role.Shadow, QColor(0, 0, 0))):
        palette.setColor(which, color)
    for which in (role.WindowText, role.Text, role.ButtonText):
        palette.setColor(QPalette.ColorGroup.Disabled, which, dim)
    return palette


class ThemeFollower(QObject):
    """Keeps the app's palette on the chosen theme and, for "system", follows the OS switching light/dark."""

    def __init__(self, app: QApplication, theme: str = "system") -> None:
        super().__init__(app)
        self._app = app
        self._platform = QPalette(app.palette())
        self.theme = theme
        self.scheme = Scheme.PLATFORM
        app.styleHints().colorSchemeChanged.connect(self._on_style_hints_color_scheme_changed)
        self.apply(theme)

    def apply(self, theme: str, system: Qt.ColorScheme | None = None) -> Scheme:
        """Use `theme` (system | light | dark) now, with the OS on `system` (asked if None); the scheme shown."""
        self.theme = theme
        hints = self._app.styleHints()
        if theme == "system":
            hints.unsetColorScheme()
        else:  # tells native parts (title bars on Windows 11) too, where the platform supports it
            hints.setColorScheme(Qt.ColorScheme.Dark if theme == "dark" else Qt.ColorScheme.Light)
        self.scheme = scheme_for(theme, hints.colorScheme() if system is None else system)
        if self.scheme is Scheme.DARK:
            palette = dark_palette()
        elif self.scheme is Scheme.LIGHT:
            palette = self._app.style().standardPalette() if is_dark(self._platform) else self._platform
        else:
            palette = self._platform
        self._app.setPalette(palette)
        for widget in QApplication.allWidgets():  # views cache palette-derived colours in their delegates
            _repaint(widget)
        return self.scheme

    def _on_style_hints_color_scheme_changed(self, scheme: Qt.ColorScheme) -> None:
        if self.theme == "system":
            self.apply("system", scheme)


def _repaint(widget: QWidget) -> None:
    widget.update()

# Hue per status (HSL degrees); None means grey.
_STATUS_HUES: dict[JobStatus, int | None] = {
    JobStatus.QUEUED: None,
    JobStatus.PROCESSING: 212,
    JobStatus.FINISHED: 135,
    JobStatus.FAILED: 0,
    JobStatus.CANCELLED: 35,
}


def apply_theme(app: QApplication, theme: str = "system") -> ThemeFollower:
    """Use the Fusion style on the `theme` setting's palette (following the OS for "system"), and the app icon."""
    app.setStyle("Fusion")
    app.setWindowIcon(app_icon())
    existing = app.findChild(ThemeFollower)
    if isinstance(existing, ThemeFollower):
        existing.apply(theme)
        return existing
    return ThemeFollower(app, theme)


def set_app_theme(theme: str) -> None:
    """Switch the running app to the `theme` setting (after the settings dialog saved it)."""
    app = QApplication.instance()
    if isinstance(app, QApplication):
        apply_theme(app, theme)


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
