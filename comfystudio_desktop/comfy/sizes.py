"""Image sizes per aspect ratio and model family (pure, table-tested).

SD1.5-style checkpoints and UNETs are trained near 512x512 (~0.26 MP); the UNET families (Z-Image, Flux) near
1024x1024 (~1 MP). Sides are multiples of 16, which every latent format here accepts.
"""

from __future__ import annotations

import math
import re

__all__ = ["FAMILY_PIXELS", "SIZE_STEP", "image_size", "parse_ratio"]

SIZE_STEP = 16
MIN_SIDE = 64
MAX_SIDE = 8192
#: Target pixel count per model family.
FAMILY_PIXELS: dict[str, int] = {
    "checkpoint": 512 * 512,
    "unet-zimage": 1024 * 1024,
    "unet-flux": 1024 * 1024,
    "unet-sd15": 512 * 512,
}
_RATIO_RE = re.compile(r"^\s*(\d{1,3})\s*:\s*(\d{1,3})\s*$")


def parse_ratio(aspect_ratio: str) -> tuple[int, int]:
    """`"16:9"` -> (16, 9); ValueError for anything else."""
    match = _RATIO_RE.match(aspect_ratio)
    if not match or int(match.group(1)) == 0 or int(match.group(2)) == 0:
        raise ValueError(f"aspect ratio must look like 16:9, got {aspect_ratio!r}")
    return int(match.group(1)), int(match.group(2))


def image_size(aspect_ratio: str, family: str) -> tuple[int, int]:
    """(width, height) with about the family's pixel count, the given ratio, and sides a multiple of 16.

    Unknown families use the checkpoint size.
    """
    ratio_w, ratio_h = parse_ratio(aspect_ratio)
    pixels = FAMILY_PIXELS.get(family, FAMILY_PIXELS["checkpoint"])
    ratio = ratio_w / ratio_h
    return _side(math.sqrt(pixels * ratio)), _side(math.sqrt(pixels / ratio))


def _side(exact: float) -> int:
    # Round half up rather than to even, so 1:1 of a family is always its exact base side.
    rounded = math.floor(exact / SIZE_STEP + 0.5) * SIZE_STEP
    return min(MAX_SIDE, max(MIN_SIDE, rounded))
