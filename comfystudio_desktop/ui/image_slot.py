"""`ImageSlot`: one named image input (input / source / target) that takes drops, pastes and file picks.

Every image is checked by `images.py` on a background thread before the slot accepts it; a rejected image
leaves the slot as it was and shows why, under the thumbnail. Image *data* (dragged from a browser, pasted)
is written to a file in the temp folder given to the slot, so a job only ever refers to files.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from PySide6.QtCore import QMimeData, QSize, Qt, Signal
from PySide6.QtGui import (
    QDragEnterEvent,
    QDragLeaveEvent,
    QDropEvent,
    QGuiApplication,
    QKeyEvent,
    QKeySequence,
    QMouseEvent,
    QPaintEvent,
    QPalette,
    QPixmap,
)
from PySide6.QtWidgets import (
    QFileDialog,
    QFrame,
    QHBoxLayout,
    QLabel,
    QSizePolicy,
    QStyle,
    QStyleOptionFocusRect,
    QStylePainter,
    QToolButton,
    QVBoxLayout,
    QWidget,
)

from comfystudio_desktop.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS, ImageInfo
from comfystudio_desktop.ui.background_tasks import run_in_background
from comfystudio_desktop.ui.image_intake import (
    CheckedImage,
    ImageRefused,
    check_data,
    check_file,
    encode_png,
    raw_image_data,
)
from comfystudio_desktop.ui.message_label import MessageLabel
from comfystudio_desktop.workflow_slots import SLOT_TITLES

__all__ = ["SLOT_TITLES", "ImageSlot", "SlotSnapshot"]

log = logging.getLogger(__name__)

WEB_URL_MESSAGE = "Drag the image itself, not its web address"
_FILE_FILTER = "Images (*.png *.jpg *.jpeg *.webp *.bmp);;All files (*)"


@dataclass(frozen=True, slots=True)
class SlotSnapshot:
    """An accepted image: its file, what validation found, and its thumbnail."""

    path: str
    info: ImageInfo
    thumbnail: QPixmap


class ImageSlot(QFrame):
    """A drop target for one named image slot, with thumbnail, clear button and messages."""

    #: (slot name, file path or "" when cleared)
    changed = Signal(str, str)
    #: (slot name, message shown to the user)
    rejected = Signal(str, str)

    _last_dir: ClassVar[str] = ""

    def __init__(self, slot: str, temp_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES,
                 max_pixels: int = DEFAULT_MAX_PIXELS, thumbnail_size: int = 144,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._slot = slot
        self._title = SLOT_TITLES.get(slot, slot.capitalize())
        self._temp_dir = temp_dir
        self._max_bytes = max_bytes
        self._max_pixels = max_pixels
        self._thumb_size = thumbnail_size
        self._snapshot: SlotSnapshot | None = None
        self._token = 0
        self._busy = False
        self._build()
        self._show_snapshot()

    def _build(self) -> None:
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setFocusPolicy(Qt.FocusPolicy.StrongFocus)
        self.setAcceptDrops(True)
        self.setAutoFillBackground(True)
        self.setAccessibleName(f"{self._title} slot")
        self.setAccessibleDescription("Drop an image, paste it with Ctrl+V, or press Enter to choose a file.")
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Maximum)

        title = QLabel(self._title, self)
        font = title.font()
        font.setBold(True)
        title.setFont(font)
        self._clear_button = QToolButton(self)
        self._clear_button.setText("✕")
        self._clear_button.setAutoRaise(True)
        self._clear_button.setToolTip(f"Remove the {self._title.lower()}")
        self._clear_button.setAccessibleName(f"Clear {self._title.lower()}")
        self._clear_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # Delete on the slot does the same
        self._clear_button.clicked.connect(self._on_clear_button_clicked)
        header = QHBoxLayout()
        header.setContentsMargins(0, 0, 0, 0)
        header.addWidget(title, 1)
        header.addWidget(self._clear_button)

        self._preview = QLabel(self)
        self._preview.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self._preview.setWordWrap(True)
        self._preview.setMinimumSize(QSize(self._thumb_size, round(self._thumb_size * 0.75)))
        self._preview.setForegroundRole(QPalette.ColorRole.PlaceholderText)
        self._details = QLabel(self)
        self._details.setTextFormat(Qt.TextFormat.PlainText)
        self._details.setMinimumWidth(self._thumb_size)
        self._message = MessageLabel(self)
        self._message.setMaximumWidth(max(self._thumb_size * 2, 240))

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 6, 8, 6)
        layout.setSpacing(4)
        layout.addLayout(header)
        layout.addWidget(self._preview, 1)
        layout.addWidget(self._details)
        layout.addWidget(self._message)

    # --- public API -------------------------------------------------------------------------------------

    @property
    def slot(self) -> str:
        """The slot name: "input", "source" or "target"."""
        return self._slot

    def path(self) -> str:
        """The accepted image's file path, or ""."""
        return self._snapshot.path if self._snapshot else ""

    def info(self) -> ImageInfo | None:
        """What validation found about the accepted image."""
        return self._snapshot.info if self._snapshot else None

    def is_busy(self) -> bool:
        """True while an image is being checked."""
        return self._busy

    def message(self) -> str:
        """The message shown on the slot (why an image was refused), or ""."""
        return self._message.message()

    def show_message(self, text: str) -> None:
        """Show `text` on the slot, e.g. "Add a source image" from form validation."""
        self._message.show_message(text)

    def set_limits(self, max_bytes: int, max_pixels: int) -> None:
        """Apply new size limits to images checked from now on."""
        self._max_bytes, self._max_pixels = max_bytes, max_pixels

    def load_file(self, path: str | Path) -> None:
        """Check the file at `path` and accept it if it is a usable image."""
        file = Path(path)
        limits = (self._max_bytes, self._max_pixels, self._thumb_pixels())
        self._check(lambda: check_file(file, *limits))
        if file.parent.is_dir():
            ImageSlot._last_dir = str(file.parent)

    def load_data(self, data: bytes, name: str = "The image") -> None:
        """Check encoded image `data`; if accepted, save it in the temp folder and use that file."""
        args = (self._temp_dir, self._slot, self._max_bytes, self._max_pixels, self._thumb_pixels())
        self._check(lambda: check_data(data, name, *args))

    def accept_mime(self, mime: QMimeData, verb: str = "dropped") -> None:
        """Take an image from a drop or the clipboard: a local file, image data, or refuse with a reason."""
        urls = mime.urls() if mime.hasUrls() else []
        local = [url.toLocalFile() for url in urls if url.isLocalFile()]
        if local:
            if len(local) > 1:
                log.info("%d files %s on the %s slot; using %s", len(local), verb, self._slot, local[0])
            self.load_file(local[0])
            return
        data = raw_image_data(mime)
        if data is None and mime.hasImage():
            data = encode_png(mime.imageData())
        if data:
            self.load_data(data, name=f"The {verb} image")
            return
        if any(url.scheme() in ("http", "https") for url in urls):
            self._reject(WEB_URL_MESSAGE)
        elif verb == "pasted":
            self._reject("The clipboard holds no image")
        else:
            self._reject("That is not an image: drop an image file or the image itself")

    def paste(self) -> None:
        """Take the image on the clipboard."""
        self.accept_mime(QGuiApplication.clipboard().mimeData(), verb="pasted")

    def browse(self) -> None:
        """Let the user choose a file."""
        path, _ = QFileDialog.getOpenFileName(self, f"Choose the {self._title.lower()}", ImageSlot._last_dir,
                                              _FILE_FILTER)
        if path:
            self.load_file(path)

    def clear(self) -> None:
        """Remove the image (the temp file, if any, is left for the retention sweep)."""
        self._message.clear_message()
        self.restore(None)

    def snapshot(self) -> SlotSnapshot | None:
        """The accepted image, to move it to another slot (see `restore`)."""
        return self._snapshot

    def restore(self, snapshot: SlotSnapshot | None) -> None:
        """Show `snapshot` (already validated) without checking it again; a check still running is dropped."""
        self._token += 1
        self._busy = False
        self._apply(snapshot)

    # --- events -----------------------------------------------------------------------------------------

    def dragEnterEvent(self, event: QDragEnterEvent) -> None:
        """Accept anything that may carry an image; the drop says why if it does not."""
        mime = event.mimeData()
        if mime.hasUrls() or mime.hasImage() or any(f.startswith("image/") for f in mime.formats()):
            event.acceptProposedAction()
            self._set_drag_highlight(True)

    def dragLeaveEvent(self, event: QDragLeaveEvent) -> None:
        """Drop the hover highlight."""
        self._set_drag_highlight(False)
        super().dragLeaveEvent(event)

    def dropEvent(self, event: QDropEvent) -> None:
        """Take the dropped image."""
        self._set_drag_highlight(False)
        event.acceptProposedAction()
        self.accept_mime(event.mimeData(), verb="dropped")

    def keyPressEvent(self, event: QKeyEvent) -> None:
        """Enter/Space browse, Ctrl+V pastes, Delete clears."""
        if event.matches(QKeySequence.StandardKey.Paste):
            self.paste()
        elif event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter, Qt.Key.Key_Space) and not (
                event.modifiers() & ~Qt.KeyboardModifier.KeypadModifier):
            self.browse()
        elif event.key() in (Qt.Key.Key_Delete, Qt.Key.Key_Backspace) and self.path():
            self.clear()
        else:
            super().keyPressEvent(event)

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        """A click on the slot opens the file chooser."""
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.position().toPoint()):
            self.browse()
        else:
            super().mouseReleaseEvent(event)

    def paintEvent(self, event: QPaintEvent) -> None:
        """The frame, plus the style's focus rectangle when the slot has keyboard focus."""
        super().paintEvent(event)
        if self.hasFocus():
            painter = QStylePainter(self)
            option = QStyleOptionFocusRect()
            option.initFrom(self)
            option.rect = self.rect().adjusted(2, 2, -2, -2)
            painter.drawPrimitive(QStyle.PrimitiveElement.PE_FrameFocusRect, option)

    # --- internals --------------------------------------------------------------------------------------

    def _thumb_pixels(self) -> int:
        return round(self._thumb_size * self.devicePixelRatioF())

    def _check(self, work: Callable[[], CheckedImage]) -> None:
        """Run `work` (returns the accepted image, raises `ImageRefused`) in the background."""
        self._token += 1
        token = self._token
        self._busy = True
        self._message.clear_message()
        self._details.setText("Checking image…")

        def checked() -> tuple[int, CheckedImage | ImageRefused]:
            try:
                return token, work()
            except ImageRefused as refused:  # an answer about the image, kept with its token
                return token, refused

        run_in_background(checked, self._on_check_done)

    def _on_check_done(self, outcome: tuple[int, CheckedImage | ImageRefused] | Exception) -> None:
        if isinstance(outcome, Exception):  # a bug, not a bad image: say so and keep the details in the log
            log.error("Checking an image for the %s slot failed", self._slot, exc_info=outcome)
            self._busy = False
            self._show_snapshot()
            self._reject(f"The image could not be read ({outcome})")
            return
        token, result = outcome
        if token != self._token:
            return  # superseded by a newer drop, or cleared
        self._busy = False
        if isinstance(result, ImageRefused):
            self._show_snapshot()
            self._reject(str(result))
            return
        pixmap = QPixmap()
        pixmap.loadFromData(result.thumbnail_png, "PNG")
        pixmap.setDevicePixelRatio(self.devicePixelRatioF())
        log.info("%s slot: %s (%d×%d %s)", self._slot, result.path, result.info.width, result.info.height,
                 result.info.format)
        self._apply(SlotSnapshot(result.path, result.info, pixmap))

    def _apply(self, snapshot: SlotSnapshot | None) -> None:
        """Show `snapshot`; emit `changed` if the path changes."""
        before = self.path()
        self._snapshot = snapshot
        self._show_snapshot()
        if self.path() != before:
            self.changed.emit(self._slot, self.path())

    def _reject(self, message: str) -> None:
        log.warning("Image for the %s slot refused: %s", self._slot, message)
        self._message.show_message(message)
        self.rejected.emit(self._slot, message)

    def _show_snapshot(self) -> None:
        snap = self._snapshot
        self._clear_button.setVisible(snap is not None)
        if snap is None:
            self._preview.setPixmap(QPixmap())
            self._preview.setText("Drop an image here,\npaste it (Ctrl+V)\nor click to choose a file")
            self._details.setText("")
            self.setToolTip("")
            return
        self._preview.setPixmap(snap.thumbnail)
        name = Path(snap.path).name
        metrics = self._details.fontMetrics()
        summary = f"{snap.info.width}×{snap.info.height} {snap.info.format}"
        self._details.setText(metrics.elidedText(summary, Qt.TextElideMode.ElideRight, self._thumb_size * 2))
        self.setToolTip(f"{name}\n{snap.path}")

    def _set_drag_highlight(self, on: bool) -> None:
        self.setBackgroundRole(QPalette.ColorRole.Midlight if on else QPalette.ColorRole.Window)

    def _on_clear_button_clicked(self) -> None:
        self.clear()
        self.setFocus(Qt.FocusReason.OtherFocusReason)

