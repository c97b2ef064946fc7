"""Outside data the monitor reads (INFO, /system_stats, stored samples) becomes a typed value or 'unavailable'."""

from __future__ import annotations

import json
import math

from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.monitor.aggregates import duration_stats, iso_ms
from comfystudio_desktop.monitor.report import figure_lines, format_bytes
from comfystudio_desktop.monitor.snapshot import DurationStats, GpuStats, SnapshotFormatError, StatsSnapshot
from comfystudio_desktop.monitor.sources import gpu_from_system_stats, redis_memory_from_info
from tests.conftest import COMFY_TRANSCRIPTS

TRANSCRIPTS = COMFY_TRANSCRIPTS

_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=5),
    max_leaves=30,
)
_device_key = st.sampled_from(["name", "vram_total", "vram_free", "type", "index"])
_device = st.dictionaries(_device_key, _json, max_size=5)
_stats_like = st.fixed_dictionaries({"devices": st.lists(_device, max_size=3)}) | _json


def test_recorded_system_stats_give_the_device() -> None:
    events = json.loads((TRANSCRIPTS / "a_info_endpoints.json").read_text(encoding="utf-8"))["events"]
    reply = next(e["response_json"] for e in events if e.get("path") == "/system_stats")
    assert gpu_from_system_stats(reply) == GpuStats("cpu", 25276502016, 24431181824)


@given(_stats_like)
def test_any_system_stats_reply_is_a_device_or_unavailable(data: object) -> None:
    gpu = gpu_from_system_stats(data)
    if gpu is not None:
        assert isinstance(gpu.name, str) and 0 <= gpu.vram_free <= gpu.vram_total
        assert gpu.vram_used >= 0


@given(st.dictionaries(st.sampled_from(["used_memory", "used_memory_rss", "x"]), _json) | _json)
def test_any_info_reply_is_a_size_or_unavailable(info: object) -> None:
    memory = redis_memory_from_info(info)
    assert memory is None or (isinstance(memory, int) and not isinstance(memory, bool) and memory >= 0)


_counts = st.integers(min_value=0, max_value=2**53)
_seconds = st.floats(min_value=0, max_value=1e9, allow_nan=False)
_durations = st.none() | st.builds(DurationStats, _counts, _seconds, _seconds, _seconds)
_snapshots = st.builds(
    StatsSnapshot, at=_seconds, queued=_counts, running=_counts, finished=_counts, failed=_counts,
    cancelled=_counts, images_total=_counts, images_last_hour=_counts, processing=_durations, waiting=_durations,
    redis_memory=st.none() | _counts, worker_cpu_percent=st.none() | _seconds, worker_rss=st.none() | _counts,
    gpu=st.none() | st.builds(GpuStats, st.text(max_size=30), _counts, _counts), outputs_bytes=_counts,
    outputs_images=_counts)


@given(_snapshots)
def test_snapshots_round_trip_and_print(snapshot: StatsSnapshot) -> None:
    assert StatsSnapshot.from_json(snapshot.to_json()) == snapshot
    assert len(figure_lines(snapshot)) == 9


@given(st.text(max_size=200) | _json.map(json.dumps))
def test_any_stored_text_is_a_snapshot_or_one_clear_error(text: str) -> None:
    try:
        StatsSnapshot.from_json(text)
    except SnapshotFormatError as exc:
        assert str(exc)


@given(_snapshots, st.sampled_from(["queued", "at", "gpu", "processing", "worker_rss"]), _json)
def test_a_sample_with_a_field_of_the_wrong_type_is_refused(snapshot: StatsSnapshot, name: str,
                                                            value: object) -> None:
    data = json.loads(snapshot.to_json())
    data[name] = value
    try:
        parsed = StatsSnapshot.from_dict(data)
    except SnapshotFormatError:
        return
    assert json.loads(parsed.to_json())[name] == value  # accepted as it was: nothing coerced


@given(st.text(max_size=50) | _json)
def test_iso_times_are_parsed_strictly(text: object) -> None:
    value = iso_ms(text)
    assert value is None or isinstance(value, int)


def test_iso_times_need_a_timezone() -> None:
    assert iso_ms("2026-12-07T06:00:00.250+00:00") == 1796623200250
    assert iso_ms("2026-12-07T06:00:00") is None


@given(st.lists(st.integers(min_value=0, max_value=10**9), max_size=50))
def test_duration_figures_are_ordered(values: list[int]) -> None:
    stats = duration_stats(values)
    if not values:
        assert stats is None
        return
    assert stats is not None and stats.count == len(values)
    low, high = min(values) / 1000, max(values) / 1000
    assert low <= stats.median_s <= stats.p90_s + 1e-9 <= high + 2e-9
    assert math.isclose(stats.mean_s, sum(values) / 1000 / len(values), rel_tol=1e-9, abs_tol=1e-9)


def test_byte_sizes_read_well() -> None:
    assert [format_bytes(v) for v in (None, 0, 999, 1500, 2_500_000, 340_000_000, 24_431_181_824)] == \
        ["unavailable", "0 B", "999 B", "1.5 kB", "2.5 MB", "340 MB", "24.4 GB"]
