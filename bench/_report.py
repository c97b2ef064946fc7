"""What the benchmark scripts share: progress lines on stderr and nearest-rank percentiles."""

from __future__ import annotations

import sys
import time

__all__ = ["log", "pct"]


def log(text: str) -> None:
    """A timestamped progress line on stderr (stdout carries the figures)."""
    print(f"[{time.strftime('%H:%M:%S')}] {text}", file=sys.stderr, flush=True)


def pct(values: list[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100)."""
    ordered = sorted(values)
    rank = max(1, min(len(ordered), round(q / 100 * len(ordered) + 0.5)))
    return ordered[rank - 1]
