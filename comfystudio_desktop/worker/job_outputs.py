"""Copying a finished prompt's images from ComfyUI into storage as `{job_id}.png` (and `{job_id}_{n}.png`)."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence

from PIL import Image

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_events import OutputImage
from comfystudio_desktop.file_replace import replace_file
from comfystudio_desktop.home import Home
from comfystudio_desktop.outputs.host_identity import host_id, host_name
from comfystudio_desktop.outputs.location import OutputFile, OutputLocation
from comfystudio_desktop.queue.result_cache import file_digest

__all__ = ["output_location", "output_names", "store_outputs"]

log = logging.getLogger(__name__)
_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


def output_names(job_id: str, count: int) -> list[str]:
    """`{job_id}.png` for the first image, `{job_id}_{n}.png` (n from 2) for the rest of a batch."""
    return [f"{job_id}.png" if n == 1 else f"{job_id}_{n}.png" for n in range(1, count + 1)]


def store_outputs(job_id: str, images: Sequence[OutputImage], client: ComfyClient, home: Home) -> list[str]:
    """Download each image via `/view` and write it atomically into `storage/outputs`; return the file names."""
    names = output_names(job_id, len(images))
    for image, name in zip(images, names, strict=True):
        data = client.view(image.filename, image.subfolder, image.type)
        target = home.resolve_inside_storage(f"outputs/{name}")
        target.parent.mkdir(parents=True, exist_ok=True)
        if not data.startswith(_PNG_SIGNATURE):  # SaveImage writes PNG; other output nodes may not
            with Image.open(io.BytesIO(data)) as img:
                buffer = io.BytesIO()
                img.save(buffer, format="PNG")
                data = buffer.getvalue()
        tmp = target.with_name(f".{name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        replace_file(tmp, target)
    log.info("Job %r: %d output image(s) stored as %r", job_id, len(names), names)
    return names


def output_location(home: Home, backend: str, comfy_url: str, names: Sequence[str],
                    images: Sequence[OutputImage] = ()) -> OutputLocation:
    """Where the stored outputs `names` live: this machine, this backend, and each file's `/view` parameters
    (`images`, in the same order; none for a result reused from the cache), size and SHA-256."""
    files = []
    for n, name in enumerate(names):
        path = home.resolve_inside_storage(f"outputs/{name}")
        view = images[n] if n < len(images) else OutputImage(filename="")
        files.append(OutputFile(name=name, size=path.stat().st_size, sha256=file_digest(path),
                                filename=view.filename, subfolder=view.subfolder, type=view.type))
    return OutputLocation(backend=backend, host_id=host_id(home.root), host_name=host_name(), comfy_url=comfy_url,
                          files=tuple(files))
