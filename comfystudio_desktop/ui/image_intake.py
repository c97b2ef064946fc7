"""Taking an image in: reading it off a drop or the clipboard, and checking a file or bytes off the GUI thread.

`check_file` and `check_data` are plain functions (no widgets): they run on a worker thread and return a
`CheckedImage`, or raise `ImageRefused` with the message to show.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QBuffer, QIODevice, QMimeData
from PySide6.QtGui import QImage, QPixmap

from comfystudio_desktop.images import (
    ImageInfo,
    ImageValidationError,
    load_image_file,
    make_thumbnail,
    validate_image_bytes,
)

__all__ = ["CheckedImage", "ImageRefused", "check_data", "check_file", "encode_png", "raw_image_data"]

# Raw encoded formats an application may put on a drag or the clipboard, best first.
_RAW_IMAGE_TYPES = ("image/png", "image/webp", "image/jpeg", "image/bmp")


class ImageRefused(Exception):
    """An image that cannot be used; `str(error)` is the message for the user."""


@dataclass(frozen=True, slots=True)
class CheckedImage:
    """An accepted image: its file, what validation found, and a PNG thumbnail."""

    path: str
    info: ImageInfo
    thumbnail_png: bytes


def check_file(path: Path, max_bytes: int, max_pixels: int, thumb: int) -> CheckedImage:
    """Validate a file and thumbnail it (runs off the GUI thread).

    Raises:
        ImageRefused: the file is not a usable image.
    """
    try:
        data, info = load_image_file(path, max_bytes, max_pixels)  # the same check as `submit --image`
        return CheckedImage(str(path), info, make_thumbnail(data, thumb))
    except ImageValidationError as exc:
        raise ImageRefused(str(exc)) from exc


def check_data(data: bytes, name: str, temp_dir: Path, slot: str, max_bytes: int, max_pixels: int,
                thumb: int) -> CheckedImage:
    """Validate image data, save it as a file in `temp_dir` and thumbnail it (runs off the GUI thread).

    Raises:
        ImageRefused: the data is not a usable image, or it could not be saved.
    """
    try:
        info = validate_image_bytes(data, name=name, max_bytes=max_bytes, max_pixels=max_pixels)
        thumbnail = make_thumbnail(data, thumb)
    except ImageValidationError as exc:
        raise ImageRefused(str(exc)) from exc
    path = temp_dir / f"{slot}-{uuid.uuid4().hex[:12]}{info.extension}"
    try:
        temp_dir.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    except OSError as exc:
        raise ImageRefused(f"The image could not be saved to {temp_dir}: {exc.strerror or exc}") from exc
    return CheckedImage(str(path), info, thumbnail)


def raw_image_data(mime: QMimeData) -> bytes | None:
    """Encoded image bytes an application offered as-is (kept byte for byte, unlike `imageData`)."""
    formats = set(mime.formats())
    for kind in _RAW_IMAGE_TYPES:
        if kind in formats:
            data = mime.data(kind).data()
            if data:
                return bytes(data)
    return None


def encode_png(image: object) -> bytes | None:
    """PNG bytes of the QImage (or QPixmap) carried as `imageData`."""
    if isinstance(image, QPixmap):
        image = image.toImage()
    if not isinstance(image, QImage) or image.isNull():
        return None
    buffer = QBuffer()
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    if not image.save(buffer, "PNG"):  # type: ignore[call-overload]  # the stub wants bytes, PySide wants str
        return None
    return bytes(buffer.data().data())
