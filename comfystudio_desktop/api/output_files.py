"""`GET /outputs/{job_id}.png`: results, served only from the outputs folder.

The name must be a job id (and batch index) with an image extension, whole-string; the file must be a regular
file directly in the outputs folder (not a symlink, its resolved path inside the folder) and is opened without
following links where the system allows it.
"""

from __future__ import annotations

import os
import re
import stat
from pathlib import Path

from aiohttp import web

from comfystudio_desktop.api.api_errors import ApiError
from comfystudio_desktop.api.context import CONTEXT

__all__ = ["read_output", "routes"]

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}(?:_[0-9]{1,3})?\.(png|jpg|jpeg|webp)")
_TYPES = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
MAX_OUTPUT_BYTES = 1024 * 1024 * 1024
routes = web.RouteTableDef()


def read_output(outputs: Path, name: str) -> bytes:
    """The bytes of output `name`; `ApiError` 404 for anything that is not a plain file in `outputs`."""
    if not _NAME_RE.fullmatch(name):
        raise ApiError(404, "no such output")
    base = outputs.resolve()
    path = base / name
    try:
        info = path.lstat()
    except OSError:
        raise ApiError(404, "no such output") from None
    if not stat.S_ISREG(info.st_mode) or not path.resolve().is_relative_to(base) or info.st_size > MAX_OUTPUT_BYTES:
        raise ApiError(404, "no such output")
    flags = os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_BINARY", 0) | getattr(os, "O_NONBLOCK", 0)
    try:
        fd = os.open(path, flags)
    except OSError:
        raise ApiError(404, "no such output") from None
    with os.fdopen(fd, "rb") as fh:
        if not stat.S_ISREG(os.fstat(fh.fileno()).st_mode):
            raise ApiError(404, "no such output")
        return fh.read(MAX_OUTPUT_BYTES)


@routes.get("/outputs/{name}")
async def output(request: web.Request) -> web.Response:
    """An output image."""
    ctx = request.app[CONTEXT]
    name = request.match_info["name"]
    body = await ctx.run(read_output, ctx.home.outputs, name)
    extension = name.rsplit(".", 1)[-1]
    return web.Response(body=body, content_type=_TYPES[extension],
                        headers={"Cache-Control": "private, max-age=3600", "X-Content-Type-Options": "nosniff"})
