"""`ImageSlotsPanel`: the image slots the selected workflow needs, side by side, with a source/target swap."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QHBoxLayout, QToolButton, QWidget

from comfystudio_desktop.images import DEFAULT_MAX_BYTES, DEFAULT_MAX_PIXELS
from comfystudio_desktop.jobs import IMAGE_SLOTS
from comfystudio_desktop.ui.image_slot import ImageSlot

__all__ = ["ImageSlotsPanel"]

log = logging.getLogger(__name__)


class ImageSlotsPanel(QWidget):
    """Shows the slots `set_slots` names; hidden slots keep their image but are left out of `paths()`."""

    #: (slot name, file path or "") re-emitted from any slot
    changed = Signal(str, str)

    def __init__(self, temp_dir: Path, *, max_bytes: int = DEFAULT_MAX_BYTES, max_pixels: int = DEFAULT_MAX_PIXELS,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._visible: list[str] = []
        self._slots: dict[str, ImageSlot] = {}
        layout = QHBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        for name in IMAGE_SLOTS:
            slot = ImageSlot(name, temp_dir, max_bytes=max_bytes, max_pixels=max_pixels, parent=self)
            slot.changed.connect(self.changed)
            slot.hide()
            self._slots[name] = slot
            layout.addWidget(slot)
            if name == "source":
                self._swap_button = QToolButton(self)
                self._swap_button.setText("⇄")
                self._swap_button.setToolTip("Swap source and target images")
                self._swap_button.setAccessibleName("Swap source and target images")
                self._swap_button.clicked.connect(self._on_swap_button_clicked)
                self._swap_button.hide()
                layout.addWidget(self._swap_button, 0, Qt.AlignmentFlag.AlignVCenter)
        layout.addStretch(1)

    def set_slots(self, names: Sequence[str]) -> None:
        """Show exactly the slots in `names` (e.g. ["input"] or ["source", "target"]), in that order of tabbing."""
        unknown = [n for n in names if n not in self._slots]
        if unknown:
            raise ValueError(f"unknown image slot {unknown[0]!r} (use {', '.join(IMAGE_SLOTS)})")
        self._visible = [n for n in IMAGE_SLOTS if n in names]
        for name, slot in self._slots.items():
            slot.setVisible(name in self._visible)
        self._swap_button.setVisible({"source", "target"} <= set(self._visible))

    def visible_slots(self) -> list[str]:
        """The slots shown now."""
        return list(self._visible)

    def slot(self, name: str) -> ImageSlot:
        """The slot widget called `name`."""
        return self._slots[name]

    def paths(self) -> dict[str, str]:
        """{slot: path} of the shown slots that hold an image."""
        return {name: self._slots[name].path() for name in self._visible if self._slots[name].path()}

    def set_paths(self, paths: Mapping[str, str]) -> None:
        """Load each given file into its slot (checked again: it may have changed or gone since)."""
        for name, path in paths.items():
            if name in self._slots and path != self._slots[name].path():
                self._slots[name].load_file(path)

    def set_limits(self, max_bytes: int, max_pixels: int) -> None:
        """Apply new size limits to every slot."""
        for slot in self._slots.values():
            slot.set_limits(max_bytes, max_pixels)

    def clear(self) -> None:
        """Empty every slot."""
        for slot in self._slots.values():
            slot.clear()

    def swap(self) -> None:
        """Exchange the source and target images."""
        source, target = self._slots["source"], self._slots["target"]
        first, second = source.snapshot(), target.snapshot()
        source.restore(second)
        target.restore(first)
        log.info("Swapped source and target images")

    def _on_swap_button_clicked(self) -> None:
        self.swap()
