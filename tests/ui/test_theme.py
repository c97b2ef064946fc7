"""The theme follows the OS scheme or the forced setting; badges and bars stay readable on both palettes."""

from __future__ import annotations

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QColor, QPalette
from PySide6.QtWidgets import QApplication

from comfystudio_desktop.jobs import JobStatus
from comfystudio_desktop.ui.theme import (
    Scheme,
    ThemeFollower,
    apply_theme,
    dark_palette,
    is_dark,
    scheme_for,
    status_color,
)


@pytest.mark.parametrize(("theme", "system", "scheme"), [
    ("system", Qt.ColorScheme.Dark, Scheme.DARK), ("system", Qt.ColorScheme.Light, Scheme.LIGHT),
    ("system", Qt.ColorScheme.Unknown, Scheme.PLATFORM), ("dark", Qt.ColorScheme.Light, Scheme.DARK),
    ("light", Qt.ColorScheme.Dark, Scheme.LIGHT), ("light", Qt.ColorScheme.Unknown, Scheme.LIGHT),
])
def test_scheme_for_setting_and_os(theme: str, system: Qt.ColorScheme, scheme: Scheme) -> None:
    assert scheme_for(theme, system) is scheme


def _contrast(a: QColor, b: QColor) -> float:
    """WCAG contrast ratio of two colours."""
    def luminance(c: QColor) -> float:
        channels = [v / 255 for v in (c.red(), c.green(), c.blue())]
        linear = [v / 12.92 if v <= 0.03928 else ((v + 0.055) / 1.055) ** 2.4 for v in channels]
        return 0.2126 * linear[0] + 0.7152 * linear[1] + 0.0722 * linear[2]
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


@pytest.mark.parametrize("dark", [False, True])
def test_status_badges_keep_text_readable(qapp: QApplication, dark: bool) -> None:
    palette = dark_palette() if dark else qapp.style().standardPalette()
    assert is_dark(palette) is dark
    text = palette.color(QPalette.ColorRole.Text)
    for status in JobStatus:
        assert _contrast(status_color(status, palette), text) >= 4.5, status


def _scheme(follower: ThemeFollower) -> Scheme:
    """The follower's scheme, read afresh (each call may change it: no narrowing carried between reads)."""
    return follower.scheme


def test_forcing_dark_and_back_changes_the_app_palette(qapp: QApplication) -> None:
    follower = apply_theme(qapp, "dark")
    try:
        assert isinstance(follower, ThemeFollower) and _scheme(follower) is Scheme.DARK
        assert is_dark(qapp.palette())
        assert apply_theme(qapp, "light") is follower and _scheme(follower) is Scheme.LIGHT
        assert not is_dark(qapp.palette())
    finally:
        apply_theme(qapp, "system")


def test_system_theme_follows_the_os_switching_and_a_forced_one_does_not(qapp: QApplication) -> None:
    follower = apply_theme(qapp, "system")
    hints = qapp.styleHints()
    try:
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)  # what the platform sends when the user switches
        assert _scheme(follower) is Scheme.DARK and is_dark(qapp.palette())
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Light)
        assert _scheme(follower) is Scheme.LIGHT and not is_dark(qapp.palette())
        apply_theme(qapp, "light")
        hints.colorSchemeChanged.emit(Qt.ColorScheme.Dark)
        assert _scheme(follower) is Scheme.LIGHT and not is_dark(qapp.palette())
    finally:
        apply_theme(qapp, "system")
