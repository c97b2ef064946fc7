"""Which value each template slot gets for a job, and the filled API graph (pure functions, table-tested)."""

from __future__ import annotations

import copy
import math
import random
from collections.abc import Mapping
from typing import Any

from comfystudio_desktop.comfy.workflow_templates import TemplateError, WorkflowTemplate
from comfystudio_desktop.jobs import SEED_MAX, Job

__all__ = ["RANDOM_SEED_MAX", "fill", "output_prefix", "resolve_seed", "slot_values"]

#: A random seed is drawn from 0 .. 2**63-1 (fits every sampler, and a signed 64-bit field in other tools).
RANDOM_SEED_MAX = 2**63 - 1
_SAVE_CLASS = "SaveImage"


def resolve_seed(seed: int, rng: random.Random | None = None) -> int:
    """The seed to use: `seed` itself, or for -1 a random one in 0..2**63-1 drawn from `rng`."""
    if seed == -1:
        return (rng or random.SystemRandom()).randint(0, RANDOM_SEED_MAX)
    if not 0 <= seed <= SEED_MAX:
        raise ValueError(f"seed must be -1 (random) or 0..{SEED_MAX}, got {seed}")
    return seed


def output_prefix(job_id: str) -> str:
    """SaveImage's `filename_prefix` for a job: its files land in ComfyUI's `output/comfystudio/`."""
    return f"comfystudio/{job_id}"


def slot_values(template: WorkflowTemplate, job: Job, uploaded_names: Mapping[str, str], *, seed_used: int,
                width: int, height: int, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The value for every slot the template declares.

    Job fields first (steps/cfg/denoise of None take the template default), then the template's
    defaults for the rest; `overrides` (e.g. the server's spelling of the model, a text encoder chosen
    in the settings) win over both.
    """
    if seed_used < 0:
        raise TemplateError(template.label, f"seed {seed_used} is not resolved (use resolve_seed)")
    overrides = overrides or {}
    from_job: dict[str, Any] = {
        "prompt": job.prompt,
        "negative_prompt": job.negative_prompt,
        "seed": seed_used,
        "width": width,
        "height": height,
        "batch_size": job.batch_size,
        "steps": job.steps,
        "cfg": None if job.cfg is None else float(job.cfg),
        "denoise": None if job.denoise is None else float(job.denoise),
        "model": job.model or None,
    }
    values: dict[str, Any] = {}
    for slot in template.slots:
        if slot in overrides:
            values[slot] = overrides[slot]
        elif slot in template.image_slots:
            if not uploaded_names.get(slot):
                raise TemplateError(template.label, f"needs an uploaded image for {slot!r}")
            values[slot] = uploaded_names[slot]
        elif from_job.get(slot) is not None:
            values[slot] = from_job[slot]
        elif slot in template.defaults:
            values[slot] = template.defaults[slot]
        else:
            raise TemplateError(template.label, f"no value for {slot!r}: the job does not set it and the "
                                                "template has no default")
    return values


def fill(template: WorkflowTemplate, job: Job, uploaded_names: Mapping[str, str], *, seed_used: int, width: int,
         height: int, overrides: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """A new API graph for `job`: every slot set, every SaveImage writing `comfystudio/{job_id}`.

    The template itself is never modified.
    """
    values = slot_values(template, job, uploaded_names, seed_used=seed_used, width=width, height=height,
                         overrides=overrides)
    graph: dict[str, Any] = copy.deepcopy(dict(template.prompt))
    for slot, value in values.items():
        _check_scalar(template, slot, value)
        for target in template.slots[slot]:
            graph[target.node]["inputs"][target.input] = value
    for node in graph.values():
        if node["class_type"] == _SAVE_CLASS:
            node["inputs"]["filename_prefix"] = output_prefix(job.job_id)
    return graph


def _check_scalar(template: WorkflowTemplate, slot: str, value: object) -> None:
    """Only plain values fill a slot: in an API graph a list is a link to another node's output, so a list (or
    object) from job data would change the graph's structure instead of filling a value."""
    if isinstance(value, bool | str | int):
        return
    if isinstance(value, float) and math.isfinite(value):
        return
    raise TemplateError(template.label, f"slot {slot!r} can only take text or a finite number, "
                                        f"not {type(value).__name__}")
