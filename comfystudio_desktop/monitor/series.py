"""Capped time series of `StatsSnapshot`s in Redis: one per 10 s for 24 h, one per 5 min for 30 days.

Each series is a list of JSON samples, appended and trimmed to its cap in one MULTI (RPUSH + LTRIM, Redis 5.0),
so its length never exceeds the cap and it survives restarts with the AOF. A sample slot is claimed with
SET NX EX before the sample is taken, so however many windows and workers sample, one writes per slot.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from enum import Enum
from typing import cast

import redis

from comfystudio_desktop.monitor.snapshot import SnapshotFormatError, StatsSnapshot

__all__ = ["Resolution", "StatsSeries"]

log = logging.getLogger(__name__)
_PREFIX = "cs:mon:series:"
_SLOT_PREFIX = "cs:mon:slot:"


@dataclass(frozen=True, slots=True)
class _Spec:
    interval_s: int
    cap: int


class Resolution(Enum):
    """The series kept: their sample interval and the number of samples kept."""

    FINE = _Spec(10, 24 * 360)  # 24 h
    COARSE = _Spec(300, 30 * 288)  # 30 days

    @property
    def key(self) -> str:
        """The Redis list holding this series."""
        return _PREFIX + self.name.lower()

    @property
    def interval_s(self) -> int:
        """Seconds between samples."""
        return self.value.interval_s

    @property
    def cap(self) -> int:
        """Most samples kept."""
        return self.value.cap

    def slot(self, at: float) -> int:
        """The index of the interval `at` falls in."""
        return int(at // self.interval_s)


class StatsSeries:
    """Claims sample slots, appends samples and reads them back (all calls take the client to use)."""

    @staticmethod
    def claim(client: redis.Redis, resolution: Resolution, at: float, owner: str) -> bool:
        """True if this caller is the one sampler that writes `resolution`'s slot for time `at`."""
        key = f"{_SLOT_PREFIX}{resolution.name.lower()}:{resolution.slot(at)}"
        return bool(client.set(key, owner, nx=True, ex=resolution.interval_s * 2))

    @staticmethod
    def append(client: redis.Redis, resolution: Resolution, snapshot: StatsSnapshot) -> None:
        """Append one sample and trim the series to its cap, atomically."""
        pipe = client.pipeline(transaction=True)
        pipe.rpush(resolution.key, snapshot.to_json())
        pipe.ltrim(resolution.key, -resolution.cap, -1)
        pipe.execute()

    @staticmethod
    def length(client: redis.Redis, resolution: Resolution) -> int:
        """How many samples the series holds."""
        return int(client.llen(resolution.key))

    @staticmethod
    def latest(client: redis.Redis, resolution: Resolution, count: int) -> list[StatsSnapshot]:
        """The last `count` samples, oldest first; samples this version cannot read are left out."""
        raw = cast(list[str], client.lrange(resolution.key, -count, -1))
        return _parse_all(raw)

    @staticmethod
    def since(client: redis.Redis, resolution: Resolution, after: float, now: float) -> list[StatsSnapshot]:
        """The samples taken after `after` (reads only as many as can fit in the time since), oldest first."""
        span = max(0.0, now - after)
        count = min(resolution.cap, int(span // resolution.interval_s) + 2)
        return [s for s in StatsSeries.latest(client, resolution, count) if s.at > after]


def _parse_all(raw: list[str]) -> list[StatsSnapshot]:
    samples: list[StatsSnapshot] = []
    bad = 0
    for text in raw:
        try:
            samples.append(StatsSnapshot.from_json(text))
        except SnapshotFormatError:
            bad += 1
    if bad:
        log.warning("%d stored monitor sample(s) could not be read and were skipped", bad)
    return samples
