"""ComfyUI node progress mapped onto the job's 30-95 % (pure functions, tables)."""

from __future__ import annotations

import math

import pytest

from comfystudio_desktop.comfy.progress_mapping import (
    PROGRESS_END,
    PROGRESS_START,
    map_progress,
    progress_fraction,
    scale_progress,
)


@pytest.mark.parametrize(("nodes", "total_nodes", "fraction"), [
    ({}, 0, 0.0),
    ({}, 7, 0.0),
    ({"4": (1.0, 1.0)}, 0, 1.0),
    ({"4": (1.0, 1.0)}, 4, 0.25),  # three nodes not reported yet weigh 1 each
    ({"4": (1.0, 1.0), "3": (2.0, 4.0)}, 0, 0.6),  # a sampler weighs its step count
    ({"4": (1.0, 1.0), "3": (0.0, 30.0)}, 3, 1 / 32),
    ({"3": (40.0, 30.0)}, 0, 1.0),  # value beyond max is capped
    ({"3": (-5.0, 10.0)}, 0, 0.0),
    ({"3": (1.0, 0.0), "4": (1.0, 2.0)}, 0, 0.5),  # a node with max 0 is ignored
    ({"3": (math.nan, 4.0), "4": (1.0, 1.0)}, 0, 1.0),
])
def test_progress_fraction(nodes: dict[str, tuple[float, float]], total_nodes: int, fraction: float) -> None:
    assert progress_fraction(nodes, total_nodes) == pytest.approx(fraction)


@pytest.mark.parametrize(("fraction", "previous", "percent"), [
    (0.0, PROGRESS_START, 30),
    (0.5, PROGRESS_START, 62),
    (0.999, PROGRESS_START, 94),
    (1.0, PROGRESS_START, 95),
    (1.7, PROGRESS_START, 95),
    (-0.3, PROGRESS_START, 30),
    (math.nan, PROGRESS_START, 30),
    (0.1, 50, 50),  # never backwards
    (0.9, 50, 88),
    (0.0, 0, 30),  # a job that had not started yet still begins at 30
    (0.2, 97, 97),  # the worker already went past 95
])
def test_scale_progress(fraction: float, previous: int, percent: int) -> None:
    assert scale_progress(fraction, previous) == percent


@pytest.mark.parametrize(("nodes", "total_nodes", "previous", "percent"), [
    ({}, 0, PROGRESS_START, 30),
    ({"4": (1.0, 1.0)}, 7, PROGRESS_START, 39),
    ({"4": (1.0, 1.0), "5": (1.0, 1.0), "7": (1.0, 1.0), "6": (1.0, 1.0), "3": (2.0, 4.0)}, 7, 30, 69),
    ({"4": (1.0, 1.0), "3": (4.0, 4.0), "8": (1.0, 1.0), "9": (1.0, 1.0)}, 4, 30, PROGRESS_END),
    ({"4": (1.0, 1.0), "3": (1.0, 30.0)}, 0, 60, 60),
])
def test_map_progress(nodes: dict[str, tuple[float, float]], total_nodes: int, previous: int, percent: int) -> None:
    assert map_progress(nodes, total_nodes=total_nodes, previous=previous) == percent
