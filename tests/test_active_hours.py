"""Active hours: parsing, and `next_active_change` across midnight and the clock changes of real zones."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from comfystudio_desktop.active_hours import (
    ActiveHours,
    ActiveHoursError,
    is_active,
    next_active_change,
    parse_active_hours,
)
from comfystudio_desktop.settings import Settings, SettingsError, parse_setting

NY = ZoneInfo("America/New_York")
ZONES = [ZoneInfo(name) for name in ("America/New_York", "Europe/London", "Australia/Lord_Howe", "UTC",
                                     "Asia/Kathmandu")]


@pytest.mark.parametrize(("text", "expected"), [
    ("", None),
    ("22:00-07:00", ActiveHours(time(22), time(7))),
    ("09:30\u201317:45", ActiveHours(time(9, 30), time(17, 45))),
    ("00:00 to 23:59", ActiveHours(time(0), time(23, 59))),
])
def test_parse(text: str, expected: ActiveHours | None) -> None:
    assert parse_active_hours(text) == expected


@pytest.mark.parametrize("text", ["22:00", "22-07", "24:00-07:00", "22:60-07:00", "07:00-07:00", "7:00-9:00",
                                  "22:00-07:00\n", " 22:00-07:00", "22:00--07:00", "２２:00-07:00"])
def test_parse_refuses(text: str) -> None:
    with pytest.raises(ActiveHoursError):
        parse_active_hours(text)


@given(st.text(max_size=30))
def test_parse_is_total(text: str) -> None:
    try:
        window = parse_active_hours(text)
    except ActiveHoursError:
        return
    assert window is None or parse_active_hours(str(window)) == window


def test_setting_is_validated_strictly() -> None:
    assert parse_setting("active_hours", "22:00-07:00").active_hours == "22:00-07:00"
    with pytest.raises(SettingsError, match="active_hours"):
        parse_setting("active_hours", "late")
    with pytest.raises(SettingsError, match="active_hours"):
        Settings.from_dict({"active_hours": 2200})
    assert Settings().active_hours == "" and Settings().result_cache is True


@pytest.mark.parametrize(("now", "window", "active", "change"), [
    # spanning midnight
    (datetime(2026, 12, 7, 6, 0, tzinfo=NY), "22:00-07:00", True, datetime(2026, 12, 7, 7, 0, tzinfo=NY)),
    (datetime(2026, 12, 7, 12, 0, tzinfo=NY), "22:00-07:00", False, datetime(2026, 12, 7, 22, 0, tzinfo=NY)),
    (datetime(2026, 12, 7, 23, 0, tzinfo=NY), "22:00-07:00", True, datetime(2026, 12, 8, 7, 0, tzinfo=NY)),
    (datetime(2026, 12, 7, 22, 0, tzinfo=NY), "22:00-07:00", True, datetime(2026, 12, 8, 7, 0, tzinfo=NY)),
    (datetime(2026, 12, 7, 7, 0, tzinfo=NY), "22:00-07:00", False, datetime(2026, 12, 7, 22, 0, tzinfo=NY)),
    # within a day
    (datetime(2026, 12, 7, 8, 0, tzinfo=NY), "09:00-17:00", False, datetime(2026, 12, 7, 9, 0, tzinfo=NY)),
    (datetime(2026, 12, 7, 18, 0, tzinfo=NY), "09:00-17:00", False, datetime(2026, 12, 8, 9, 0, tzinfo=NY)),
    # spring forward (02:00 -> 03:00): a start at 02:30 happens when the clocks jump, 07:00 UTC
    (datetime(2026, 3, 8, 1, 0, tzinfo=NY), "02:30-05:00", False, datetime(2026, 3, 8, 7, 0, tzinfo=UTC)),
    # the night window is 1 h shorter that night, in real time
    (datetime(2026, 3, 7, 23, 0, tzinfo=NY), "22:00-07:00", True, datetime(2026, 3, 8, 11, 0, tzinfo=UTC)),
    # fall back (02:00 -> 01:00): 01:30 comes twice; the window opens at the first, closes as the clocks go
    # back to 01:00, and opens again at the second 01:30
    (datetime(2026, 11, 1, 0, 0, tzinfo=NY), "01:30-05:00", False, datetime(2026, 11, 1, 5, 30, tzinfo=UTC)),
    (datetime(2026, 11, 1, 5, 40, tzinfo=UTC).astimezone(NY), "01:30-05:00", True,
     datetime(2026, 11, 1, 6, 0, tzinfo=UTC)),
    (datetime(2026, 11, 1, 6, 10, tzinfo=UTC).astimezone(NY), "01:30-05:00", False,
     datetime(2026, 11, 1, 6, 30, tzinfo=UTC)),
])
def test_next_change_table(now: datetime, window: str, active: bool, change: datetime) -> None:
    parsed = parse_active_hours(window)
    assert is_active(now, parsed) is active
    result = next_active_change(now, parsed)
    assert result is not None and result.astimezone(UTC) == change.astimezone(UTC)  # (fold ignored otherwise)


def test_always_active_never_changes() -> None:
    assert is_active(datetime.now(UTC), None)
    assert next_active_change(datetime.now(UTC), None) is None
    with pytest.raises(ValueError, match="aware"):
        next_active_change(datetime(2026, 1, 1), parse_active_hours("22:00-07:00"))


_minutes = st.integers(min_value=0, max_value=24 * 60 - 1)


@settings(max_examples=300, deadline=None)
@given(st.sampled_from(ZONES), st.integers(min_value=1_767_225_600, max_value=1_830_297_600), _minutes, _minutes)
def test_next_change_is_the_first_change(zone: ZoneInfo, timestamp: int, start: int, end: int) -> None:
    """The state differs at the answer and nowhere before it (checked every 10 minutes and just before)."""
    if start == end:
        return
    window = ActiveHours(time(start // 60, start % 60), time(end // 60, end % 60))
    now = datetime.fromtimestamp(timestamp, UTC).astimezone(zone)
    state = is_active(now, window)
    change = next_active_change(now, window)
    assert change is not None
    gap = change.astimezone(UTC) - now.astimezone(UTC)
    assert timedelta(0) < gap <= timedelta(hours=26)  # at most a day, plus a clock change
    assert is_active(change, window) is not state
    probe = now.astimezone(UTC) + timedelta(minutes=10)
    while probe < change.astimezone(UTC):
        assert is_active(probe.astimezone(zone), window) is state, probe
        probe += timedelta(minutes=10)
    assert is_active((change.astimezone(UTC) - timedelta(seconds=1)).astimezone(zone), window) is state
