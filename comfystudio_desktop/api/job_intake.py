"""A job from an HTTP request: the one job parser, the workflow's image slots and the one image check.

Images come only as uploaded parts; a JSON `images` field (paths on this machine) is refused, so a client can
never make the worker read a file of its choosing. Accepted uploads are kept as the seed named them:
`storage/inputs/upload_{job_id}_{slot}{.png|.jpg|...}`.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path

from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary
from comfystudio_desktop.images import ImageValidationError, validate_image_file
from comfystudio_desktop.job_batch import check_images
from comfystudio_desktop.jobs import IMAGE_SLOTS, Job, JobValidationError
from comfystudio_desktop.settings import Settings

__all__ = ["job_from_request"]

#: Fields the queue owns: a client may not set them.
_QUEUE_FIELDS = ("attempts",)


def job_from_request(data: object, uploads: Mapping[str, Path], library: TemplateLibrary, settings: Settings,
                     inputs_dir: Path) -> Job:
    """The checked job, its uploads moved to their final names; `JobValidationError` naming the field otherwise.

    On failure nothing is kept: the caller deletes the temporary uploads, and images already moved are removed.
    """
    if not isinstance(data, dict):
        raise JobValidationError("job", "must be a JSON object")
    if "images" in data:
        raise JobValidationError("images", f"upload images as multipart parts named {', '.join(IMAGE_SLOTS)}; "
                                           "paths are not accepted over HTTP")
    for name in _QUEUE_FIELDS:
        if name in data:
            raise JobValidationError(name, "is set by the queue, not by a client")
    try:
        job = Job.from_dict(data).validate()
    except (TypeError, AttributeError, OverflowError) as exc:  # a value of a type the parser did not expect
        raise JobValidationError("job", f"a field has the wrong type ({exc})") from None
    job = replace(job, images={slot: str(path) for slot, path in uploads.items()})
    wanted = library.image_slots(job.workflow) if job.workflow in library else None
    moved: list[Path] = []

    def check_file(slot: str, path: str) -> str:
        try:
            info = validate_image_file(path, settings.max_upload_mb * 1024 * 1024, settings.max_image_pixels)
        except ImageValidationError as exc:  # the temporary file's name means nothing to the client
            message = exc.message.replace(Path(path).name, f"the uploaded {slot} image")
            raise JobValidationError("images", f"{slot}: {message}") from None
        final = inputs_dir / f"upload_{job.job_id}_{slot}{info.extension}"
        if final.exists():
            raise JobValidationError("job_id", f"job {job.job_id} already has a {slot} image")
        os.replace(path, final)
        moved.append(final)
        return str(final.resolve())

    try:
        return check_images(job, wanted, check_file)
    except BaseException:
        for path in moved:
            with contextlib.suppress(OSError):
                path.unlink()
        raise
