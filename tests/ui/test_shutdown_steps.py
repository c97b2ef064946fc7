"""Quitting: each shutdown step is bounded, and a slow one is named in the log with its time."""

from __future__ import annotations

import asyncio
import logging

import pytest

from comfystudio_desktop.ui import app_controller


def test_a_slow_step_is_logged_with_its_time_and_a_stuck_one_is_given_up(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=app_controller.__name__)
    asyncio.run(app_controller._bounded(asyncio.sleep(0.05), 5.0, "stopping the slow part", slow_s=0.01))
    asyncio.run(app_controller._bounded(asyncio.sleep(0), 5.0, "stopping the quick part", slow_s=1.0))
    asyncio.run(app_controller._bounded(asyncio.sleep(30), 0.05, "stopping the stuck part"))
    lines = [r.getMessage() for r in caplog.records]
    assert any(line.startswith("Stopping the slow part took 0.") for line in lines), lines
    assert not any("quick part" in line for line in lines)
    assert "Gave up stopping the stuck part after 0 s" in lines
