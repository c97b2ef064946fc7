"""The seed's endpoints (`/api/generate`, `/api/status/{id}`, `/api/cancel/{id}`, `/api/models`) and ours
(`/api/jobs`, `/api/retry/{id}`), with the seed's request and response shapes."""

from __future__ import annotations

import re
from typing import Any

from aiohttp import web

from comfystudio_desktop.api.api_errors import ApiError
from comfystudio_desktop.api.context import CONTEXT, ApiContext
from comfystudio_desktop.api.job_intake import job_from_request
from comfystudio_desktop.api.request_body import Upload, read_json_body, read_multipart
from comfystudio_desktop.jobs import JobStatus, JobValidationError, valid_job_id
from comfystudio_desktop.queue.connection import RedisUnavailable
from comfystudio_desktop.queue.job_queue import CancelOutcome, SubmitOutcome

__all__ = ["OUTBOX_MESSAGE", "routes", "seed_image_url", "seed_record"]

OUTBOX_MESSAGE = "Redis is unreachable; the job is kept on disk and queued when it is back"
_UNREACHABLE = "Redis is unreachable; try again shortly"
_LIMIT_RE = re.compile(r"[1-9][0-9]{0,4}")
_JOBS_QUERY = frozenset({"status", "limit"})
routes = web.RouteTableDef()


def _job_id(request: web.Request) -> str:
    job_id = request.match_info["job_id"]
    if not valid_job_id(job_id):
        raise ApiError(400, "must be 1-64 letters, digits, '-' or '_'", "job_id")
    return job_id


@routes.post("/api/generate")
async def generate(request: web.Request) -> web.Response:
    """Queue a job: JSON job fields, or multipart with a `job` JSON part and `input`/`source`/`target` images."""
    ctx = request.app[CONTEXT]
    if request.content_type == "multipart/form-data":
        upload = await read_multipart(request, ctx.home.inputs, ctx.settings.max_upload_mb * 1024 * 1024)
    elif request.content_type in ("application/json", "application/octet-stream"):  # the latter: no type given
        upload = Upload(job=await read_json_body(request))
    else:
        raise ApiError(415, "send application/json, or multipart/form-data with a job part and images")
    try:
        job = await ctx.run(job_from_request, upload.job, upload.images, ctx.library, ctx.settings,
                            ctx.home.inputs)
    except JobValidationError as exc:
        raise ApiError(400, exc.message, exc.field) from None
    finally:
        upload.discard()
    outcome = await ctx.run(ctx.queue.submit, job, wait_for_redis=False)
    if outcome is SubmitOutcome.OUTBOX:
        return web.json_response({"job_id": job.job_id, "status": "queued", "outbox": True,
                                  "message": OUTBOX_MESSAGE}, status=202)
    body: dict[str, Any] = {"job_id": job.job_id, "status": "queued"}
    if outcome is SubmitOutcome.DUPLICATE:
        record = await ctx.run(ctx.queue.status, job.job_id)
        body.update(status=str(record.status) if record else "queued", duplicate=True)
    return web.json_response(body)


@routes.get("/api/status/{job_id}")
async def status(request: web.Request) -> web.Response:
    """The seed's status fields: job_id, status, progress, image_url, error, updated_at."""
    ctx, job_id = request.app[CONTEXT], _job_id(request)
    try:
        record = await ctx.run(ctx.queue.status, job_id)
    except RedisUnavailable:
        if _in_outbox(ctx, job_id):
            return _outbox_status(job_id)
        raise ApiError(503, _UNREACHABLE) from None
    if record is None:
        if _in_outbox(ctx, job_id):  # Redis is back, the outbox not delivered yet
            return _outbox_status(job_id)
        raise ApiError(404, "job not found")
    return web.json_response(seed_record(record.seed_fields()))


def seed_image_url(image_url: str) -> str:
    """The seed's `image_url` (`/outputs/{job_id}.png`, a URL on this server) for the queue's storage path."""
    return "/" + image_url if image_url.startswith("outputs/") else image_url


def seed_record(fields: dict[str, Any]) -> dict[str, Any]:
    """A record's fields with the seed's `image_url`."""
    return {**fields, "image_url": seed_image_url(str(fields.get("image_url", "")))}


def _outbox_status(job_id: str) -> web.Response:
    return web.json_response({"job_id": job_id, "status": "queued", "progress": 0, "image_url": "", "error": "",
                              "updated_at": "", "outbox": True, "message": OUTBOX_MESSAGE})


@routes.post("/api/cancel/{job_id}")
async def cancel(request: web.Request) -> web.Response:
    """Cancel: a queued job never starts; a running one is stopped by its worker."""
    ctx, job_id = request.app[CONTEXT], _job_id(request)
    outcome = await _queue_call(ctx, ctx.queue.cancel, job_id)
    if outcome is CancelOutcome.NOT_FOUND:
        raise ApiError(404, "job not found")
    if outcome in (CancelOutcome.CANCELLED, CancelOutcome.CANCELLING):
        return web.json_response({"job_id": job_id, "status": "cancelled", "outcome": outcome.value})
    raise ApiError(409, f"the job has already ended ({outcome.value.removeprefix('already_')})",
                   outcome=outcome.value)


@routes.post("/api/retry/{job_id}")
async def retry(request: web.Request) -> web.Response:
    """Queue a failed or cancelled job again under the same id."""
    ctx, job_id = request.app[CONTEXT], _job_id(request)
    if await _queue_call(ctx, ctx.queue.status, job_id) is None:
        raise ApiError(404, "job not found")
    if not await _queue_call(ctx, ctx.queue.retry, job_id):
        raise ApiError(409, "only failed or cancelled jobs can be retried")
    return web.json_response({"job_id": job_id, "status": "queued"})


@routes.get("/api/jobs")
async def jobs(request: web.Request) -> web.Response:
    """Known jobs, oldest first: `?status=` one of the seed's states, `?limit=` the newest N (default 500)."""
    ctx = request.app[CONTEXT]
    unknown = sorted(set(request.query) - _JOBS_QUERY)
    if unknown:
        raise ApiError(400, "unknown query parameter", unknown[0][:40])
    if any(len(request.query.getall(name)) > 1 for name in request.query):
        raise ApiError(400, "each query parameter may be given once")
    wanted = request.query.get("status")
    if wanted is not None and wanted not in {s.value for s in JobStatus}:
        raise ApiError(400, f"must be one of {', '.join(s.value for s in JobStatus)}", "status")
    limit_text = request.query.get("limit", "500")
    if not _LIMIT_RE.fullmatch(limit_text):
        raise ApiError(400, "must be a whole number 1..99999", "limit")
    records = await _queue_call(ctx, ctx.queue.jobs, JobStatus(wanted) if wanted else None)
    return web.json_response({"jobs": [seed_record(r.to_dict()) for r in records[-int(limit_text):]]})


@routes.get("/api/models")
async def models(request: web.Request) -> web.Response:
    """`{"UNET": [...], "Checkpoints": [...]}`, from ComfyUI (or the models folder while it is down)."""
    catalogue = await request.app[CONTEXT].catalogue()
    return web.json_response(catalogue.to_dict())


async def _queue_call(ctx: ApiContext, function: Any, *args: Any) -> Any:
    try:
        return await ctx.run(function, *args)
    except RedisUnavailable:
        raise ApiError(503, _UNREACHABLE) from None


def _in_outbox(ctx: ApiContext, job_id: str) -> bool:
    return ctx.queue.outbox is not None and (ctx.queue.outbox.folder / f"{job_id}.json").is_file()
