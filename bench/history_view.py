"""The History view over 100,000 entries: time to open (view built, first page shown) and to show a deep page.

Fills a fresh embedded redis-server (AOF, appendfsync always) with the entries of bench/history.py, then, with
offscreen Qt, times: building the History view and showing it until its first page of rows is painted (the
search runs on a background thread), scrolling to the middle of all entries (a page read on demand), a
two-word search, and scrolling to the middle of its matches. Beside them, the naive way: reading every entry
into a plain table model. Goal: open < 300 ms.

    QT_QPA_PLATFORM=offscreen python bench/history_view.py [--entries N] [--runs N]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from PySide6.QtCore import QEventLoop, QTimer
from PySide6.QtGui import QStandardItem, QStandardItemModel
from PySide6.QtWidgets import QAbstractItemView, QApplication

from bench._report import log, pct
from bench.history import make_entries
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.connection import ResilientRedis
from comfystudio_desktop.queue.history import HISTORY_KEY, History
from comfystudio_desktop.queue.history_entry import parse_entry
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from comfystudio_desktop.ui.background_tasks import background_pool
from comfystudio_desktop.ui.history_model import HistoryColumn, HistoryModel
from comfystudio_desktop.ui.history_view import HistoryView


def wait_for(condition: object, timeout_s: float = 30.0) -> None:
    """Run Qt's event loop until `condition()` holds."""
    deadline = time.monotonic() + timeout_s
    loop = QEventLoop()
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met")
        QTimer.singleShot(1, loop.quit)
        loop.exec()


def open_view(history: History, outputs: Path) -> tuple[float, HistoryView]:
    """Build and show the view; ms until the first page's rows are there and painted."""
    start = time.perf_counter()
    model = HistoryModel(lambda: history, lambda _entry: None)
    view = HistoryView(model, outputs)
    view.resize(1000, 700)
    view.show()
    view.search()
    wait_for(lambda: model.rowCount() > 0 and model.entry(0) is not None)
    view.table.viewport().repaint()
    return (time.perf_counter() - start) * 1000, view


def timed_search(view: HistoryView, words: str) -> float:
    start = time.perf_counter()
    view.words.setText(words)
    view.search()
    wait_for(lambda: not view.model.searching and view.model.rowCount() > 0 and view.model.entry(0) is not None)
    return (time.perf_counter() - start) * 1000


def deep_page(view: HistoryView) -> float:
    """Scroll to the middle of the results; ms until that row's entry is read."""
    model = view.model
    row = model.rowCount() // 2
    start = time.perf_counter()
    view.table.scrollTo(model.index(row, HistoryColumn.PROMPT), QAbstractItemView.ScrollHint.PositionAtCenter)
    view.table.viewport().repaint()
    wait_for(lambda: model.entry(row) is not None)
    return (time.perf_counter() - start) * 1000


def naive_open(history: History) -> float:
    """Read every entry and fill a QStandardItemModel: what a view without paging would do."""
    start = time.perf_counter()
    raw = history.conn.client.hgetall(HISTORY_KEY)
    model = QStandardItemModel()
    for job_id, data in raw.items():
        entry = parse_entry(data, job_id.decode() if isinstance(job_id, bytes) else str(job_id))
        if entry is not None:
            model.appendRow([QStandardItem(entry.job.prompt), QStandardItem(entry.job.model)])
    return (time.perf_counter() - start) * 1000


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=15)
    args = parser.parse_args()
    app = QApplication.instance() or QApplication([])
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(Path(tmp)).create()
        server = EmbeddedRedis(home)
        endpoint = server.ensure_running()
        conn = ResilientRedis(server.endpoint)
        try:
            history = History(conn)
            history.add(make_entries(args.entries, random.Random(2026), int(time.time() * 1000)))
            log(f"filled {args.entries} entries")
            opens, searches, deep, deep_words = [], [], [], []
            for _ in range(args.runs):
                ms, view = open_view(history, home.outputs)
                opens.append(ms)
                deep.append(deep_page(view))
                searches.append(timed_search(view, "portrait city"))
                deep_words.append(deep_page(view))
                view.close()
                view.deleteLater()
                background_pool().waitForDone(10_000)
            naive = naive_open(history)
            print(json.dumps({
                "server": f"{endpoint.version} (appendfsync always)",
                "entries": args.entries,
                "open_to_first_page_ms": {"p50": round(pct(opens, 50), 1), "p95": round(pct(opens, 95), 1),
                                          "goal": "< 300 ms"},
                "word_search_ms": {"p50": round(pct(searches, 50), 1), "p95": round(pct(searches, 95), 1)},
                "scroll_to_middle_page_ms": {"p50": round(pct(deep, 50), 1), "p95": round(pct(deep, 95), 1)},
                "scroll_to_middle_of_word_search_ms": {"p50": round(pct(deep_words, 50), 1),
                                                       "p95": round(pct(deep_words, 95), 1)},
                "naive_read_everything_ms": round(naive, 1),
                "ratio_naive_over_open_p50": round(naive / max(pct(opens, 50), 0.01), 1),
            }, indent=2))
        finally:
            conn.close()
            server.stop()
    del app
    return 0


if __name__ == "__main__":
    sys.exit(main())
