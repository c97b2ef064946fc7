"""The API described as OpenAPI 3.1 data, served at `/api/openapi.json` (a test keeps it and the routes equal)."""

from __future__ import annotations

from typing import Any

__all__ = ["OPENAPI"]

_ERROR = {"$ref": "#/components/schemas/Error"}
_JOB_ID = {"name": "job_id", "in": "path", "required": True,
           "schema": {"type": "string", "pattern": "^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$"}}


def _json(schema: dict[str, Any], description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _errors(*codes: int) -> dict[str, Any]:
    texts = {400: "a field is invalid (`field` names it)", 401: "missing or wrong bearer token",
             403: "the browser origin is not in api_allowed_origins", 404: "unknown job or output",
             409: "the job is not in a state that allows this", 413: "the body or an image is too large",
             415: "unsupported content type", 503: "Redis is unreachable"}
    return {str(code): _json(_ERROR, texts[code]) for code in (401, 403, *codes)}


_STATUS_FIELDS: dict[str, Any] = {
    "job_id": {"type": "string"}, "status": {"enum": ["queued", "processing", "finished", "failed", "cancelled"]},
    "progress": {"type": "integer", "minimum": 0, "maximum": 100},
    "image_url": {"type": "string", "description": "/outputs/{job_id}.png once finished"},
    "error": {"type": "string"}, "updated_at": {"type": "string", "format": "date-time"}}
_STATUS: dict[str, Any] = {"type": "object", "required": list(_STATUS_FIELDS), "properties": _STATUS_FIELDS}

_JOB = {
    "type": "object", "required": ["prompt"], "additionalProperties": False,
    "description": "The seed's job fields plus the desktop's; exact JSON types (no strings for numbers).",
    "properties": {
        "prompt": {"type": "string", "minLength": 1, "maxLength": 20000},
        "job_id": {"type": "string", "description": "optional; a UUID is made when absent. Resubmitting an id "
                                                    "changes nothing (duplicate: true)"},
        "seed": {"type": "integer", "minimum": -1, "description": "-1: random"},
        "workflow": {"type": "string", "default": "text_to_image"},
        "model": {"type": "string"}, "aspect_ratio": {"type": "string", "default": "1:1"},
        "batch_size": {"type": "integer", "minimum": 1, "maximum": 16},
        "created_at": {"type": "string"}, "negative_prompt": {"type": "string"},
        "width": {"type": ["integer", "null"]}, "height": {"type": ["integer", "null"]},
        "steps": {"type": ["integer", "null"]}, "cfg": {"type": ["number", "null"]},
        "denoise": {"type": ["number", "null"]},
        "priority": {"type": "integer", "minimum": -100, "maximum": 100},
        "text_encoder": {"type": "string"}, "vae": {"type": "string"},
    },
}

_EVENT = {"type": "object", "properties": {
    "id": {"type": "string", "description": "the event's stream id (SSE `id:`; resume with Last-Event-ID)"},
    **_STATUS_FIELDS, "message": {"type": "string"}, "seed_used": {"type": ["integer", "null"]}}}

_PUSH_PARAMS = [
    {"name": "job_id", "in": "query", "required": False, "schema": {"type": "string"}},
    {"name": "since", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "send the kept events after this id first (SSE: or the Last-Event-ID header)"},
    {"name": "token", "in": "query", "required": False, "schema": {"type": "string"},
     "description": "the bearer token, for clients that cannot set headers (EventSource)"},
]

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {"title": "ComfyStudio Desktop API", "version": "1",
             "description": "The seed system's REST API, served by the desktop app. Every request needs "
                            "`Authorization: Bearer <token>` (the home's `api_token` file)."},
    "security": [{"bearer": []}],
    "paths": {
        "/api/generate": {"post": {
            "summary": "Queue a job",
            "requestBody": {"required": True, "content": {
                "application/json": {"schema": _JOB},
                "multipart/form-data": {"schema": {"type": "object", "required": ["job"], "properties": {
                    "job": _JOB, "input": {"type": "string", "format": "binary"},
                    "source": {"type": "string", "format": "binary"},
                    "target": {"type": "string", "format": "binary"}}}}}},
            "responses": {
                "200": _json({"type": "object", "properties": {"job_id": {"type": "string"},
                                                               "status": {"type": "string"},
                                                               "duplicate": {"type": "boolean"}}}, "queued"),
                "202": _json({"type": "object", "properties": {"job_id": {"type": "string"},
                                                               "status": {"const": "queued"},
                                                               "outbox": {"const": True},
                                                               "message": {"type": "string"}}},
                             "Redis is unreachable: the job is kept on disk and queued when it is back "
                             "(the seed answered 503 and lost the job)"),
                **_errors(400, 413, 415)}}},
        "/api/status/{job_id}": {"get": {
            "summary": "A job's status (the seed's fields)", "parameters": [_JOB_ID],
            "responses": {"200": _json(_STATUS, "the job's status"), **_errors(400, 404, 503)}}},
        "/api/cancel/{job_id}": {"post": {
            "summary": "Cancel a job", "parameters": [_JOB_ID],
            "responses": {"200": _json({"type": "object", "properties": {
                "job_id": {"type": "string"}, "status": {"const": "cancelled"},
                "outcome": {"enum": ["cancelled", "cancelling"]}}}, "cancelled (or being stopped)"),
                **_errors(400, 404, 409, 503)}}},
        "/api/retry/{job_id}": {"post": {
            "summary": "Queue a failed or cancelled job again", "parameters": [_JOB_ID],
            "responses": {"200": _json({"type": "object", "properties": {"job_id": {"type": "string"},
                                                                         "status": {"const": "queued"}}},
                                       "queued again"), **_errors(400, 404, 409, 503)}}},
        "/api/jobs": {"get": {
            "summary": "Known jobs, oldest first",
            "parameters": [{"name": "status", "in": "query", "required": False,
                            "schema": {"enum": ["queued", "processing", "finished", "failed", "cancelled"]}},
                           {"name": "limit", "in": "query", "required": False,
                            "schema": {"type": "integer", "minimum": 1, "maximum": 99999, "default": 500}}],
            "responses": {"200": _json({"type": "object", "properties": {"jobs": {"type": "array"}}}, "the jobs"),
                          **_errors(400, 503)}}},
        "/api/models": {"get": {
            "summary": "Models grouped as the seed's drop-down",
            "responses": {"200": _json({"type": "object", "properties": {
                "UNET": {"type": "array", "items": {"type": "string"}},
                "Checkpoints": {"type": "array", "items": {"type": "string"}}}}, "the models")}}},
        "/api/events": {"get": {
            "summary": "Job events as Server-Sent Events (`event: job`, `data:` one event)",
            "parameters": _PUSH_PARAMS,
            "responses": {"200": {"description": "text/event-stream of events",
                                  "content": {"text/event-stream": {"schema": _EVENT}}}, **_errors(400)}}},
        "/api/ws": {"get": {
            "summary": "Job events over a WebSocket (one JSON text message per event)",
            "parameters": _PUSH_PARAMS,
            "responses": {"101": {"description": "switching to WebSocket; messages are events",
                                  "content": {"application/json": {"schema": _EVENT}}}, **_errors(400)}}},
        "/api/openapi.json": {"get": {"summary": "This document",
                                      "responses": {"200": {"description": "OpenAPI 3.1"}}}},
        "/outputs/{name}": {"get": {
            "summary": "A result image: {job_id}.png (batches: {job_id}_{n}.png)",
            "parameters": [{"name": "name", "in": "path", "required": True, "schema": {"type": "string"}},
                           _PUSH_PARAMS[2]],
            "responses": {"200": {"description": "the image", "content": {"image/png": {}, "image/jpeg": {}}},
                          **_errors(404)}}},
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {"Error": {"type": "object", "required": ["error"], "properties": {
            "error": {"type": "string"}, "field": {"type": "string", "description": "the field at fault"}}}},
    },
}
