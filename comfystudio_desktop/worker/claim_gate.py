"""Whether a worker may claim now: the queue-level pause in Redis, then the active hours of its settings."""

from __future__ import annotations

import logging
from datetime import datetime

from comfystudio_desktop.active_hours import ActiveHoursError, parse_active_hours
from comfystudio_desktop.queue.queue_pause import QueueGate, QueuePauseStore, queue_gate

__all__ = ["ClaimGate"]

log = logging.getLogger(__name__)


class ClaimGate:
    """Reads the pause flag before every claim (one small read) and logs each change of the decision once."""

    def __init__(self, store: QueuePauseStore, worker_id: str) -> None:
        self._store = store
        self._worker_id = worker_id
        self.last = QueueGate(open=True)

    def check(self, active_hours: str) -> bool:
        """True if claiming is allowed now."""
        try:
            window = parse_active_hours(active_hours)
        except ActiveHoursError:
            window = None  # settings are validated on load; a bad value never stops the queue
        gate = queue_gate(self._store.current(), window, datetime.now().astimezone())
        if gate != self.last:
            log.info("Worker %r: %s", self._worker_id, gate.describe())
        self.last = gate
        return gate.open
