"""The one image check behind the window's slots and `submit --image`: total over any bytes and any file kind."""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from comfystudio_desktop.images import ImageValidationError, load_image_file


def _png() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (32, 32), "teal").save(out, "PNG")
    return out.getvalue()


PNG = _png()


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.one_of(st.binary(max_size=300),
                 st.tuples(st.integers(0, len(PNG)), st.binary(max_size=8)).map(lambda t: PNG[: t[0]] + t[1]),
                 st.tuples(st.integers(8, len(PNG) - 1), st.integers(0, 255)).map(
                     lambda t: PNG[: t[0]] + bytes([t[1]]) + PNG[t[0] + 1:])))
def test_any_bytes_are_an_image_or_one_clear_refusal(tmp_path: Path, data: bytes) -> None:
    path = tmp_path / "input.png"
    path.write_bytes(data)
    try:
        read, info = load_image_file(path, max_bytes=10_000, max_pixels=1_000_000)
    except ImageValidationError as exc:
        assert str(exc).startswith("input.png ") and "\n" not in str(exc)
        return
    assert read == data and info.width * info.height <= 1_000_000


def test_the_file_read_is_bounded(tmp_path: Path) -> None:
    path = tmp_path / "big.png"
    path.write_bytes(PNG + b"\0" * 5000)
    with pytest.raises(ImageValidationError, match="the limit is"):
        load_image_file(path, max_bytes=len(PNG) + 100)


@pytest.mark.skipif(os.name != "posix", reason="FIFOs are POSIX")
def test_a_fifo_is_refused_without_blocking(tmp_path: Path) -> None:
    fifo = tmp_path / "pipe.png"
    os.mkfifo(fifo)
    outcome: list[str] = []
    thread = threading.Thread(target=lambda: outcome.append(_refusal(fifo)), daemon=True)
    thread.start()
    thread.join(10)
    if thread.is_alive():  # unblock the reader so the test process can end, then fail
        with open(fifo, "wb"):
            pass
        pytest.fail("reading a FIFO blocked")
    assert outcome == ["pipe.png is not a regular file (a device, pipe or socket)"]


def _refusal(path: Path) -> str:
    try:
        load_image_file(path)
    except ImageValidationError as exc:
        return str(exc)
    return "accepted"
