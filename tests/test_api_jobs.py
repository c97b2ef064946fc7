"""The API's job endpoints against the real queue: shapes, the one job parser, uploads, the outbox, the OpenAPI."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator

import pytest
from aiohttp import web

from comfystudio_desktop.api.openapi_document import OPENAPI
from comfystudio_desktop.api.server import build_app
from comfystudio_desktop.home import Home
from comfystudio_desktop.queue.job_queue import JobQueue
from comfystudio_desktop.queue.redis_endpoint import RedisEndpoint
from comfystudio_desktop.settings import Settings
from comfystudio_desktop.supervise.redis_server import EmbeddedRedis
from tests.api_support import ApiHarness, files_in, png_bytes
from tests.conftest import make_queue

SEED_STATUS_FIELDS = {"job_id", "status", "progress", "image_url", "error", "updated_at"}


@pytest.fixture
def api(home: Home, queue: JobQueue) -> Iterator[ApiHarness]:
    with ApiHarness(home, Settings(comfy_url="http://127.0.0.1:9"), queue) as harness:
        yield harness


def _multipart(job: dict[str, object], **images: bytes) -> dict[str, tuple[str | None, bytes | str, str]]:
    parts: dict[str, tuple[str | None, bytes | str, str]] = {"job": (None, json.dumps(job), "application/json")}
    for slot, data in images.items():
        parts[slot] = (f"{slot}.png", data, "image/png")
    return parts


def test_seed_shapes_generate_status_cancel(api: ApiHarness) -> None:
    seed_job = {"prompt": "a cat", "seed": 12345, "workflow": "text_to_image", "model": "turbo_fp8",
                "aspect_ratio": "1:1", "batch_size": 1}
    answer = api.post("/api/generate", json=seed_job)
    assert answer.status_code == 200
    job_id = answer.json()["job_id"]
    assert answer.json() == {"job_id": job_id, "status": "queued"}
    status = api.get(f"/api/status/{job_id}").json()
    assert set(status) == SEED_STATUS_FIELDS
    assert (status["status"], status["progress"], status["image_url"]) == ("queued", 0, "")
    cancelled = api.post(f"/api/cancel/{job_id}")
    assert cancelled.json() == {"job_id": job_id, "status": "cancelled", "outcome": "cancelled"}
    assert api.get(f"/api/status/{job_id}").json()["status"] == "cancelled"
    again = api.post(f"/api/cancel/{job_id}")
    assert again.status_code == 409
    assert again.json()["outcome"] == "already_cancelled"
    retried = api.post(f"/api/retry/{job_id}")
    assert retried.json() == {"job_id": job_id, "status": "queued"}
    assert api.post(f"/api/retry/{job_id}").status_code == 409  # queued: nothing to retry
    listed = api.get("/api/jobs?status=queued").json()["jobs"]
    assert [j["job_id"] for j in listed] == [job_id]
    assert listed[0]["job"]["prompt"] == "a cat"


def test_a_client_job_id_is_idempotent(api: ApiHarness) -> None:
    first = api.post("/api/generate", json={"prompt": "a", "job_id": "mine-1"})
    second = api.post("/api/generate", json={"prompt": "a", "job_id": "mine-1"})
    assert first.json() == {"job_id": "mine-1", "status": "queued"}
    assert second.json() == {"job_id": "mine-1", "status": "queued", "duplicate": True}
    assert len(api.get("/api/jobs").json()["jobs"]) == 1


@pytest.mark.parametrize(("body", "field"), [
    ({"prompt": ""}, "prompt"), ({}, "prompt"), ({"prompt": "a", "seed": "5"}, "seed"),
    ({"prompt": "a", "seed": True}, "seed"), ({"prompt": "a", "batch_size": 1.0}, "batch_size"),
    ({"prompt": "a", "batch_size": 99}, "batch_size"), ({"prompt": "a", "colour": "red"}, "colour"),
    ({"prompt": "a", "images": {"input": "/etc/passwd"}}, "images"), ({"prompt": "a", "attempts": 0}, "attempts"),
    ({"prompt": "a", "job_id": "../x"}, "job_id"), ({"prompt": "a", "width": 100, "height": 64}, "width"),
    ({"prompt": "a", "priority": 10**30}, "priority"), ([1, 2], "job"), ("a cat", "job"), (None, "job"),
])
def test_bad_jobs_are_400_naming_the_field(api: ApiHarness, body: object, field: str) -> None:
    answer = api.post("/api/generate", data=json.dumps(body), headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert answer.json()["field"] == field
    assert answer.json()["error"].startswith(f"{field}: ")
    assert api.get("/api/jobs").json()["jobs"] == []


@pytest.mark.parametrize("raw", [b"{", b"NaN", b'{"prompt": "a", "cfg": Infinity}', b"[" * 100_000, b"\xff"])
def test_malformed_json_is_400(api: ApiHarness, raw: bytes) -> None:
    answer = api.post("/api/generate", data=raw, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400
    assert "error" in answer.json()


def test_path_and_query_fields_are_checked(api: ApiHarness) -> None:
    assert api.get("/api/status/no.such").status_code == 400
    assert api.get("/api/status/" + "a" * 65).status_code == 400
    assert api.get("/api/status/unknown-job").status_code == 404
    assert api.post("/api/cancel/unknown-job").status_code == 404
    assert api.post("/api/retry/unknown-job").status_code == 404
    assert api.get("/api/jobs?status=done").json()["field"] == "status"
    assert api.get("/api/jobs?limit=0").json()["field"] == "limit"
    assert api.get("/api/jobs?limit=1&limit=2").status_code == 400
    assert api.get("/api/jobs?colour=red").json()["field"] == "colour"
    assert api.get("/api/events?since=abc").json()["field"] == "since"
    assert api.post("/api/generate", data="prompt=a",
                    headers={"Content-Type": "application/x-www-form-urlencoded"}).status_code == 415


def test_upload_is_checked_like_any_image_and_stored_as_the_seed_named_it(api: ApiHarness, home: Home) -> None:
    answer = api.post("/api/generate", files=_multipart({"prompt": "a", "workflow": "image_to_image"},
                                                        input=png_bytes()))
    assert answer.status_code == 200, answer.text
    job_id = answer.json()["job_id"]
    assert files_in(home.inputs) == {f"upload_{job_id}_input.png"}
    record = api.get("/api/jobs").json()["jobs"][0]
    assert record["job"]["images"] == {"input": str((home.inputs / f"upload_{job_id}_input.png").resolve())}


@pytest.mark.parametrize(("workflow", "images", "field"), [
    ("image_to_image", {"input": b"not an image at all"}, "images"),
    ("image_to_image", {"input": png_bytes()[:40]}, "images"),
    ("image_to_image", {}, "images"),
    ("text_to_image", {"input": png_bytes()}, "images"),
    ("blend", {"source": png_bytes()}, "images"),
    ("no_such_workflow", {"input": png_bytes()}, "workflow"),
])
def test_bad_uploads_store_nothing(api: ApiHarness, home: Home, workflow: str, images: dict[str, bytes],
                                   field: str) -> None:
    answer = api.post("/api/generate", files=_multipart({"prompt": "a", "workflow": workflow}, **images))
    assert answer.status_code == 400
    assert answer.json()["field"] == field
    assert files_in(home.inputs) == set()
    assert api.get("/api/jobs").json()["jobs"] == []


def test_multipart_parts_are_checked(api: ApiHarness, home: Home) -> None:
    no_job = api.post("/api/generate", files={"input": ("a.png", png_bytes(), "image/png")})
    assert no_job.json()["field"] == "job"
    odd = api.post("/api/generate", files={**_multipart({"prompt": "a"}), "extra": ("x", b"x", "text/plain")})
    assert odd.status_code == 400
    assert files_in(home.inputs) == set()


def test_redis_down_keeps_the_job_in_the_outbox_and_says_so(home: Home, redis_server: EmbeddedRedis) -> None:
    queue = make_queue(redis_server, home, restart=False, delay_s=0.05)  # as the window: never starts a server
    with ApiHarness(home, Settings(comfy_url="http://127.0.0.1:9"), queue) as api:
        _outbox_checks(api, home, redis_server)
    queue.conn.close()


def _outbox_checks(api: ApiHarness, home: Home, redis_server: EmbeddedRedis) -> None:
    redis_server.stop()
    answer = api.post("/api/generate", json={"prompt": "kept"})
    assert answer.status_code == 202
    body = answer.json()
    assert (body["status"], body["outbox"]) == ("queued", True)
    assert "Redis is unreachable" in body["message"]
    assert (home.outbox / f"{body['job_id']}.json").is_file()
    status = api.get(f"/api/status/{body['job_id']}")
    assert status.status_code == 200
    assert status.json()["outbox"] is True
    assert api.get("/api/status/other").status_code == 503
    assert api.get("/api/jobs").status_code == 503


def test_openapi_lists_exactly_the_routes(api: ApiHarness, home: Home, queue: JobQueue) -> None:
    served = api.get("/api/openapi.json").json()
    assert served == json.loads(json.dumps(OPENAPI))
    app = build_app(api.server._context, "t" * 43)  # type: ignore[arg-type]
    routes = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        for route in resource:
            if route.method != "HEAD":
                routes.add((path, route.method.lower()))
    documented = {(path, method) for path, item in OPENAPI["paths"].items() for method in item}
    assert routes == documented
    assert isinstance(app, web.Application)


def test_push_carries_the_first_event_of_a_job_submitted_as_soon_as_the_api_answers(api: ApiHarness) -> None:
    # The harness has just started the server: the push channel must already follow the event stream, or the
    # job's "queued" entry (written before a late follower reads where the stream ends) never reaches the client.
    answer = api.session.get(f"{api.url}/api/events", params={"job_id": "pushed-first", "token": api.token},
                             stream=True, timeout=30)
    with answer:
        lines = answer.iter_lines(decode_unicode=True)
        assert next(lines) == ": connected"
        assert api.post("/api/generate", json={"job_id": "pushed-first", "prompt": "p"}).status_code == 200
        for line in lines:
            assert not line.startswith(": keep-alive"), "the job's first event never came"
            if line.startswith("data: "):
                assert json.loads(line[6:])["status"] == "queued"
                break


def test_the_event_follower_says_when_it_follows(endpoint: RedisEndpoint) -> None:
    from dataclasses import replace

    from comfystudio_desktop.api.event_hub import EventHub
    from tests.fake_comfyui.process import free_port

    async def connected(where: RedisEndpoint) -> bool:
        hub = EventHub(lambda: where)
        hub.start()
        try:
            return await hub.wait_connected(3.0)
        finally:
            await hub.stop()

    assert asyncio.run(connected(endpoint)) is True
    assert asyncio.run(connected(replace(endpoint, port=free_port()))) is False  # nothing listens there
