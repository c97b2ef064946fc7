"""File-facing routes: model listings, `/view` (with ComfyUI's 400/403/404 rules) and `/upload/image`."""

from __future__ import annotations

import hashlib
import io
import mimetypes
import os
from collections.abc import Awaitable, Callable
from pathlib import Path

from aiohttp import web
from aiohttp.web_request import FileField
from PIL import Image

from tests.fake_comfyui.control import Stats
from tests.fake_comfyui.folders import FOLDER_NAMES, Folders

Route = tuple[str, str, Callable[[web.Request], Awaitable[web.StreamResponse]]]
_FORCE_DOWNLOAD = {"text/html", "text/html-sandboxed", "application/xhtml+xml", "text/javascript", "text/css"}


def _disposition(filename: str) -> dict[str, str]:
    return {"Content-Disposition": f'filename="{filename}"'}


class FilesApi:
    """Routes that read or write the model, input, output and temp folders."""

    def __init__(self, folders: Folders, stats: Stats) -> None:
        self.folders, self.stats = folders, stats

    def routes(self) -> list[Route]:
        """(method, path, handler) for the server to mount under `/` and `/api`."""
        return [("GET", "/models", self.models), ("GET", "/models/{folder}", self.models_in_folder),
                ("GET", "/embeddings", self.embeddings), ("GET", "/view", self.view),
                ("POST", "/upload/image", self.upload_image)]

    async def models(self, request: web.Request) -> web.Response:
        """`GET /models`: folder names (legacy `unet`/`clip` are not among them)."""
        return web.json_response(list(FOLDER_NAMES))

    async def models_in_folder(self, request: web.Request) -> web.Response:
        """`GET /models/{folder}`: names with `/`; 404 with an empty body for unknown or legacy folders."""
        folder = request.match_info["folder"]
        if not self.folders.model_folder_exists(folder):
            return web.Response(status=404)
        return web.json_response(self.folders.list_models(folder))

    async def embeddings(self, request: web.Request) -> web.Response:
        """`GET /embeddings`."""
        return web.json_response(self.folders.embeddings())

    async def view(self, request: web.Request) -> web.StreamResponse:
        """`GET /view?filename=&subfolder=&type=[&preview=fmt;q][&channel=rgb|a]`."""
        query = request.query
        if "filename" not in query:
            return web.Response(status=404)
        name, kind = query["filename"], None
        for annotation in ("output", "input", "temp"):
            if name.endswith(f" [{annotation}]"):
                name, kind = name[: -len(annotation) - 3], annotation
        if not name:
            return web.Response(status=400)
        if name[0] == "/" or ".." in name:
            return web.Response(status=400)
        base = self.folders.dir_by_type(kind or query.get("type", "output"))
        if base is None:
            return web.Response(status=400)
        folder = str(base)
        if "subfolder" in query:
            full = os.path.join(folder, query["subfolder"])
            if os.path.commonpath((os.path.abspath(full), folder)) != folder:
                return web.Response(status=403)
            folder = full
        filename = os.path.basename(name)
        path = Path(folder, filename)
        if not path.is_file():
            return web.Response(status=404)
        if "preview" in query:
            return _preview(path, filename, query.get("preview", ""), query.get("channel", ""))
        channel = query.get("channel", "rgba")
        if channel in ("rgb", "a"):
            return _channel(path, filename, channel)
        content_type = mimetypes.guess_type(filename)[0] or "application/octet-stream"
        if content_type in _FORCE_DOWNLOAD:
            content_type = "application/octet-stream"
        return web.FileResponse(path, headers={**_disposition(filename), "Content-Type": content_type})

    async def upload_image(self, request: web.Request) -> web.Response:
        """`POST /upload/image` (multipart `image`, `overwrite`, `subfolder`, `type`)."""
        post = await request.post()
        image = post.get("image")
        if not isinstance(image, FileField) or not image.filename:
            return web.Response(status=400)
        kind = str(post.get("type") or "input")
        base = self.folders.dir_by_type(kind)
        if base is None:  # ComfyUI fails with an UnboundLocalError here
            return web.Response(status=500, text="500 Internal Server Error\n\nServer got itself in trouble")
        upload_dir = str(base)
        subfolder = str(post.get("subfolder", ""))
        folder = os.path.join(upload_dir, os.path.normpath(subfolder))
        filename = image.filename
        path = os.path.abspath(os.path.join(folder, filename))
        if os.path.commonpath((upload_dir, path)) != upload_dir:
            return web.Response(status=400)
        os.makedirs(folder, exist_ok=True)
        data = image.file.read()
        duplicate = False
        if str(post.get("overwrite")) not in ("true", "1"):
            stem, ext = os.path.splitext(filename)
            counter = 1
            while os.path.exists(path):
                if hashlib.sha256(Path(path).read_bytes()).digest() == hashlib.sha256(data).digest():
                    duplicate = True
                    break
                filename = f"{stem} ({counter}){ext}"
                path = os.path.join(folder, filename)
                counter += 1
        if not duplicate:
            Path(path).write_bytes(data)
        self.stats.uploads.append(f"{subfolder}/{filename}" if subfolder else filename)
        return web.json_response({"name": filename, "subfolder": subfolder, "type": kind})


def _preview(path: Path, filename: str, preview: str, channel: str) -> web.Response:
    parts = preview.split(";")
    image_format = parts[0] if parts[0] in ("webp", "jpeg") and "a" not in channel else "webp"
    quality = int(parts[-1]) if parts[-1].isdigit() else 90
    buffer = io.BytesIO()
    with Image.open(path) as img:
        out = img.convert("RGB") if image_format == "jpeg" or channel == "rgb" else img
        out.save(buffer, format=image_format, quality=quality)
    return web.Response(body=buffer.getvalue(), content_type=f"image/{image_format}", headers=_disposition(filename))


def _channel(path: Path, filename: str, channel: str) -> web.Response:
    buffer = io.BytesIO()
    with Image.open(path) as img:
        if channel == "rgb":
            img.convert("RGB").save(buffer, format="PNG")
        else:
            alpha = img.getchannel("A") if img.mode == "RGBA" else Image.new("L", img.size, 255)
            out = Image.new("RGBA", alpha.size)
            out.putalpha(alpha)
            out.save(buffer, format="PNG")
    return web.Response(body=buffer.getvalue(), content_type="image/png", headers=_disposition(filename))
