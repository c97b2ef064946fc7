"""Filling a template for a job (which slot gets which value), seeds, and sizes per family: tables."""

from __future__ import annotations

import copy
import random
from typing import Any

import pytest

from comfystudio_desktop.comfy.sizes import FAMILY_PIXELS, image_size, parse_ratio
from comfystudio_desktop.comfy.workflow_fill import RANDOM_SEED_MAX, fill, output_prefix, resolve_seed, slot_values
from comfystudio_desktop.comfy.workflow_templates import TemplateError, WorkflowTemplate, load_library
from comfystudio_desktop.jobs import ASPECT_RATIOS, SEED_MAX, Job

LIBRARY = load_library()
JOB_ID = "0b8c9a52-4a8e-4d59-9a70-6f1f3f0e2a11"


def _job(**changes: Any) -> Job:
    base: dict[str, Any] = {"prompt": "a lighthouse at dusk", "job_id": JOB_ID, "model": "sd15/dream.safetensors",
                            "negative_prompt": "blurry", "batch_size": 2}
    return Job(**{**base, **changes}).validate()


def _inputs(graph: dict[str, Any], node: str) -> dict[str, Any]:
    inputs: dict[str, Any] = graph[node]["inputs"]
    return inputs


def test_text_to_image_checkpoint() -> None:
    template = LIBRARY.get("text_to_image", "checkpoint")
    graph = fill(template, _job(), {}, seed_used=42, width=688, height=384)
    assert _inputs(graph, "4") == {"ckpt_name": "sd15/dream.safetensors"}
    assert _inputs(graph, "6")["text"] == "a lighthouse at dusk" and _inputs(graph, "7")["text"] == "blurry"
    assert _inputs(graph, "5") == {"width": 688, "height": 384, "batch_size": 2}
    sampler = _inputs(graph, "3")
    assert (sampler["seed"], sampler["steps"], sampler["cfg"], sampler["denoise"]) == (42, 20, 7.0, 1.0)
    assert (sampler["sampler_name"], sampler["scheduler"]) == ("euler", "normal")
    assert sampler["model"] == ["4", 0]  # links untouched
    assert _inputs(graph, "9")["filename_prefix"] == f"comfystudio/{JOB_ID}" == output_prefix(JOB_ID)


def test_job_values_win_over_defaults() -> None:
    template = LIBRARY.get("text_to_image", "unet-zimage")
    graph = fill(template, _job(steps=12, cfg=2.5, denoise=0.9), {}, seed_used=7, width=1024, height=1024)
    sampler = _inputs(graph, "3")
    assert (sampler["steps"], sampler["cfg"], sampler["denoise"]) == (12, 2.5, 0.9)
    defaults = fill(template, _job(), {}, seed_used=7, width=1024, height=1024)["3"]["inputs"]
    assert (defaults["steps"], defaults["cfg"], defaults["sampler_name"]) == (8, 1.0, "res_multistep")


def test_fill_never_changes_the_template() -> None:
    template = LIBRARY.get("blend", "unet-flux")
    before = copy.deepcopy(dict(template.prompt))
    graph = fill(template, _job(), {"source": "s.png", "target": "t.png"}, seed_used=1, width=1024, height=768)
    graph["3"]["inputs"]["steps"] = 999
    graph["3"]["inputs"]["model"].append("x")
    assert dict(template.prompt) == before


def test_image_to_image_uses_the_uploaded_name_and_scales_to_size() -> None:
    template = LIBRARY.get("image_to_image", "checkpoint")
    graph = fill(template, _job(), {"input": "sub/photo (1).png"}, seed_used=3, width=512, height=512)
    assert _inputs(graph, "10")["image"] == "sub/photo (1).png"
    assert (_inputs(graph, "15")["width"], _inputs(graph, "15")["height"]) == (512, 512)
    assert _inputs(graph, "16")["amount"] == 2 and _inputs(graph, "3")["denoise"] == 0.6
    with pytest.raises(TemplateError, match=r"image_to_image \(checkpoint\): needs an uploaded image for 'input'"):
        fill(template, _job(), {}, seed_used=3, width=512, height=512)


def test_blend_gets_source_target_and_both_sizes() -> None:
    template = LIBRARY.get("blend", "unet-zimage")
    graph = fill(template, _job(model="z/turbo.safetensors"), {"source": "a.png", "target": "b.png"}, seed_used=9,
                 width=1360, height=768)
    loads = {node["inputs"]["image"] for node in graph.values() if node["class_type"] == "LoadImage"}
    scales = [(n["inputs"]["width"], n["inputs"]["height"]) for n in graph.values() if n["class_type"] == "ImageScale"]
    assert loads == {"a.png", "b.png"} and scales == [(1360, 768), (1360, 768)]
    assert _inputs(graph, "1")["unet_name"] == "z/turbo.safetensors"


def test_overrides_set_server_spelling_and_encoders() -> None:
    template = LIBRARY.get("text_to_image", "unet-flux")
    graph = fill(template, _job(model="flux/dev.sft"), {}, seed_used=1, width=1024, height=1024,
                 overrides={"model": "flux\\dev.sft", "text_encoder": "t5xxl_fp16.safetensors", "guidance": 2.0})
    assert _inputs(graph, "1")["unet_name"] == "flux\\dev.sft"
    assert _inputs(graph, "2")["clip_name2"] == "t5xxl_fp16.safetensors"
    assert _inputs(graph, "2")["clip_name1"] == "clip_l.safetensors"  # template default
    assert _inputs(graph, "14")["guidance"] == 2.0


def test_every_shipped_template_fills() -> None:
    uploads = {"input": "i.png", "source": "s.png", "target": "t.png"}
    for (name, family), template in LIBRARY.templates.items():
        width, height = image_size("3:2", family)
        graph = fill(template, _job(), uploads, seed_used=5, width=width, height=height)
        assert set(graph) == set(template.prompt), (name, family)
        saves = [n for n in graph.values() if n["class_type"] == "SaveImage"]
        assert saves and all(n["inputs"]["filename_prefix"] == f"comfystudio/{JOB_ID}" for n in saves)


def _template() -> WorkflowTemplate:
    return LIBRARY.get("text_to_image", "checkpoint")


@pytest.mark.parametrize(("job_changes", "overrides", "slot", "value"), [
    ({}, None, "prompt", "a lighthouse at dusk"),
    ({"negative_prompt": ""}, None, "negative_prompt", ""),
    ({}, None, "seed", 11),
    ({}, None, "width", 640),
    ({"batch_size": 4}, None, "batch_size", 4),
    ({}, None, "steps", 20),
    ({"steps": 5}, None, "steps", 5),
    ({"cfg": 0}, None, "cfg", 0.0),  # a real zero is a value, not "unset"
    ({"denoise": 0.35}, None, "denoise", 0.35),
    ({}, None, "sampler", "euler"),
    ({}, {"sampler": "dpmpp_2m"}, "sampler", "dpmpp_2m"),
    ({"model": "m.ckpt"}, {"model": "M.ckpt"}, "model", "M.ckpt"),
])
def test_slot_values(job_changes: dict[str, Any], overrides: dict[str, Any] | None, slot: str, value: Any) -> None:
    values = slot_values(_template(), _job(**job_changes), {}, seed_used=11, width=640, height=480,
                         overrides=overrides)
    assert values[slot] == value
    assert type(values[slot]) is type(value)


def test_model_is_required() -> None:
    with pytest.raises(TemplateError, match="no value for 'model'"):
        slot_values(_template(), _job(model=""), {}, seed_used=1, width=512, height=512)


def test_seed_must_be_resolved_first() -> None:
    with pytest.raises(TemplateError, match="not resolved"):
        fill(_template(), _job(), {}, seed_used=-1, width=512, height=512)


# ---- seeds ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("seed", "expected"), [(0, 0), (42, 42), (SEED_MAX, SEED_MAX)])
def test_explicit_seeds_are_kept(seed: int, expected: int) -> None:
    assert resolve_seed(seed, random.Random(1)) == expected


def test_random_seed_is_in_range_and_reproducible_with_a_seeded_rng() -> None:
    first = resolve_seed(-1, random.Random(123))
    assert first == resolve_seed(-1, random.Random(123))
    draws = [resolve_seed(-1, random.Random(i)) for i in range(200)] + [resolve_seed(-1) for _ in range(50)]
    assert all(0 <= d <= RANDOM_SEED_MAX for d in draws) and len(set(draws)) > 240
    assert RANDOM_SEED_MAX == 2**63 - 1


@pytest.mark.parametrize("seed", [-2, SEED_MAX + 1])
def test_invalid_seeds(seed: int) -> None:
    with pytest.raises(ValueError, match="seed"):
        resolve_seed(seed)


# ---- sizes ----------------------------------------------------------------------------------------------

@pytest.mark.parametrize(("ratio", "checkpoint", "unet"), [
    ("1:1", (512, 512), (1024, 1024)),
    ("4:3", (592, 448), (1184, 880)),
    ("3:4", (448, 592), (880, 1184)),
    ("16:9", (688, 384), (1360, 768)),
    ("9:16", (384, 688), (768, 1360)),
    ("3:2", (624, 416), (1248, 832)),
    ("2:3", (416, 624), (832, 1248)),
    ("21:9", (784, 336), (1568, 672)),
])
def test_sizes_per_family(ratio: str, checkpoint: tuple[int, int], unet: tuple[int, int]) -> None:
    assert image_size(ratio, "checkpoint") == checkpoint
    assert image_size(ratio, "unet-zimage") == unet == image_size(ratio, "unet-flux")


@pytest.mark.parametrize("family", sorted(FAMILY_PIXELS))
@pytest.mark.parametrize("ratio", [*ASPECT_RATIOS, "5:4", "1:3", "7:5"])
def test_sizes_are_multiples_of_16_near_the_target_pixels(ratio: str, family: str) -> None:
    width, height = image_size(ratio, family)
    assert width % 16 == 0 and height % 16 == 0
    assert abs(width * height / FAMILY_PIXELS[family] - 1) < 0.08
    ratio_w, ratio_h = parse_ratio(ratio)
    assert abs(width / height - ratio_w / ratio_h) / (ratio_w / ratio_h) < 0.05
    job = _job(width=width, height=height)  # every size is one a Job accepts
    assert job.width == width


@pytest.mark.parametrize(("ratio", "size"), [("100:1", (5120, 64)), ("1:100", (64, 5120))])
def test_extreme_ratios_are_clamped(ratio: str, size: tuple[int, int]) -> None:
    assert image_size(ratio, "checkpoint") == size


def test_unknown_family_uses_checkpoint_size() -> None:
    assert image_size("1:1", "mystery") == (512, 512)


@pytest.mark.parametrize("bad", ["", "16/9", "0:1", "1:0", "a:b", "1000:1"])
def test_bad_ratios(bad: str) -> None:
    with pytest.raises(ValueError, match="aspect ratio"):
        image_size(bad, "checkpoint")


@pytest.mark.parametrize("value", [["4", 0], {"a": 1}, None, float("nan"), b"bytes"])
def test_a_non_scalar_value_never_becomes_a_node_link(value: Any) -> None:
    """Job data fills values only: a list would be read by ComfyUI as a link to another node's output."""
    template = LIBRARY.get("text_to_image", "checkpoint")
    with pytest.raises(TemplateError, match="can only take text or a finite number"):
        fill(template, _job(), {}, seed_used=1, width=512, height=512, overrides={"negative_prompt": value})
