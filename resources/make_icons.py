"""Draw the app and tray icons with Pillow: `python resources/make_icons.py`.

The glyph is a sparkle on a rounded indigo square. Tray icons add a status badge in the lower right
corner: none (idle), a blue dot (working), a red dot with "!" (error). The output is deterministic, so
re-running it leaves the committed files unchanged.
"""

from __future__ import annotations

import math
from pathlib import Path

from PIL import Image, ImageDraw

OUT = Path(__file__).resolve().parent / "icons"
SUPERSAMPLE = 4  # draw big, then downscale: cheap antialiasing
ICO_SIZES = [(16, 16), (24, 24), (32, 32), (48, 48), (64, 64), (128, 128), (256, 256)]

TOP, BOTTOM = (99, 102, 241), (67, 56, 202)  # indigo gradient
WHITE = (255, 255, 255, 255)
BADGES = {"working": (37, 99, 235), "error": (220, 38, 38)}


def _sparkle(draw: ImageDraw.ImageDraw, cx: float, cy: float, radius: float) -> None:
    """A four-pointed star with concave sides."""
    points = []
    steps = 64
    for i in range(steps):
        angle = 2 * math.pi * i / steps
        # |cos|^3 / |sin|^3 parametrisation of an astroid: sharp tips, smooth concave edges.
        x = math.copysign(abs(math.cos(angle)) ** 3, math.cos(angle))
        y = math.copysign(abs(math.sin(angle)) ** 3, math.sin(angle))
        points.append((cx + radius * x, cy + radius * y))
    draw.polygon(points, fill=WHITE)


def glyph(size: int) -> Image.Image:
    """The app glyph at `size`×`size` pixels (RGBA)."""
    big = size * SUPERSAMPLE
    gradient = Image.new("RGBA", (big, big))
    for y in range(big):
        t = y / (big - 1)
        colour = tuple(round(a + (b - a) * t) for a, b in zip(TOP, BOTTOM, strict=True))
        gradient.paste((*colour, 255), (0, y, big, y + 1))
    mask = Image.new("L", (big, big), 0)
    margin = big * 0.04
    ImageDraw.Draw(mask).rounded_rectangle((margin, margin, big - margin, big - margin), radius=big * 0.22, fill=255)
    img = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    img.paste(gradient, (0, 0), mask)
    draw = ImageDraw.Draw(img)
    _sparkle(draw, big * 0.45, big * 0.55, big * 0.30)
    _sparkle(draw, big * 0.72, big * 0.27, big * 0.11)
    return img.resize((size, size), Image.Resampling.LANCZOS)


def with_badge(base: Image.Image, state: str) -> Image.Image:
    """`base` with the status badge for `state` ("working" or "error")."""
    size = base.width
    big = size * SUPERSAMPLE
    overlay = Image.new("RGBA", (big, big), (0, 0, 0, 0))
    draw = ImageDraw.Draw(overlay)
    r = big * 0.22
    cx = cy = big - r - big * 0.02
    draw.ellipse((cx - r - big * 0.04, cy - r - big * 0.04, cx + r + big * 0.04, cy + r + big * 0.04), fill=WHITE)
    draw.ellipse((cx - r, cy - r, cx + r, cy + r), fill=(*BADGES[state], 255))
    if state == "error":
        w = r * 0.26
        draw.rounded_rectangle((cx - w / 2, cy - r * 0.62, cx + w / 2, cy + r * 0.18), radius=w / 2, fill=WHITE)
        draw.ellipse((cx - w / 2, cy + r * 0.34, cx + w / 2, cy + r * 0.34 + w), fill=WHITE)
    return Image.alpha_composite(base, overlay.resize((size, size), Image.Resampling.LANCZOS))


def main() -> None:
    """Write app.png, app.ico and the tray icons into resources/icons/."""
    OUT.mkdir(parents=True, exist_ok=True)
    app = glyph(256)
    app.save(OUT / "app.png", optimize=True)
    app.save(OUT / "app.ico", sizes=ICO_SIZES)
    tray = glyph(64)
    tray.save(OUT / "tray-idle.png", optimize=True)
    for state in BADGES:
        with_badge(tray, state).save(OUT / f"tray-{state}.png", optimize=True)
    print(f"icons written to {OUT}")


if __name__ == "__main__":
    main()
