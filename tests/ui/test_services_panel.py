"""ServicesPanel: rows from ServiceState snapshots, countdowns that move, buttons that emit the service name."""

from __future__ import annotations

from signal import Signals

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from comfystudio_desktop.supervise.service_state import Remedy, ServiceState, State
from comfystudio_desktop.ui.services_panel import ServicesPanel, exit_text, state_text

DAMAGED = "The queue's append-only file is damaged: Bad file format reading the append only file x.aof. Repair it " \
          "from Services."


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def panel(qtbot: QtBot, clock: Clock) -> ServicesPanel:
    widget = ServicesPanel(clock=clock)
    qtbot.addWidget(widget)
    widget.show()
    qtbot.waitExposed(widget)
    return widget


def test_rows_for_the_app_services_in_order(panel: ServicesPanel) -> None:
    assert panel.names() == ["redis-server", "comfyui"]
    assert panel.cell("redis-server", "Service") == "Job queue (redis-server)"
    assert panel.cell("comfyui", "State") == ""  # nothing known yet
    panel.update_state(ServiceState(name="extra", state=State.STOPPED))
    assert panel.names() == ["redis-server", "comfyui", "extra"]


def test_running_service_shows_restarts_last_exit_and_a_moving_uptime(panel: ServicesPanel, clock: Clock) -> None:
    panel.update_state(ServiceState(name="redis-server", state=State.RUNNING, pid=42, restarts=2,
                                    last_exit_code=-9, uptime_s=65.0, healthy=True, message="running",
                                    last_log_lines=("Ready to accept connections tcp",)))
    assert panel.cell("redis-server", "State") == "running"
    assert panel.cell("redis-server", "Restarts") == "2"
    assert panel.cell("redis-server", "Last exit") == exit_text(-9)
    assert panel.cell("redis-server", "Uptime") == "1 min 5 s"
    clock.now += 60
    panel.refresh()
    assert panel.cell("redis-server", "Uptime") == "2 min 5 s"
    assert panel.button("redis-server", "stop").isEnabled()
    assert not panel.button("redis-server", "repair").isVisible()
    assert not panel.cell("redis-server", "Detail")


def test_restarting_counts_down_and_says_why(panel: ServicesPanel, clock: Clock) -> None:
    panel.update_state(ServiceState(name="comfyui", state=State.RESTARTING, restarts=1, last_exit_code=1,
                                    restart_in_s=4.2, message="exited with code 1"))
    assert panel.cell("comfyui", "State") == "restarting in 5 s"
    assert panel.cell("comfyui", "Detail") == "exited with code 1"
    clock.now += 2.5
    panel.refresh()
    assert panel.cell("comfyui", "State") == "restarting in 2 s"
    clock.now += 10
    panel.refresh()
    assert panel.cell("comfyui", "State") == "restarting in 0 s"
    assert panel.cell("comfyui", "Uptime") == ""


@pytest.mark.parametrize(("state", "text"), [
    (ServiceState(name="x", state=State.STARTING), "starting"),
    (ServiceState(name="x", state=State.HUNG, message="hung: failed 3 health checks in a row"), "hung"),
    (ServiceState(name="x", state=State.FATAL, message="crash loop"), "FATAL"),
    (ServiceState(name="x", state=State.STOPPED), "stopped"),
    (ServiceState(name="x", state=State.RUNNING, healthy=False), "running, not answering"),
    (ServiceState(name="x", state=State.EXTERNAL, healthy=True), "external, answering"),
    (ServiceState(name="x", state=State.EXTERNAL, healthy=False), "external, not answering"),
])
def test_state_texts(state: ServiceState, text: str) -> None:
    assert state_text(state) == text


def test_exit_texts() -> None:
    assert (exit_text(None), exit_text(0), exit_text(3)) == ("", "0", "3")
    assert exit_text(-15) == "killed (SIGTERM)"
    # Windows has no SIGKILL (a killed process there exits with a code, never a negative one): the number shows.
    assert exit_text(-9) == ("killed (SIGKILL)" if hasattr(Signals, "SIGKILL") else "killed (signal 9)")
    assert exit_text(-1000) == "killed (signal 1000)"


def test_fatal_damaged_aof_offers_the_repair_and_buttons_emit_the_name(panel: ServicesPanel, qtbot: QtBot) -> None:
    panel.update_state(ServiceState(name="redis-server", state=State.FATAL, last_exit_code=1, message=DAMAGED,
                                    remedy=Remedy.REPAIR_AOF))
    assert panel.cell("redis-server", "State") == "FATAL"
    assert panel.cell("redis-server", "Detail") == DAMAGED
    repair = panel.button("redis-server", "repair")
    assert repair.isVisible() and not panel.button("redis-server", "stop").isEnabled()
    for action, signal in (("repair", panel.repair_requested), ("restart", panel.restart_requested),
                           ("open_log", panel.open_log_requested)):
        with qtbot.waitSignal(signal) as blocker:
            qtbot.mouseClick(panel.button("redis-server", action), Qt.MouseButton.LeftButton)
        assert blocker.args == ["redis-server"]
    # Restarted after the repair: the offer goes away.
    panel.update_state(ServiceState(name="redis-server", state=State.RUNNING, restarts=0, uptime_s=0.0))
    assert not repair.isVisible() and not panel.cell("redis-server", "Detail")
    with qtbot.waitSignal(panel.stop_requested) as blocker:
        qtbot.mouseClick(panel.button("redis-server", "stop"), Qt.MouseButton.LeftButton)
    assert blocker.args == ["redis-server"]


def test_a_crash_loop_is_fatal_without_a_repair_offer(panel: ServicesPanel) -> None:
    panel.update_state(ServiceState(name="comfyui", state=State.FATAL, restarts=5, last_exit_code=3,
                                    message="crash loop: failed again after 5 restarts within 600s; last: exited "
                                            "with code 3"))
    assert panel.cell("comfyui", "State") == "FATAL" and panel.cell("comfyui", "Restarts") == "5"
    assert panel.cell("comfyui", "Detail").startswith("crash loop")
    assert not panel.button("comfyui", "repair").isVisible()


def test_an_external_service_can_only_be_checked(panel: ServicesPanel, qtbot: QtBot) -> None:
    panel.update_state(ServiceState(name="comfyui", state=State.EXTERNAL, healthy=False, message="watching"))
    assert panel.cell("comfyui", "State") == "external, not answering"
    assert panel.button("comfyui", "restart").text() == "Check now"
    assert not panel.button("comfyui", "stop").isVisible() and not panel.button("comfyui", "open_log").isVisible()
    with qtbot.waitSignal(panel.restart_requested) as blocker:
        qtbot.mouseClick(panel.button("comfyui", "restart"), Qt.MouseButton.LeftButton)
    assert blocker.args == ["comfyui"]
