"""How ComfyUI's per-node progress becomes the job's 30-95 % (pure functions, table-tested).

Below 30 % belongs to the worker (validate, upload, submit); above 95 % to fetching and saving results.
"""

from __future__ import annotations

import math
from collections.abc import Mapping

__all__ = ["PROGRESS_END", "PROGRESS_START", "map_progress", "progress_fraction", "scale_progress"]

PROGRESS_START = 30
PROGRESS_END = 95


def progress_fraction(nodes: Mapping[str, tuple[float, float]], total_nodes: int = 0) -> float:
    """Done share of the work, 0..1: Σ value / Σ max over the nodes that reported progress.

    Nodes report `max == 1` (loaders, encoders) or their step count (samplers), so a 30-step sampler
    weighs 30 and a loader 1. `total_nodes` counts the nodes that will run (cached ones excluded);
    those not reported yet weigh 1 each, so the share does not jump when the first nodes finish.
    """
    done = 0.0
    total = 0.0
    for value, maximum in nodes.values():
        if maximum <= 0 or math.isnan(maximum) or math.isnan(value):
            continue
        done += min(max(value, 0.0), maximum)
        total += maximum
    total += max(0, total_nodes - len(nodes))
    return done / total if total > 0 else 0.0


def scale_progress(fraction: float, previous: int = PROGRESS_START) -> int:
    """Map a 0..1 share onto 30..95 (rounded down); never below `previous`, so progress never goes back."""
    if math.isnan(fraction):
        fraction = 0.0
    fraction = min(max(fraction, 0.0), 1.0)
    percent = PROGRESS_START + math.floor(fraction * (PROGRESS_END - PROGRESS_START))
    return max(previous, percent)


def map_progress(nodes: Mapping[str, tuple[float, float]], *, total_nodes: int = 0,
                 previous: int = PROGRESS_START) -> int:
    """The job's percentage for ComfyUI's node progress: `scale_progress(progress_fraction(...), previous)`."""
    return scale_progress(progress_fraction(nodes, total_nodes), previous)
