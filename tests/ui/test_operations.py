"""An operation whose window closed while it worked drops its outcome instead of touching deleted widgets."""

from __future__ import annotations

import asyncio
import threading

import pytest
import shiboken6
from PySide6.QtWidgets import QLabel
from pytestqt.qtbot import QtBot

from comfystudio_desktop.ui.operations import Operation


def _finish_after(owner_gone: threading.Event | None, outcome: str) -> str:
    if owner_gone is not None:
        assert owner_gone.wait(10)
    if outcome == "raise":
        raise OSError("the search failed")
    return outcome


def test_outcome_reaches_a_live_owner(qtbot: QtBot) -> None:
    label = QLabel()
    qtbot.addWidget(label)
    operation = Operation(lambda: _finish_after(None, "found"), "look").owned_by(label)
    asyncio.run(operation.success(label.setText).run())
    assert label.text() == "found"


@pytest.mark.parametrize("outcome", ["found", "raise"])
def test_outcome_or_failure_is_dropped_once_the_owner_is_deleted(qtbot: QtBot, outcome: str) -> None:
    label = QLabel()
    gone = threading.Event()
    seen: list[object] = []
    operation = Operation(lambda: _finish_after(gone, outcome), "look").owned_by(label)

    async def close_while_working() -> None:
        task = asyncio.ensure_future(operation.success(seen.append).failure(seen.append).run())
        await asyncio.sleep(0)  # the work has started on its thread
        shiboken6.delete(label)
        gone.set()
        await task

    asyncio.run(close_while_working())
    assert seen == []
