"""The strict job parser: any JSON value, any bytes -> a valid Job that round-trips, or JobValidationError."""

from __future__ import annotations

import json
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.jobs import Job, JobValidationError
from tests.job_strategies import GOOD, JSON_VALUES, SIZES, job_like


def assert_job_or_clean_error(parse: Any, value: Any) -> Job | None:
    """The property: a valid job that round-trips through JSON, or JobValidationError; nothing else."""
    try:
        job = parse(value)
    except JobValidationError as exc:
        assert exc.field and exc.message and len(str(exc)) < 400
        return None
    assert isinstance(job, Job)
    assert job.validate() is job
    assert Job.from_json(job.to_json()) == job
    assert Job.from_json(job.to_json().encode("utf-8")) == job
    return job


@settings(max_examples=300, deadline=None)
@given(JSON_VALUES)
def test_any_json_value(value: Any) -> None:
    assert_job_or_clean_error(Job.from_dict, value)
    assert_job_or_clean_error(Job.from_json, json.dumps(value))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200))
def test_any_bytes(data: bytes) -> None:
    assert_job_or_clean_error(Job.from_json, data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(job_like())
def test_job_like_objects(data: dict[str, Any]) -> None:
    by_dict = assert_job_or_clean_error(Job.from_dict, data)
    by_text = assert_job_or_clean_error(Job.from_json, json.dumps(data))
    assert (by_dict is None) == (by_text is None)


@settings(max_examples=200, deadline=None)
@given(st.fixed_dictionaries({name: good for name, good in GOOD.items()}), SIZES)
def test_good_jobs_always_parse_and_round_trip(data: dict[str, Any], size: tuple[int, int] | None) -> None:
    if size is not None:
        data["width"], data["height"] = size[0] * 8, size[1] * 8
    job = Job.from_dict(data)
    assert Job.from_json(job.to_json()) == job
    assert job.prompt == data["prompt"] and job.images == data["images"]


@pytest.mark.parametrize(("data", "field", "needle"), [
    ({"prompt": "x", "model": 5}, "model", "must be text, not a number"),
    ({"prompt": "x", "images": {"input": 5}}, "images", "path must be text"),
    ({"prompt": "x", "images": []}, "images", "must be an object"),
    ({"prompt": "x", "negative_prompt": ["4", 0]}, "negative_prompt", "not an array"),
    ({"prompt": "x", "workflow": {"a": 1}}, "workflow", "not an object"),
    ({"prompt": "x", "aspect_ratio": 1.5}, "aspect_ratio", "must be text"),
    ({"prompt": "x", "seed": True}, "seed", "whole number, not true/false"),
    ({"prompt": "x", "batch_size": 2.0}, "batch_size", "whole number"),
    ({"prompt": "x", "cfg": False}, "cfg", "must be a number"),
    ({"prompt": "x", "steps": "20"}, "steps", "whole number, not text"),
    ({"prompt": 7}, "prompt", "must be text"),
    ({"prompt": None}, "prompt", "is required"),
    ({"prompt": "x", "job_id": "abc\n"}, "job_id", "letters, digits"),
    ({"prompt": "x", "model": "m.safetensors\n"}, "model", "invalid model name"),
    ({"prompt": "x", "workflow": "text_to_image\n"}, "workflow", "invalid workflow"),
    ({"prompt": "x", "aspect_ratio": "1:1\n"}, "aspect_ratio", "W:H"),
    ({"prompt": "x", "aspect_ratio": "٣:٢"}, "aspect_ratio", "W:H"),  # non-ASCII digits
    ({"prompt": "\ud800"}, "prompt", "lone surrogate"),
    ({"prompt": "x", "negative_prompt": "a\udfffb"}, "negative_prompt", "lone surrogate"),
    ({"prompt": "a\x00b"}, "prompt", "NUL"),
    ({"prompt": "x", "vae": "../ae.safetensors"}, "vae", "invalid file name"),
    ({"prompt": "x", "text_encoder": 3}, "text_encoder", "must be text"),
    ({"prompt": "x", "width": 1004, "height": 1024}, "width", "multiple of 8"),
    ({"prompt": "x", "width": 1024, "height": 16392}, "height", "64..16384"),
    ({"prompt": "x", "width": 32, "height": 1024}, "width", "64..16384"),
    ({"prompt": "x", "width": 1024}, "width", "go together"),
    ({"prompt": "x", "created_at": "yesterday"}, "created_at", "ISO 8601"),
    ({"prompt": "x", "cfg": 10**400}, "cfg", "0..30"),
])
def test_named_bad_values_name_their_field(data: dict[str, Any], field: str, needle: str) -> None:
    with pytest.raises(JobValidationError) as err:
        Job.from_dict(data)
    assert err.value.field == field and needle in err.value.message


@pytest.mark.parametrize(("text", "needle"), [
    (b'{"prompt": "\xff"}', "not valid UTF-8"),
    (b'{"prompt": "x", "seed": NaN}', "NaN"),
    (b'{"prompt": "x", "cfg": Infinity}', "Infinity"),
    (b'{"prompt": "a", "prompt": "b"}', "duplicate key"),
    ('{"prompt": "x", "seed": ' + "9" * 5000 + "}", "not valid JSON"),
    ("[" * 50_000 + "]" * 50_000, "nested too deeply"),
    ('{"prompt": ' + "[" * 50_000 + "]" * 50_000 + "}", "nested too deeply"),
    ("", "not valid JSON"),
    ('"just text"', "must be a JSON object, not text"),
])
def test_undecodable_input_is_one_clean_error(text: str | bytes, needle: str) -> None:
    with pytest.raises(JobValidationError) as err:
        Job.from_json(text)
    assert needle in str(err.value) and len(str(err.value)) < 400


def test_sizes_are_sizes_and_nulls_mean_defaults() -> None:
    job = Job.from_dict({"prompt": "x", "width": 1024, "height": 1024, "aspect_ratio": "1:1", "model": None,
                         "steps": None, "seed": None, "job_id": None})
    assert (job.width, job.height, job.model, job.steps, job.seed) == (1024, 1024, "", None, -1)
    assert Job.from_dict({"prompt": "x", "width": 16384, "height": 64}).width == 16384
    assert Job.from_dict({"prompt": "x", "text_encoder": "qwen/q3.safetensors", "vae": "ae.safetensors"}).vae == \
        "ae.safetensors"
    assert Job.from_dict({"prompt": "x"}, default_job_id="given-id").job_id == "given-id"
    assert list(Job.__dataclass_fields__)[-4:] == ["text_encoder", "vae", "no_cache", "batch_id"]


def test_direct_construction_is_checked_as_strictly() -> None:
    """The window and the CLI build Job objects directly; validate() applies the same exact types."""
    for bad in ({"model": 5}, {"images": {"input": 5}}, {"negative_prompt": ["1", 0]}, {"seed": True},
                {"images": ["input"]}, {"prompt": b"bytes"}):
        with pytest.raises(JobValidationError):
            Job(**{"prompt": "x", **bad}).validate()  # type: ignore[arg-type]
