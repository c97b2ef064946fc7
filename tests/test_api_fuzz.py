"""Any request body, any path: the API answers 2xx or 4xx with a JSON error body, never a 500."""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.settings import Settings
from tests.api_support import ApiHarness, files_in

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
_JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=20)
_FIELDS = ["prompt", "job_id", "seed", "workflow", "model", "aspect_ratio", "batch_size", "images", "created_at",
           "negative_prompt", "width", "height", "steps", "cfg", "denoise", "priority", "attempts", "text_encoder",
           "vae"]
_JOBS = st.dictionaries(st.sampled_from(_FIELDS), _JSON, max_size=8).map(lambda d: {"prompt": "p", **d})


@pytest.fixture
def api(home: Home, queue: JobQueue) -> Iterator[ApiHarness]:
    with ApiHarness(home, Settings(comfy_url="http://127.0.0.1:9"), queue) as harness:
        yield harness


def _well_formed(answer: object) -> None:
    import requests

    assert isinstance(answer, requests.Response)
    assert answer.status_code < 500, answer.text
    body = answer.json()
    if answer.status_code >= 400:
        assert isinstance(body, dict)
        assert isinstance(body["error"], str)
        assert body["error"]


@FUZZ
@given(body=_JSON | _JOBS)
def test_any_json_job(api: ApiHarness, body: object) -> None:
    answer = api.post("/api/generate", data=json.dumps(body), headers={"Content-Type": "application/json"})
    _well_formed(answer)
    if answer.status_code == 200:
        assert isinstance(body, dict)
        assert api.get(f"/api/status/{answer.json()['job_id']}").status_code == 200


@FUZZ
@given(raw=st.binary(max_size=2048), content_type=st.sampled_from(
    ["application/json", "multipart/form-data; boundary=xyz", "multipart/form-data", "text/plain", ""]))
def test_any_bytes(api: ApiHarness, home: Home, raw: bytes, content_type: str) -> None:
    headers = {"Content-Type": content_type} if content_type else {}
    _well_formed(api.post("/api/generate", data=raw, headers=headers))
    assert not any(name.startswith(".upload-") for name in files_in(home.inputs))


@FUZZ
@given(parts=st.lists(st.tuples(st.sampled_from(["job", "input", "source", "target", "x", ""]),
                                st.binary(max_size=300)), max_size=5))
def test_any_multipart(api: ApiHarness, home: Home, parts: list[tuple[str, bytes]]) -> None:
    boundary = "b0undary"
    body = b"".join(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'.encode() + data + b"\r\n"
                    for name, data in parts) + f"--{boundary}--\r\n".encode()
    answer = api.post("/api/generate", data=body, headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
    _well_formed(answer)
    assert not any(name.startswith(".upload-") for name in files_in(home.inputs))


@FUZZ
@given(segment=st.text(max_size=80), method=st.sampled_from(["GET", "POST"]),
       prefix=st.sampled_from(["/api/status/", "/api/cancel/", "/api/retry/", "/outputs/", "/api/jobs?status=",
                               "/api/events?job_id=", "/api/"]))
def test_any_path(api: ApiHarness, segment: str, method: str, prefix: str) -> None:
    from urllib.parse import quote

    answer = api.request(method, prefix + quote(segment, safe=""), stream=True)
    try:
        if answer.headers.get("Content-Type", "").startswith("text/event-stream"):
            assert answer.status_code == 200
            return
        assert answer.status_code < 500
        if answer.status_code >= 400:
            assert isinstance(answer.json()["error"], str)
    finally:
        answer.close()
