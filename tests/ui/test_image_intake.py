"""Checking an image off the GUI thread: an accepted image, or `ImageRefused` with the user's message."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest

from comfystudio_desktop.ui.image_intake import CheckedImage, ImageRefused, check_data, check_file

_LIMITS = {"max_bytes": 1 << 20, "max_pixels": 1 << 20, "thumb": 32}


def test_a_good_file_is_accepted_with_a_thumbnail(png_file: Path) -> None:
    checked = check_file(png_file, **_LIMITS)
    assert isinstance(checked, CheckedImage) and checked.path == str(png_file)
    assert (checked.info.width, checked.info.height) == (64, 48) and checked.thumbnail_png.startswith(b"\x89PNG")


@pytest.mark.parametrize("content", [b"", b"not an image", b"\x89PNG\r\n\x1a\n broken"])
def test_a_bad_file_raises_the_message(tmp_path: Path, content: bytes) -> None:
    path = tmp_path / "bad.png"
    path.write_bytes(content)
    with pytest.raises(ImageRefused) as refused:
        check_file(path, **_LIMITS)
    assert str(refused.value)  # a message for the user, not an empty error


def test_data_is_saved_and_accepted(tmp_path: Path, make_image: Callable[..., bytes]) -> None:
    checked = check_data(make_image(), "clip.png", tmp_path / "dropped", "input", **_LIMITS)
    assert Path(checked.path).read_bytes() == make_image() and Path(checked.path).parent == tmp_path / "dropped"


def test_data_that_cannot_be_saved_is_refused_with_the_folder(tmp_path: Path,
                                                              make_image: Callable[..., bytes]) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with pytest.raises(ImageRefused, match="could not be saved"):
        check_data(make_image(), "clip.png", blocker, "input", **_LIMITS)


def test_bad_data_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ImageRefused):
        check_data(b"GIF89a nonsense", "clip.gif", tmp_path, "input", **_LIMITS)
    assert list(tmp_path.iterdir()) == []  # nothing written for a refused image
