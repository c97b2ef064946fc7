"""Copying a finished prompt's images from ComfyUI into storage as `{job_id}.png` (and `{job_id}_{n}.png`)."""

from __future__ import annotations

import io
import logging
import os
from collections.abc import Sequence

from PIL import Image

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_events import OutputImage
from comfystudio_desktop.home import Home

__all__ = ["output_names", "store_outputs"]

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
        os.replace(tmp, target)
    log.info("Job %s: %d output image(s) stored as %s", job_id, len(names), ", ".join(names))
    return names
