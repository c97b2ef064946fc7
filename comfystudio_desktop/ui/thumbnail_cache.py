"""`ThumbnailCache`: small QImages of output files, decoded at reduced size on a background thread.

`get()` never blocks: it answers from the cache or returns None and starts loading; `loaded(key)` fires when the
thumbnail is ready. The least recently used thumbnails are dropped beyond `capacity`.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import QObject, QSize, Qt, Signal
from PySide6.QtGui import QImage, QImageReader

from comfystudio_desktop.ui.background_tasks import run_in_background

__all__ = ["ThumbnailCache", "read_thumbnail"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class _Loaded:
    key: str
    image: QImage
    error: str = ""


def read_thumbnail(path: Path, size: int) -> QImage:
    """Decode `path` scaled to fit size×size; formats that can (JPEG) decode at the reduced size directly."""
    reader = QImageReader(str(path))
    reader.setAutoTransform(True)
    full = reader.size()
    box = QSize(size, size)
    if full.isValid() and (full.width() > size or full.height() > size):
        reader.setScaledSize(full.scaled(box, Qt.AspectRatioMode.KeepAspectRatio))
    image = reader.read()
    if image.isNull():
        raise OSError(reader.errorString())
    if image.width() > size or image.height() > size:
        image = image.scaled(box, Qt.AspectRatioMode.KeepAspectRatio, Qt.TransformationMode.SmoothTransformation)
    return image


class ThumbnailCache(QObject):
    """An LRU of thumbnails keyed by a string (the job's image_url)."""

    #: A thumbnail for this key is now available from `get`.
    loaded = Signal(str)

    def __init__(self, size: int = 64, capacity: int = 300, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._size = size
        self._capacity = capacity
        self._images: OrderedDict[str, QImage] = OrderedDict()
        self._loading: set[str] = set()
        self._failed: set[str] = set()

    def get(self, key: str, locate: Callable[[], Path | None] | None = None) -> QImage | None:
        """The thumbnail for `key`, or None.

        On a miss, `locate()` gives the file to load in the background (it is asked once per key; a key
        whose file is missing or unreadable is not tried again).
        """
        image = self._images.get(key)
        if image is not None:
            self._images.move_to_end(key)
            return image
        if locate is None or key in self._loading or key in self._failed:
            return None
        path = locate()
        if path is None:
            self._failed.add(key)
            return None
        self._loading.add(key)
        size = self._size
        run_in_background(lambda: _load(key, path, size), self._on_load_done)
        return None

    def forget_failure(self, key: str) -> None:
        """The file of `key` may be there now (fetched from another machine): try it again on the next `get`."""
        self._failed.discard(key)

    def is_loading(self) -> bool:
        """True while any thumbnail is being decoded."""
        return bool(self._loading)

    def _on_load_done(self, outcome: _Loaded | Exception) -> None:
        if isinstance(outcome, Exception):
            log.error("Thumbnail loading failed", exc_info=outcome)
            return
        self._loading.discard(outcome.key)
        if outcome.error:
            log.warning("No thumbnail for %s: %s", outcome.key, outcome.error)
            self._failed.add(outcome.key)
            return
        self._images[outcome.key] = outcome.image
        while len(self._images) > self._capacity:
            self._images.popitem(last=False)
        self.loaded.emit(outcome.key)


def _load(key: str, path: Path, size: int) -> _Loaded:
    try:
        return _Loaded(key, read_thumbnail(path, size))
    except Exception as exc:  # noqa: BLE001 - any decoding failure just means "no thumbnail"
        return _Loaded(key, QImage(), f"{path.name}: {exc}")
