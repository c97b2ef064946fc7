"""Checking images a user hands us, and making thumbnails of them. Qt-free.

An image is accepted only if its *content* is PNG, JPEG, WebP or BMP, the file is not too big, its pixel count
is within our limit (checked from the header before any pixel is decoded) and it decodes completely. Every
rejection is an `ImageValidationError` whose text can be shown to the user as is.
"""

from __future__ import annotations

import io
import os
import re
import stat
import struct
import warnings
import zlib
from dataclasses import dataclass
from pathlib import Path

from PIL import (
    BmpImagePlugin,
    Image,
    ImageOps,
    JpegImagePlugin,
    PngImagePlugin,
    UnidentifiedImageError,
    WebPImagePlugin,
)

__all__ = [
    "ACCEPTED_FORMATS",
    "DEFAULT_MAX_BYTES",
    "DEFAULT_MAX_PIXELS",
    "ImageInfo",
    "ImageValidationError",
    "load_image_file",
    "make_thumbnail",
    "validate_image_bytes",
    "validate_image_file",
]

#: Pillow format name -> file extension we save it under.
ACCEPTED_FORMATS: dict[str, str] = {"PNG": ".png", "JPEG": ".jpg", "WEBP": ".webp", "BMP": ".bmp"}
DEFAULT_MAX_BYTES = 50 * 1024 * 1024
DEFAULT_MAX_PIXELS = 64_000_000

_KINDS = "PNG, JPEG, WebP or BMP"
# Errors Pillow raises for broken data, depending on the format and where the data ends.
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, struct.error, zlib.error)
_BOMB_RE = re.compile(r"\((\d+) pixels\) exceeds limit of (\d+)")
_MAGIC = (b"\x89PNG\r\n\x1a\n", b"\xff\xd8\xff", b"BM")


class ImageValidationError(ValueError):
    """An image was refused; `str(error)` is a complete sentence for the user."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What validation learned about an accepted image."""

    format: str  # Pillow's name: PNG, JPEG, WEBP, BMP
    width: int
    height: int
    mode: str
    size_bytes: int

    @property
    def extension(self) -> str:
        """The file extension matching the content, with the dot (".png")."""
        return ACCEPTED_FORMATS[self.format]

    @property
    def pixels(self) -> int:
        """Width times height."""
        return self.width * self.height


def validate_image_file(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                        max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Check the file at `path`; return its `ImageInfo` or raise `ImageValidationError`.

    Only a regular file is read (a folder, FIFO, device or socket is refused without reading it, and a FIFO
    is opened non-blocking, so nothing here can hang), and never more than `max_bytes` + 1 bytes of it.
    """
    return load_image_file(path, max_bytes, max_pixels)[1]


def load_image_file(path: str | os.PathLike[str], max_bytes: int = DEFAULT_MAX_BYTES,
                    max_pixels: int = DEFAULT_MAX_PIXELS) -> tuple[bytes, ImageInfo]:
    """Read and check the file at `path` once: its bytes and `ImageInfo`, or `ImageValidationError`.

    The one check behind the window's image slots and `submit --image`.
    """
    file = Path(path)
    name = file.name or str(file)
    data = _read_regular_file(file, name, max_bytes)
    return data, validate_image_bytes(data, name=name, max_bytes=max_bytes, max_pixels=max_pixels)


def _read_regular_file(file: Path, name: str, max_bytes: int) -> bytes:
    try:
        before = file.stat()  # follows symlinks: a link to an image is fine, the target is what counts
    except FileNotFoundError:
        raise ImageValidationError(f"{name} does not exist") from None
    except (OSError, ValueError) as exc:  # ValueError: a NUL in the path
        raise ImageValidationError(f"{name} cannot be read: {_reason(exc)}") from exc
    if stat.S_ISDIR(before.st_mode):
        raise ImageValidationError(f"{name} is a folder, not an image")
    if not stat.S_ISREG(before.st_mode):
        raise ImageValidationError(f"{name} is not a regular file (a device, pipe or socket)")
    _check_byte_size(name, before.st_size, max_bytes)
    try:
        # O_NONBLOCK: should the path be swapped for a FIFO after the check above, opening it must not hang.
        fd = os.open(file, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0))
    except OSError as exc:
        raise ImageValidationError(f"{name} cannot be read: {_reason(exc)}") from exc
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ImageValidationError(f"{name} is not a regular file (a device, pipe or socket)")
        try:
            data = fh.read(max_bytes + 1)  # a file that grew since stat() is still bounded
        except OSError as exc:
            raise ImageValidationError(f"{name} cannot be read: {_reason(exc)}") from exc
    return data


def _reason(exc: BaseException) -> str:
    return (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__


def validate_image_bytes(data: bytes, *, name: str = "The image", max_bytes: int = DEFAULT_MAX_BYTES,
                         max_pixels: int = DEFAULT_MAX_PIXELS) -> ImageInfo:
    """Check encoded image `data`; `name` starts the error sentence ("broken.png", "The pasted image")."""
    _check_byte_size(name, len(data), max_bytes)
    width, height, fmt = _probe(data, name, max_pixels)
    try:
        with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as img:
            img.verify()  # checksums and structure, without decoding pixels
        with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as img:
            img.load()  # verify() leaves the image unusable; decode everything from a fresh one
            mode = img.mode
    except _DECODE_ERRORS as exc:
        raise ImageValidationError(f"{name} is truncated or corrupt") from exc
    return ImageInfo(format=fmt, width=width, height=height, mode=mode, size_bytes=len(data))


def make_thumbnail(source: str | os.PathLike[str] | bytes, size: int | tuple[int, int] = 256) -> bytes:
    """A PNG of the image scaled to fit `size` (keeping its aspect ratio and EXIF orientation)."""
    box = (size, size) if isinstance(size, int) else size
    stream: str | os.PathLike[str] | io.BytesIO = io.BytesIO(source) if isinstance(source, bytes) else source
    name = "The image" if isinstance(source, bytes) else Path(source).name
    try:
        with Image.open(stream) as img:
            img.draft("RGB", box)  # JPEG decodes at a reduced scale: fast for big photos
            thumb = ImageOps.exif_transpose(img)
            thumb.thumbnail(box)
            if thumb.mode not in ("RGB", "RGBA"):
                thumb = thumb.convert("RGBA" if "A" in thumb.getbands() or "transparency" in thumb.info else "RGB")
            out = io.BytesIO()
            thumb.save(out, format="PNG")
    except (Image.DecompressionBombError, *_DECODE_ERRORS) as exc:
        raise ImageValidationError(f"{name} cannot be shown: {exc}") from exc
    return out.getvalue()


def _check_byte_size(name: str, size: int, max_bytes: int) -> None:
    if size == 0:
        raise ImageValidationError(f"{name} is empty")
    if size > max_bytes:
        raise ImageValidationError(f"{name} is {_megabytes(size)}; the limit is {_megabytes(max_bytes)}")


def _probe(data: bytes, name: str, max_pixels: int) -> tuple[int, int, str]:
    """Identify the format from the content and check the pixel count from the header alone."""
    try:
        with warnings.catch_warnings():
            # Pillow's own decompression-bomb guard is a second line behind our limit: make its warning an error.
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data), formats=list(ACCEPTED_FORMATS)) as img:
                width, height = img.size
                fmt = str(img.format)
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        raise ImageValidationError(_bomb_message(data, name, str(exc), max_pixels)) from exc
    except UnidentifiedImageError as exc:
        raise ImageValidationError(_unidentified_message(data, name)) from exc
    except _DECODE_ERRORS as exc:
        raise ImageValidationError(f"{name} is truncated or corrupt") from exc
    if width <= 0 or height <= 0:
        raise ImageValidationError(f"{name} has no pixels ({width}×{height})")
    if width * height > max_pixels:
        raise ImageValidationError(f"{name} is {width}×{height} pixels; the limit is {_megapixels(max_pixels)}")
    return width, height, fmt


def _bomb_message(data: bytes, name: str, pillow_message: str, max_pixels: int) -> str:
    """Describe an image Pillow's decompression-bomb guard refused, with its size when the header gives it."""
    match = _BOMB_RE.search(pillow_message)
    limit = min(int(match.group(2)), max_pixels) if match else max_pixels
    size = _header_size(data)
    if size is not None:
        return f"{name} is {size[0]}×{size[1]} pixels; the limit is {_megapixels(limit)}"
    if match is not None:
        return f"{name} is {_megapixels(int(match.group(1)))}; the limit is {_megapixels(limit)}"
    return f"{name} is too large to open safely"


def _header_size(data: bytes) -> tuple[int, int] | None:
    """Width and height from the header alone, bypassing `Image.open` (and so its bomb guard)."""
    for plugin in (PngImagePlugin.PngImageFile, JpegImagePlugin.JpegImageFile, WebPImagePlugin.WebPImageFile,
                   BmpImagePlugin.BmpImageFile):
        try:
            with plugin(io.BytesIO(data)) as img:
                return img.size
        except Exception:  # noqa: BLE001 - not this format, or a header too broken to read: try the next
            continue
    return None


def _unidentified_message(data: bytes, name: str) -> str:
    """Say why Pillow could not open accepted-format data: another image format, a broken file or no image."""
    if data.startswith(_MAGIC) or (data[:4] == b"RIFF" and data[8:12] == b"WEBP"):
        return f"{name} is truncated or corrupt"
    try:
        with Image.open(io.BytesIO(data)) as img:
            other = img.format
    except Exception:  # noqa: BLE001 - any failure here just means "not an image we know"
        other = None
    if other:
        return f"{name} is a {other} image; only {_KINDS} images are accepted"
    return f"{name} is not an image ({_KINDS})"


def _megapixels(pixels: int) -> str:
    if pixels < 1_000_000:
        return f"{pixels:,} pixels"
    value = pixels / 1_000_000
    return f"{value:.0f} MP" if value >= 10 or value == int(value) else f"{value:.1f} MP"


def _megabytes(size: int) -> str:
    if size < 1024 * 1024:
        return f"{size / 1024:.0f} KB" if size >= 1024 else f"{size} bytes"
    value = size / (1024 * 1024)
    return f"{value:.0f} MB" if value == int(value) else f"{value:.1f} MB"
