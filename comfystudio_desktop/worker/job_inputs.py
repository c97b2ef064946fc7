"""Turning a job into a ComfyUI graph: check inputs, keep copies in storage, upload, pick and fill the template."""

from __future__ import annotations

import io
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from PIL import Image

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.model_catalogue import GROUP_UNET, Catalogue
from comfystudio_desktop.comfy.sizes import image_size
from comfystudio_desktop.comfy.unet_parts import PartLists, PartsError, Pick, UnetParts, resolve_unet_parts
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
    "resolve_parts",
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


def choose_template(job: Job, library: TemplateLibrary, catalogue: Catalogue,
                    parts: UnetParts | None = None) -> WorkflowTemplate:
    """The template for the job's workflow and its model's family; JobInputError with a clear message if none.

    A UNET model's family comes from `parts` (see `resolve_parts`); without them only a name that says the
    family is accepted.
    """
    if not job.model:
        raise JobInputError("No model chosen for this job.")
    group = catalogue.group_of(job.model)
    if group is None:
        raise JobInputError(f"Unknown model {job.model!r}: ComfyUI does not list it under UNET or Checkpoints.")
    try:
        if group == GROUP_UNET and parts is not None:
            if job.workflow not in library:
                raise TemplateError(job.workflow, f"unknown workflow (available: {', '.join(library.names())})")
            template = library.get(job.workflow, parts.family)
        else:
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


def resolve_parts(job: Job, settings: Settings, lists: PartLists, families: Sequence[str]) -> UnetParts:
    """A UNET job's family, text encoder and VAE: the job's pick, else the one remembered for its model, else the
    `unet_text_encoder` / `unet_vae` settings where they fit, else what ComfyUI has installed."""
    remembered = settings.unet_choice(job.model)

    def pick(value: str, part: str) -> Pick:
        if value:
            return Pick(value, "chosen for this job")
        return Pick(remembered.get(part, ""), "remembered for this model")

    try:
        return resolve_unet_parts(
            job.model, lists, text_encoder=pick(job.text_encoder, "text_encoder"), vae=pick(job.vae, "vae"),
            clip_l=Pick(settings.flux_clip_l, "setting `flux_clip_l` in Settings"),
            default_text_encoder=Pick(settings.unet_text_encoder, "setting `unet_text_encoder` in Settings"),
            default_vae=Pick(settings.unet_vae, "setting `unet_vae` in Settings"), families=families)
    except PartsError as exc:
        raise JobInputError(str(exc)) from exc


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


def template_overrides(template: WorkflowTemplate, catalogue: Catalogue, model: str,
                       parts: UnetParts | None) -> dict[str, Any]:
    """Values that replace template defaults: ComfyUI's spelling of the model, and the UNET's encoder/VAE files."""
    chosen = {"model": catalogue.comfy_name(model)}
    if parts is not None:
        chosen.update(text_encoder=parts.text_encoder, vae=parts.vae, clip_l=parts.clip_l)
    return {slot: value for slot, value in chosen.items() if value and slot in template.slots}


def build_graph(job: Job, template: WorkflowTemplate, uploaded: Mapping[str, str], *, seed_used: int,
                catalogue: Catalogue, parts: UnetParts | None = None) -> PreparedGraph:
    """Fill the template; sizes from the job or from its aspect ratio and the model family."""
    if job.width is not None and job.height is not None:
        width, height = job.width, job.height
    else:
        width, height = image_size(job.aspect_ratio, template.family)
    try:
        graph = fill(template, job, uploaded, seed_used=seed_used, width=width, height=height,
                     overrides=template_overrides(template, catalogue, job.model, parts))
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
