"""What every request passes through: JSON errors, CORS (closed unless an origin is listed), the bearer token.

Order, outermost first: `errors` (any refusal becomes the seed's JSON error body), `cors` (a browser origin not
in `api_allowed_origins` is refused, preflights answered for listed ones), `auth` (the token, compared in
constant time). A `?token=` query is accepted only where a browser cannot send a header: `EventSource`
(`/api/events`) and images (`/outputs/...`), and only for GET.
"""

from __future__ import annotations

import logging
import re

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger
from aiohttp.typedefs import Handler, Middleware

from comfystudio_desktop.api.api_errors import ApiError, error_response
from comfystudio_desktop.api.api_token import token_matches

__all__ = ["QUERY_TOKEN_PATHS", "PathOnlyAccessLogger", "auth_middleware", "cors_middleware", "errors_middleware"]

log = logging.getLogger(__name__)
#: Paths where `?token=` may stand in for the Authorization header (browsers cannot set it there).
QUERY_TOKEN_PATHS = re.compile(r"/api/events|/api/ws|/outputs/[^/]*")
_BEARER_RE = re.compile(r"Bearer ([!-~]{1,256})")
_ALLOWED_METHODS = "GET, POST, OPTIONS"
_ALLOWED_HEADERS = "Authorization, Content-Type, Last-Event-ID"


@web.middleware
async def errors_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every refusal as `{"error": ...}` JSON with its status; an unexpected failure is logged, answered 500."""
    try:
        return await handler(request)
    except ApiError as exc:
        response = error_response(exc.status, exc.message, exc.field, **exc.extra)
        if exc.status == 401:
            response.headers["WWW-Authenticate"] = "Bearer"
        return response
    except web.HTTPException as exc:  # the router's 404/405, the 413 of client_max_size
        if exc.status < 400:
            raise
        return error_response(exc.status, exc.reason)
    except Exception:
        log.exception("API request %s %r failed", request.method, request.path)
        return error_response(500, "internal error; details are in the app's log")


def cors_middleware(allowed_origins: frozenset[str]) -> Middleware:
    """Refuse requests from browser origins not listed; answer preflights and label answers for listed ones."""

    @web.middleware
    async def cors(request: web.Request, handler: Handler) -> web.StreamResponse:
        origin = request.headers.get("Origin")
        if origin is None:  # not a cross-origin browser request (curl, scripts, the Python client)
            return await handler(request)
        if origin not in allowed_origins:
            raise ApiError(403, "this origin is not allowed (setting api_allowed_origins)")
        if request.method == "OPTIONS":
            response: web.StreamResponse = web.Response(status=204)
            response.headers["Access-Control-Allow-Methods"] = _ALLOWED_METHODS
            response.headers["Access-Control-Allow-Headers"] = _ALLOWED_HEADERS
            response.headers["Access-Control-Max-Age"] = "600"
        else:
            response = await handler(request)
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Vary"] = "Origin"
        return response

    return cors


def auth_middleware(token: str) -> Middleware:
    """Require the bearer token on every request."""

    @web.middleware
    async def auth(request: web.Request, handler: Handler) -> web.StreamResponse:
        header = request.headers.get("Authorization")
        if header is not None:
            match = _BEARER_RE.fullmatch(header)
            given = match.group(1) if match else ""
        elif request.method == "GET" and QUERY_TOKEN_PATHS.fullmatch(request.path):
            values = request.query.getall("token", [])
            given = values[0] if len(values) == 1 else ""
        else:
            raise ApiError(401, "missing bearer token (Authorization: Bearer <token from the home's api_token>)")
        if not given or not token_matches(token, given):
            raise ApiError(401, "wrong bearer token")
        return await handler(request)

    return auth


class PathOnlyAccessLogger(AbstractAccessLogger):
    """One line per request without the query string, where a `?token=` would otherwise be written down."""

    def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
        """Method, path (as %r: it is user text), status and time."""
        self.logger.debug("API %s %r %d %.1f ms", request.method, request.path, response.status, time * 1000)
