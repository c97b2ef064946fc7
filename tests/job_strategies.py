"""Hypothesis strategies for job-shaped data: any JSON value, and dicts that look like jobs (often valid)."""

from __future__ import annotations

from typing import Any

from hypothesis import strategies as st

from comfystudio_desktop.jobs import ASPECT_RATIOS, IMAGE_SLOTS, MAX_SIDE, MIN_SIDE, SEED_MAX

__all__ = ["ANY_TEXT", "GOOD", "JSON_VALUES", "SIZES", "job_like"]

# Text including lone surrogates, NUL, newlines and the odd astral character.
ANY_CHAR = st.one_of(st.characters(exclude_categories=()), st.sampled_from("\n\r\x00\ud800\udfff\u2028/\\:."))
ANY_TEXT = st.text(ANY_CHAR, max_size=24)
JSON_SCALARS = st.one_of(st.none(), st.booleans(), st.integers(min_value=-(2**70), max_value=2**70),
                         st.floats(allow_nan=False, allow_infinity=False), ANY_TEXT)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(ANY_TEXT, inner, max_size=4)), max_leaves=12)

# Text a user can type: no NUL, no lone surrogate (not Unicode; the parser refuses it, as it must).
_TEXT_CHAR = st.characters(exclude_characters="\x00", exclude_categories=["Cs"])

# Plausible values per field, so that many generated jobs are valid and the round trip is really exercised.
GOOD: dict[str, st.SearchStrategy[Any]] = {
    "prompt": st.text(_TEXT_CHAR, min_size=1, max_size=40).filter(lambda s: s.strip() != ""),
    "job_id": st.from_regex(r"[A-Za-z0-9][A-Za-z0-9_-]{0,20}", fullmatch=True),
    "seed": st.integers(min_value=-1, max_value=SEED_MAX),
    "workflow": st.sampled_from(["text_to_image", "image_to_image", "blend", "my.flow-2"]),
    "model": st.sampled_from(["", "a.safetensors", "sub/dir/m.ckpt", "sub\\m.safetensors"]),
    "aspect_ratio": st.sampled_from([*ASPECT_RATIOS, "7:5", "100:1"]),
    "batch_size": st.integers(min_value=1, max_value=16),
    "images": st.dictionaries(st.sampled_from(IMAGE_SLOTS), st.sampled_from(["/tmp/a.png", "C:\\x\\b.jpg"])),
    "created_at": st.sampled_from(["2024-12-31T10:00:00", "2026-12-07T05:27:49.123+00:00"]),
    "negative_prompt": st.text(_TEXT_CHAR, max_size=20),
    "steps": st.none() | st.integers(min_value=1, max_value=200),
    "cfg": st.none() | st.floats(min_value=0, max_value=30) | st.integers(min_value=0, max_value=30),
    "denoise": st.none() | st.floats(min_value=0, max_value=1),
    "priority": st.integers(min_value=-100, max_value=100),
    "attempts": st.integers(min_value=0, max_value=1000),
    "text_encoder": st.sampled_from(["", "clip/t5.safetensors"]),
    "vae": st.sampled_from(["", "ae.safetensors"]),
}
SIZES = st.none() | st.tuples(st.integers(MIN_SIDE // 8, MAX_SIDE // 8), st.integers(MIN_SIDE // 8, MAX_SIDE // 8))


@st.composite
def job_like(draw: st.DrawFn) -> dict[str, Any]:
    """A dict shaped like a job: each field good, absent, or any JSON value; sometimes an unknown key."""
    data: dict[str, Any] = {}
    for name, good in GOOD.items():
        choice = draw(st.integers(0, 9))
        if choice < 7:
            data[name] = draw(good)
        elif choice < 9 and name != "prompt":
            continue
        else:
            data[name] = draw(JSON_VALUES)
    size = draw(SIZES)
    if size is not None:
        data["width"], data["height"] = size[0] * 8, size[1] * 8
    if draw(st.integers(0, 19)) == 0:
        data[draw(ANY_TEXT)] = draw(JSON_VALUES)
    return data
