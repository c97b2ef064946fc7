"""`HistoryModel`: the lasting history as a lazy table, paged from Redis off the GUI thread.

`set_query` starts a search: the first page (and the match count) is read on a background thread, then the model
has `total` rows of which only the pages a view asks for are ever read, each once, 100 entries at a time. A page
that arrives after the query changed is dropped. Rows not read yet show nothing until their page arrives.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import datetime
from enum import IntEnum
from pathlib import Path
from typing import Any

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QImage

from comfystudio_desktop.queue.history import History, HistoryPage, HistoryQuery
from comfystudio_desktop.queue.history_entry import HistoryEntry
from comfystudio_desktop.ui.background_tasks import run_in_background
from comfystudio_desktop.ui.thumbnail_cache import ThumbnailCache

__all__ = ["PAGE_SIZE", "EntryRole", "HistoryColumn", "HistoryModel", "SearchDone", "entry_text"]

log = logging.getLogger(__name__)

PAGE_SIZE = 100
EntryRole = Qt.ItemDataRole.UserRole + 1  # HistoryEntry | None (None: its page is not read yet)
_Index = QModelIndex | QPersistentModelIndex


class HistoryColumn(IntEnum):
    """Columns of the history table; the gallery shows `IMAGE`."""

    IMAGE = 0
    STAR = 1
    PROMPT = 2
    MODEL = 3
    SEED = 4
    STATUS = 5
    ENDED = 6


_HEADERS = {HistoryColumn.IMAGE: "Image", HistoryColumn.STAR: "★", HistoryColumn.PROMPT: "Prompt",
            HistoryColumn.MODEL: "Model", HistoryColumn.SEED: "Seed", HistoryColumn.STATUS: "Status",
            HistoryColumn.ENDED: "Ended"}


@dataclass(frozen=True, slots=True)
class SearchDone:
    """A search's first page arrived: how many entries match (`exact`: counted, else estimated)."""

    total: int
    exact: bool


@dataclass(frozen=True, slots=True)
class _Page:
    generation: int
    number: int
    page: HistoryPage


def entry_text(entry: HistoryEntry, column: HistoryColumn) -> str:
    """What a cell shows for an entry."""
    if column == HistoryColumn.ENDED:
        local = entry.ended_at.astimezone()
        today = datetime.now().astimezone().date()
        return local.strftime("%H:%M:%S" if local.date() == today else "%Y-%m-%d %H:%M")
    seed = entry.seed_used if entry.seed_used is not None else entry.job.seed
    texts = {
        HistoryColumn.IMAGE: "★" if entry.favourite else "",  # the gallery's caption
        HistoryColumn.STAR: "★" if entry.favourite else "☆",
        HistoryColumn.PROMPT: " ".join(entry.job.prompt.split())[:300],
        HistoryColumn.MODEL: entry.job.model.replace("\\", "/").rsplit("/", 1)[-1],
        HistoryColumn.SEED: "random" if seed < 0 else str(seed),
        HistoryColumn.STATUS: entry.status.value.capitalize(),
    }
    return texts[column]


class HistoryModel(QAbstractTableModel):
    """Rows of one search over the history, read a page at a time as views ask for them."""

    search_done = Signal(SearchDone)

    def __init__(self, history: Callable[[], History | None], locate: Callable[[HistoryEntry], Path | None], *,
                 thumbnail_size: int = 128, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._history = history
        self._locate = locate
        self._query = HistoryQuery(limit=PAGE_SIZE)
        self._total = 0
        self._pages: dict[int, tuple[HistoryEntry, ...]] = {}
        self._asked: set[int] = set()
        self._generation = 0
        self._overrides: dict[str, bool] = {}  # stars changed since the pages were read
        self.thumbnails = ThumbnailCache(thumbnail_size, capacity=500, parent=self)
        self.thumbnails.loaded.connect(self._on_thumbnails_loaded)
        self.searching = False

    # -- searching -------------------------------------------------------------------------------------------
    def set_query(self, query: HistoryQuery) -> None:
        """Search again with `query` (its offset and limit are the model's own)."""
        self.beginResetModel()
        self._query = replace(query, offset=0, limit=PAGE_SIZE)
        self._generation += 1
        self._pages.clear()
        self._asked.clear()
        self._overrides.clear()
        self._total = 0
        self.endResetModel()
        self.searching = True
        self._fetch(0, sync=True)

    def refresh(self) -> None:
        """Search again with the same query (new entries, changed stars)."""
        self.set_query(self._query)

    def query(self) -> HistoryQuery:
        """The query shown."""
        return self._query

    def _fetch(self, number: int, *, sync: bool = False) -> None:
        history = self._history()
        if history is None or number in self._asked:
            return
        self._asked.add(number)
        generation = self._generation
        query = replace(self._query, offset=number * PAGE_SIZE)

        def work() -> _Page:
            if sync:
                history.sync()  # jobs that just ended wait in the inbox until filed
            return _Page(generation, number, history.search(query))

        run_in_background(work, self._on_page_read)

    def _on_page_read(self, outcome: _Page | Exception) -> None:
        if isinstance(outcome, Exception):
            log.warning("History search failed: %s", outcome)
            self.searching = False
            self.search_done.emit(SearchDone(0, exact=False))
            return
        if outcome.generation != self._generation:
            return  # the query changed meanwhile
        entries, number = outcome.page.entries, outcome.number
        self._pages[number] = entries
        if number == 0:
            self.searching = False
            total = max(outcome.page.total, len(entries))
            if total:
                self.beginInsertRows(QModelIndex(), 0, total - 1)
                self._total = total
                self.endInsertRows()
            self.search_done.emit(SearchDone(self._total, outcome.page.total_exact))
            return
        first = number * PAGE_SIZE
        if len(entries) < PAGE_SIZE and first + len(entries) < self._total:  # an estimate ran past the end
            self.beginRemoveRows(QModelIndex(), first + len(entries), self._total - 1)
            self._total = first + len(entries)
            self.endRemoveRows()
        if entries:
            self.dataChanged.emit(self.index(first, 0), self.index(first + len(entries) - 1, len(HistoryColumn) - 1))

    # -- reading ---------------------------------------------------------------------------------------------
    def entry(self, row: int) -> HistoryEntry | None:
        """The entry of a row, or None if its page is not read yet (it is asked for)."""
        if not 0 <= row < self._total:
            return None
        number = row // PAGE_SIZE
        page = self._pages.get(number)
        if page is None:
            self._fetch(number)
            return None
        offset = row - number * PAGE_SIZE
        if offset >= len(page):
            return None
        entry = page[offset]
        star = self._overrides.get(entry.job_id)
        return entry if star is None else entry.with_favourite(star)

    def row_of(self, job_id: str) -> int:
        """The row of a job among the pages read, or -1."""
        for number, page in self._pages.items():
            for offset, entry in enumerate(page):
                if entry.job_id == job_id:
                    return number * PAGE_SIZE + offset
        return -1

    def set_favourite(self, job_id: str, favourite: bool) -> None:
        """Show a changed star at once (the entry itself is re-read on the next search)."""
        self._overrides[job_id] = favourite
        row = self.row_of(job_id)
        if row >= 0:
            self.dataChanged.emit(self.index(row, 0), self.index(row, HistoryColumn.STAR))

    # -- Qt's model interface --------------------------------------------------------------------------------
    def rowCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """Every match of the search (most not read yet)."""
        return 0 if parent.isValid() else self._total

    def columnCount(self, parent: _Index = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        """The history's columns."""
        return 0 if parent.isValid() else len(HistoryColumn)

    def flags(self, index: _Index) -> Qt.ItemFlag:
        """Selectable, read-only cells."""
        if not index.isValid():
            return Qt.ItemFlag.NoItemFlags
        return Qt.ItemFlag.ItemIsEnabled | Qt.ItemFlag.ItemIsSelectable | Qt.ItemFlag.ItemNeverHasChildren

    def headerData(self, section: int, orientation: Qt.Orientation, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Column titles."""
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole \
                and 0 <= section < len(HistoryColumn):
            return _HEADERS[HistoryColumn(section)]
        return None

    def data(self, index: _Index, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        """Cell text, tooltip, thumbnail, and the entry itself (`EntryRole`)."""
        if not index.isValid():
            return None
        entry = self.entry(index.row())
        if entry is None:
            return "…" if role == Qt.ItemDataRole.DisplayRole and index.column() == HistoryColumn.PROMPT else None
        column = HistoryColumn(index.column())
        if role == Qt.ItemDataRole.DisplayRole:
            return entry_text(entry, column) or None
        pictured = column == HistoryColumn.IMAGE
        if role == Qt.ItemDataRole.ToolTipRole and (pictured or column == HistoryColumn.PROMPT):
            return entry.job.prompt[:2000]
        if role == Qt.ItemDataRole.DecorationRole and pictured:
            return self._thumbnail(entry)
        return entry if role == EntryRole else None

    def _thumbnail(self, entry: HistoryEntry) -> QImage | None:
        key = entry.image_url or (entry.outputs[0] if entry.outputs else "")
        if not key:
            return None
        return self.thumbnails.get(key, lambda: self._locate(entry))

    def _on_thumbnails_loaded(self, key: str) -> None:
        for number, page in self._pages.items():
            for offset, entry in enumerate(page):
                if key in (entry.image_url, entry.outputs[0] if entry.outputs else ""):
                    row = number * PAGE_SIZE + offset
                    self.dataChanged.emit(self.index(row, 0), self.index(row, 0))
