"""Image validation: accepted formats by content, size and pixel limits, broken files, thumbnails."""

from __future__ import annotations

import io
import struct
import subprocess
import sys
import zlib
from pathlib import Path

import pytest
from PIL import Image

from comfystudio_desktop.images import (
    ImageValidationError,
    make_thumbnail,
    validate_image_bytes,
    validate_image_file,
)


def encode(fmt: str, size: tuple[int, int] = (120, 80), mode: str = "RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, size, "teal").save(out, fmt)
    return out.getvalue()


def png_with_header(width: int, height: int) -> bytes:
    """A PNG whose header claims width×height: enough to test limits without allocating the pixels."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    ihdr = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", zlib.compress(b"\0" * 16))
            + chunk(b"IEND", b""))


@pytest.mark.parametrize(("fmt", "expected"), [("PNG", "PNG"), ("JPEG", "JPEG"), ("WEBP", "WEBP"), ("BMP", "BMP")])
def test_accepts_the_four_formats(tmp_path: Path, fmt: str, expected: str) -> None:
    path = tmp_path / f"image.{fmt.lower()}"
    path.write_bytes(encode(fmt))
    info = validate_image_file(path)
    assert (info.format, info.width, info.height) == (expected, 120, 80)
    assert info.size_bytes == path.stat().st_size


def test_format_comes_from_the_content_not_the_extension(tmp_path: Path) -> None:
    disguised = tmp_path / "photo.jpg"
    disguised.write_bytes(encode("PNG"))
    assert validate_image_file(disguised).format == "PNG"
    assert validate_image_file(disguised).extension == ".png"
    fake = tmp_path / "notes.png"
    fake.write_text("just some notes\n")
    with pytest.raises(ImageValidationError, match=r"^notes\.png is not an image \(PNG, JPEG, WebP or BMP\)$"):
        validate_image_file(fake)


def test_other_image_formats_are_named(tmp_path: Path) -> None:
    gif = tmp_path / "anim.gif"
    gif.write_bytes(encode("GIF"))
    with pytest.raises(ImageValidationError, match=r"^anim\.gif is a GIF image; only PNG, JPEG, WebP or BMP"):
        validate_image_file(gif)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "BMP"])
@pytest.mark.parametrize("keep", [0.1, 0.5, 0.9])
def test_truncated_files_are_refused(tmp_path: Path, fmt: str, keep: float) -> None:
    data = encode(fmt, size=(300, 200), mode="RGB")
    path = tmp_path / "broken.png"
    path.write_bytes(data[: max(16, int(len(data) * keep))])
    with pytest.raises(ImageValidationError, match=r"^broken\.png is truncated or corrupt$"):
        validate_image_file(path)


def test_corrupt_png_data_is_refused() -> None:
    data = bytearray(encode("PNG", size=(64, 64)))
    middle = data.index(b"IDAT") + 10
    data[middle:middle + 4] = b"\xde\xad\xbe\xef"  # the chunk's CRC no longer matches
    with pytest.raises(ImageValidationError, match="truncated or corrupt"):
        validate_image_bytes(bytes(data), name="bad.png")


def test_file_size_limit(tmp_path: Path) -> None:
    path = tmp_path / "big.bmp"
    path.write_bytes(encode("BMP", size=(400, 400)))  # ~480 KB
    with pytest.raises(ImageValidationError, match=r"^big\.bmp is 469 KB; the limit is 100 KB$"):
        validate_image_file(path, max_bytes=100 * 1024)


def test_pixel_limit_is_checked_from_the_header() -> None:
    with pytest.raises(ImageValidationError, match=r"^huge\.png is 9000×9000 pixels; the limit is 64 MP$"):
        validate_image_bytes(png_with_header(9000, 9000), name="huge.png", max_pixels=64_000_000)
    with pytest.raises(ImageValidationError, match=r"^small\.png is 120×80 pixels; the limit is 5,000 pixels$"):
        validate_image_bytes(encode("PNG"), name="small.png", max_pixels=5000)


def test_decompression_bomb_is_refused_with_its_size() -> None:
    # 400 MP: Pillow's own guard raises DecompressionBombError before our check; the message is the same kind.
    with pytest.raises(ImageValidationError, match=r"^huge\.png is 20000×20000 pixels; the limit is 64 MP$"):
        validate_image_bytes(png_with_header(20000, 20000), name="huge.png")


def test_pillow_guard_still_applies_when_our_limit_is_higher(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(Image, "MAX_IMAGE_PIXELS", 5000)
    for size in ((100, 60), (100, 150)):  # above Pillow's warning threshold, then above its error threshold
        with pytest.raises(ImageValidationError, match=rf"^bomb\.png is {size[0]}×{size[1]} pixels; the limit is"):
            validate_image_bytes(encode("PNG", size=size), name="bomb.png", max_pixels=10**9)


def test_missing_empty_and_folder(tmp_path: Path) -> None:
    with pytest.raises(ImageValidationError, match=r"^gone\.png does not exist$"):
        validate_image_file(tmp_path / "gone.png")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(ImageValidationError, match=r"^empty\.png is empty$"):
        validate_image_file(tmp_path / "empty.png")
    (tmp_path / "folder.png").mkdir()
    with pytest.raises(ImageValidationError, match="is a folder"):
        validate_image_file(tmp_path / "folder.png")


def test_bytes_use_the_given_name() -> None:
    with pytest.raises(ImageValidationError, match=r"^The pasted image is not an image"):
        validate_image_bytes(b"<html></html>", name="The pasted image")


@pytest.mark.parametrize(("mode", "fmt"), [("RGB", "JPEG"), ("RGBA", "PNG"), ("P", "PNG"), ("L", "BMP")])
def test_thumbnail_fits_the_box_and_is_png(tmp_path: Path, mode: str, fmt: str) -> None:
    path = tmp_path / f"wide.{fmt.lower()}"
    path.write_bytes(encode(fmt, size=(800, 400), mode=mode))
    for source in (path, path.read_bytes()):
        thumb = make_thumbnail(source, 128)
        with Image.open(io.BytesIO(thumb)) as img:
            assert img.format == "PNG"
            assert img.size == (128, 64)


def test_thumbnail_of_broken_data_raises() -> None:
    with pytest.raises(ImageValidationError):
        make_thumbnail(encode("PNG")[:40], 64)


def test_images_module_does_not_import_qt() -> None:
    code = ("import sys, comfystudio_desktop.images; "
            "sys.exit(any(m.split('.')[0] in ('PySide6', 'shiboken6') for m in sys.modules))")
    assert subprocess.run([sys.executable, "-c", code], check=False).returncode == 0
