"""The API's error answers: the seed's JSON body `{"error": message}`, plus `field` when one field is at fault."""

from __future__ import annotations

from typing import Any

from aiohttp import web

__all__ = ["ApiError", "error_body", "error_response"]


class ApiError(Exception):
    """A refusal with an HTTP status; raised by handlers, turned into JSON by the error middleware."""

    def __init__(self, status: int, message: str, field: str | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.field = field
        self.extra = extra


def error_body(message: str, field: str | None = None, **extra: Any) -> dict[str, Any]:
    """`{"error": "...", "field": "..."}`; the message already names the field."""
    body: dict[str, Any] = {"error": f"{field}: {message}" if field else message}
    if field:
        body["field"] = field
    body.update(extra)
    return body


def error_response(status: int, message: str, field: str | None = None, **extra: Any) -> web.Response:
    """A JSON error answer."""
    return web.json_response(error_body(message, field, **extra), status=status)
