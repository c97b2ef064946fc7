"""Active hours: the daily window ("22:00-07:00", may span midnight) in which workers take jobs.

Pure functions on local wall-clock time. Times are compared as aware datetimes, so a change of the clocks (DST)
never makes a window start twice or not at all: a start that falls in a skipped hour happens at the first moment
after it, a start in a repeated hour happens the first time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta

__all__ = ["ActiveHours", "ActiveHoursError", "is_active", "next_active_change", "parse_active_hours"]

# "HH:MM-HH:MM"; an en dash or " to " are accepted as the separator, as people write them (nothing around).
_WINDOW_RE = re.compile(r"([0-9]{2}):([0-9]{2})\s*(?:-|\u2013|to)\s*([0-9]{2}):([0-9]{2})")


class ActiveHoursError(ValueError):
    """The text is not an active-hours window."""


@dataclass(frozen=True, slots=True)
class ActiveHours:
    """Jobs run from `start` (inclusive) to `end` (exclusive), local time; `end < start` spans midnight."""

    start: time
    end: time

    def __str__(self) -> str:
        return f"{self.start:%H:%M}-{self.end:%H:%M}"

    def contains(self, moment: time) -> bool:
        """Whether the wall-clock time `moment` lies in the window."""
        if self.start < self.end:
            return self.start <= moment < self.end
        return moment >= self.start or moment < self.end


def parse_active_hours(text: str) -> ActiveHours | None:
    """The window in `text` ("22:00-07:00"); None for "" (always active); `ActiveHoursError` otherwise."""
    if not isinstance(text, str):
        raise ActiveHoursError(f"must be text, not {type(text).__name__}")
    if text == "":
        return None
    match = _WINDOW_RE.fullmatch(text)
    if match is None:
        raise ActiveHoursError('must be "" (always) or HH:MM-HH:MM, such as 22:00-07:00')
    h1, m1, h2, m2 = (int(part) for part in match.groups())
    if h1 > 23 or h2 > 23 or m1 > 59 or m2 > 59:
        raise ActiveHoursError("hours must be 00..23 and minutes 00..59")
    if (h1, m1) == (h2, m2):
        raise ActiveHoursError('start and end are the same; use "" to run at all hours')
    return ActiveHours(time(h1, m1), time(h2, m2))


def is_active(now: datetime, window: ActiveHours | None) -> bool:
    """Whether workers may take jobs at `now` (an aware local datetime)."""
    return window is None or window.contains(_wall(now))


def next_active_change(now: datetime, window: ActiveHours | None) -> datetime | None:
    """The first moment after `now` at which `is_active` changes (None when it never does).

    `now` must be aware and in the user's local zone (`datetime.now().astimezone()` or a `ZoneInfo`). The state is
    a function of the wall clock, so it can change where the clocks show a boundary or where they jump (DST).
    """
    if now.tzinfo is None:
        raise ValueError("now must be an aware datetime")
    if window is None:
        return None
    active = is_active(now, window)
    # Compared in UTC: Python compares two datetimes of the same zone by their wall clocks, fold ignored.
    start = now.astimezone(UTC)
    candidates = {m.astimezone(UTC) for m in [*_boundary_instants(now, window), *_clock_jumps(now, timedelta(days=3))]}
    for moment in sorted(m for m in candidates if m > start):
        if is_active(moment.astimezone(now.tzinfo), window) != active:
            return moment.astimezone(now.tzinfo)
    return None


def _boundary_instants(now: datetime, window: ActiveHours) -> list[datetime]:
    """Every instant near `now` at which the clocks show the window's start or end (both readings of a repeated
    hour; a skipped time has no instant and is covered by `_clock_jumps`)."""
    zone = now.tzinfo
    assert zone is not None
    found: list[datetime] = []
    for days in range(-1, 3):
        for wall in (window.start, window.end):
            naive = datetime.combine(now.date() + timedelta(days=days), wall)
            for fold in (0, 1):
                instant = naive.replace(tzinfo=zone, fold=fold).astimezone(UTC)
                if instant.astimezone(zone).replace(tzinfo=None) == naive:  # the clocks really show it
                    found.append(instant.astimezone(zone))
    return found


def _clock_jumps(now: datetime, horizon: timedelta) -> list[datetime]:
    """The instants in (now, now + horizon] at which the zone's UTC offset changes (to the second).

    Zones change their offset at most twice a year and never twice within half an hour, so sampling every
    30 minutes finds each change; a bisection then finds its second.
    """
    zone = now.tzinfo
    assert zone is not None
    start = now.astimezone(UTC)
    jumps: list[datetime] = []
    step = timedelta(minutes=30)
    low = start
    while low < start + horizon:
        high = low + step
        if low.astimezone(zone).utcoffset() != high.astimezone(zone).utcoffset():
            lo, hi = int(low.timestamp()), int(high.timestamp()) + 1  # old offset at lo, new one at hi
            old_offset = low.astimezone(zone).utcoffset()
            while hi - lo > 1:
                mid = (lo + hi) // 2
                if datetime.fromtimestamp(mid, UTC).astimezone(zone).utcoffset() == old_offset:
                    lo = mid
                else:
                    hi = mid
            jumps.append(datetime.fromtimestamp(hi, UTC).astimezone(zone))
        low = high
    return jumps


def _wall(moment: datetime) -> time:
    """The local wall-clock time of an aware datetime."""
    zone = moment.tzinfo
    assert zone is not None
    return moment.astimezone(UTC).astimezone(zone).time().replace(tzinfo=None)
