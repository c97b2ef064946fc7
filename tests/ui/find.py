"""Typed look-ups of widgets and table cells that fail the test when the thing is missing (Qt returns None)."""

from __future__ import annotations

from typing import TypeVar

from PySide6.QtCore import QObject
from PySide6.QtWidgets import QTableWidget

W = TypeVar("W", bound=QObject)


def child(parent: QObject, kind: type[W], name: str) -> W:
    """`parent.findChild(kind, name)`, asserting that it exists."""
    found = parent.findChild(kind, name)
    assert found is not None, f"no {kind.__name__} named {name!r} in {type(parent).__name__}"
    return found


def cell_text(table: QTableWidget, row: int, column: int) -> str:
    """The text of one table cell, asserting that the cell has an item."""
    item = table.item(row, column)
    assert item is not None, f"no item at row {row}, column {column}"
    return item.text()
