"""UI test setup: offscreen Qt, unexpected Qt warnings fail the test, no background work left behind."""

from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import io
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PIL import Image

from comfystudio_desktop.ui.background_tasks import background_pool

_HERE = Path(__file__).resolve().parent
# What the offscreen platform says about features it lacks (e.g. when a completer popup opens).
_PLATFORM_NOISE = (r"^This plugin does not support",)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Make every test in tests/ui fail on a Qt warning or critical message (as qt_log_level_fail = WARNING)."""
    for item in items:
        if Path(item.path).resolve().is_relative_to(_HERE):
            item.add_marker(pytest.mark.qt_log_level_fail("WARNING"))
            item.add_marker(pytest.mark.qt_log_ignore(*_PLATFORM_NOISE))


@pytest.fixture(autouse=True)
def _no_background_work_left() -> Iterator[None]:
    """A test must not leave image decoding running on the UI thread pool."""
    yield
    assert background_pool().waitForDone(10_000), "UI background work still running after the test"


def _encode(size: tuple[int, int] = (64, 48), colour: str = "red", fmt: str = "PNG") -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, fmt)
    return out.getvalue()


@pytest.fixture
def make_image() -> Callable[..., bytes]:
    """`make_image(size=(64, 48), colour="red", fmt="PNG")` -> encoded image bytes."""
    return _encode


@pytest.fixture
def png_file(tmp_path: Path) -> Path:
    """A valid 64×48 PNG on disk."""
    path = tmp_path / "photo.png"
    path.write_bytes(_encode())
    return path
