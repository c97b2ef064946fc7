"""Turning a job into a ComfyUI graph: check inputs, keep copies in storage, upload, pick and fill the template."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.model_catalogue import Catalogue
from comfystudio_desktop.comfy.sizes import image_size
from comfystudio_desktop.comfy.workflow_fill import fill
from comfystudio_desktop.comfy.workflow_templates import TemplateError, TemplateLibrary, WorkflowTemplate
from comfystudio_desktop.home import Home
from comfystudio_desktop.images import ImageValidationError, validate_image_file
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.settings import Settings

__all__ = [
    "JobInputError",
    "PreparedGraph",
    "build_graph",
    "choose_template",
    "input_copy_name",
    "store_and_upload_inputs",
]

log = logging.getLogger(__name__)


class JobInputError(ValueError):
    """The job cannot run as given (unknown model, bad image, no template); not worth a retry."""


@dataclass(frozen=True, slots=True)
class PreparedGraph:
    """A filled graph ready for `POST /prompt`."""

    graph: dict[str, Any]
    template: WorkflowTemplate
    width: int
    height: int


def input_copy_name(job_id: str, slot: str) -> str:
    """The seed's name for a job's input image: `upload_{job_id}_{slot}.png`."""
    return f"upload_{job_id}_{slot}.png"


def choose_template(job: Job, library: TemplateLibrary, catalogue: Catalogue) -> WorkflowTemplate:
    """The template for the job's workflow and its model's group; JobInputError with a clear message if none."""
    if not job.model:
        raise JobInputError("No model chosen for this job.")
    group = catalogue.group_of(job.model)
    if group is None:
        raise JobInputError(f"Unknown model {job.model!r}: ComfyUI does not list it under UNET or Checkpoints.")
    try:
        template = library.choose(job.workflow, job.model, group)
    except TemplateError as exc:
        raise JobInputError(str(exc)) from exc
    missing = [slot for slot in template.image_slots if slot not in job.images]
    if missing:
        raise JobInputError(f"Workflow {job.workflow!r} needs an image for: {', '.join(missing)}.")
    extra = sorted(set(job.images) - set(template.image_slots))
    if extra:
        raise JobInputError(f"Workflow {job.workflow!r} takes no image for: {', '.join(extra)}.")
    return template


def store_and_upload_inputs(job: Job, home: Home, settings: Settings, client: ComfyClient) -> dict[str, str]:
    """Validate each input image, keep a PNG copy in `storage/inputs`, upload it; return slot -> ComfyUI name."""
    uploaded: dict[str, str] = {}
    for slot, source in sorted(job.images.items()):
        path = Path(source)
        try:
            validate_image_file(path, max_bytes=settings.max_upload_mb * 1024 * 1024,
                                max_pixels=settings.max_image_pixels)
        except ImageValidationError as exc:
            raise JobInputError(f"The {slot} image: {exc}") from exc
        name = input_copy_name(job.job_id, slot)
        copy = home.resolve_inside_storage(f"inputs/{name}")
        copy.parent.mkdir(parents=True, exist_ok=True)
        _write_png(path, copy)
        uploaded[slot] = client.upload_image(copy, name, overwrite=True)
    return uploaded


def template_overrides(template: WorkflowTemplate, settings: Settings, catalogue: Catalogue,
                       model: str) -> dict[str, Any]:
    """Values that replace template defaults: ComfyUI's spelling of the model, and the user's encoder/VAE files."""
    chosen = {"model": catalogue.comfy_name(model), "text_encoder": settings.unet_text_encoder,
              "vae": settings.unet_vae, "clip_l": settings.flux_clip_l}
    return {slot: value for slot, value in chosen.items() if value and slot in template.slots}


def build_graph(job: Job, template: WorkflowTemplate, uploaded: Mapping[str, str], *, seed_used: int,
                catalogue: Catalogue, settings: Settings) -> PreparedGraph:
    """Fill the template; sizes from the job or from its aspect ratio and the model family."""
    if job.width is not None and job.height is not None:
        width, height = job.width, job.height
    else:
        width, height = image_size(job.aspect_ratio, template.family)
    try:
        graph = fill(template, job, uploaded, seed_used=seed_used, width=width, height=height,
                     overrides=template_overrides(template, settings, catalogue, job.model))
    except TemplateError as exc:
        raise JobInputError(str(exc)) from exc
    return PreparedGraph(graph=graph, template=template, width=width, height=height)


def _write_png(source: Path, target: Path) -> None:
    """Store `source` as PNG at `target` atomically (temp + rename)."""
    tmp = target.with_name(f".{target.name}.tmp")
    with Image.open(source) as opened:
        opened.load()
        img: Image.Image = opened
        if img.mode not in ("RGB", "RGBA", "L", "LA"):
            img = img.convert("RGBA" if "A" in img.getbands() else "RGB")
        buffer = io.BytesIO()
        img.save(buffer, format="PNG")
    tmp.write_bytes(buffer.getvalue())
    tmp.replace(target)
