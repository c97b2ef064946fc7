"""Shipped and user workflow templates: loading, validation errors, and choosing a family for a model."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from comfystudio_desktop.comfy.workflow_templates import (
    FAMILIES,
    TemplateError,
    WorkflowTemplate,
    check_node_classes,
    family_for_model,
    load_library,
    load_template,
    missing_node_classes,
    parse_template,
    shipped_workflows_dir,
)
from tests.test_comfy_transcripts import http_reply

# Core ComfyUI node classes the shipped templates may use (no custom nodes).
CORE_CLASSES = {"CheckpointLoaderSimple", "CLIPTextEncode", "EmptyLatentImage", "KSampler", "VAEDecode", "SaveImage",
                "LoadImage", "VAEEncode", "ImageScale", "ImageBlend", "RepeatLatentBatch", "UNETLoader", "CLIPLoader",
                "DualCLIPLoader", "VAELoader", "ModelSamplingAuraFlow", "EmptySD3LatentImage", "FluxGuidance"}
RECORDED_CLASSES = ("CheckpointLoaderSimple", "UNETLoader", "CLIPLoader", "VAELoader", "KSampler", "LoadImage",
                    "SaveImage")


@pytest.fixture(scope="module")
def shipped() -> list[WorkflowTemplate]:
    return [load_template(path) for path in sorted(shipped_workflows_dir().glob("*.json"))]


def test_shipped_library_has_every_workflow_for_every_family() -> None:
    library = load_library()
    assert library.errors == ()
    assert library.names() == ("blend", "image_to_image", "text_to_image")
    for name in library.names():
        assert library.families(name) == ("checkpoint", "unet-flux", "unet-sd15", "unet-zimage")
    assert library.image_slots("text_to_image") == ()
    assert library.image_slots("image_to_image") == ("input",)
    assert library.image_slots("blend") == ("source", "target")
    assert library.title("text_to_image") == "Text to image"


def test_shipped_templates_use_core_nodes_only(shipped: list[WorkflowTemplate]) -> None:
    assert len(shipped) == 12  # 3 workflows x 4 families
    for template in shipped:
        assert template.node_classes() <= CORE_CLASSES, template.source
        assert template.model_group == FAMILIES[template.family]


def test_shipped_templates_match_the_recorded_node_definitions(shipped: list[WorkflowTemplate]) -> None:
    infos = {name: http_reply("a_info_endpoints.json", "GET", f"/object_info/{name}")["response_json"][name]
             for name in RECORDED_CLASSES}
    for template in shipped:
        for node_id, node in template.prompt.items():
            info = infos.get(node["class_type"])
            if info is None:
                continue
            declared = {**info["input"]["required"], **info["input"].get("optional", {})}
            where = f"{template.source} node {node_id}"
            assert set(node["inputs"]) <= set(declared), where
            assert set(info["input"]["required"]) <= set(node["inputs"]), where
            for input_name, value in node["inputs"].items():
                spec = declared[input_name]
                is_combo = isinstance(spec[0], list) and input_name not in ("ckpt_name", "unet_name", "clip_name",
                                                                            "vae_name", "image")
                if is_combo and "<...2 more items truncated>" not in spec[0]:
                    assert value in spec[0], f"{where} {input_name}={value!r}"


@pytest.mark.parametrize(("family", "classes", "steps", "cfg"), [
    ("checkpoint", {"CheckpointLoaderSimple", "EmptyLatentImage"}, 20, 7.0),
    ("unet-zimage", {"UNETLoader", "CLIPLoader", "VAELoader", "ModelSamplingAuraFlow", "EmptySD3LatentImage"}, 8,
     1.0),
    ("unet-flux", {"UNETLoader", "DualCLIPLoader", "VAELoader", "FluxGuidance", "EmptySD3LatentImage"}, 20, 1.0),
])
def test_family_shapes(family: str, classes: set[str], steps: int, cfg: float) -> None:
    template = load_library().get("text_to_image", family)
    assert classes <= template.node_classes()
    assert (template.defaults["steps"], template.defaults["cfg"]) == (steps, cfg)
    if family == "unet-zimage":
        clip = next(n for n in template.prompt.values() if n["class_type"] == "CLIPLoader")
        assert clip["inputs"]["type"] == "lumina2"
    if family != "checkpoint":
        assert {"text_encoder", "vae"} <= set(template.defaults) and {"text_encoder", "vae"} <= set(template.slots)


# ---- validation errors ------------------------------------------------------------------------------------

def _valid() -> dict[str, Any]:
    data: dict[str, Any] = json.loads((shipped_workflows_dir() / "text_to_image-checkpoint.json").read_text(
        encoding="utf-8"))
    return data


def _broken(change: str) -> dict[str, Any]:
    data = _valid()
    if change == "missing keys":
        del data["prompt"], data["slots"]
    elif change == "bad name":
        data["name"] = "../evil"
    elif change == "unknown family":
        data["family"] = "sdxl"
    elif change == "wrong group":
        data["model_group"] = "UNET"
    elif change == "slot to missing node":
        data["slots"]["prompt"] = ["66", "text"]
    elif change == "slot to missing input":
        data["slots"]["prompt"] = ["6", "txt"]
    elif change == "slot to a link":
        data["slots"]["prompt"] = ["6", "clip"]
    elif change == "bad slot shape":
        data["slots"]["seed"] = "3.seed"
    elif change == "link to missing node":
        data["prompt"]["3"]["inputs"]["model"] = ["99", 0]
    elif change == "no class_type":
        del data["prompt"]["8"]["class_type"]
    elif change == "no SaveImage":
        data["prompt"]["9"]["class_type"] = "PreviewImage"
    elif change == "required slot missing":
        del data["slots"]["seed"]
    elif change == "slot without default":
        data["slots"]["sampler_mode"] = ["3", "scheduler"]
    elif change == "defaulted slot without default":
        del data["defaults"]["steps"]
    elif change == "unknown image slot":
        data["image_slots"] = ["mask"]
    elif change == "image slot not declared":
        data["slots"]["input"] = ["6", "text"]
    elif change == "image slot without slot":
        data["image_slots"] = ["input"]
    elif change == "defaults not an object":
        data["defaults"] = [1]
    return data


@pytest.mark.parametrize(("change", "message"), [
    ("missing keys", "missing key(s): slots, prompt"),
    ("bad name", "invalid name '../evil'"),
    ("unknown family", "unknown family 'sdxl'"),
    ("wrong group", "family 'checkpoint' takes its model from 'Checkpoints', not 'UNET'"),
    ("slot to missing node", "slot 'prompt' points at missing node '66'"),
    ("slot to missing input", "slot 'prompt' points at node '6' (CLIPTextEncode), which has no input 'txt'"),
    ("slot to a link", "slot 'prompt' points at node '6' input 'clip', which is a link, not a value"),
    ("bad slot shape", "slot 'seed' must be [node_id, input] or a list of them"),
    ("link to missing node", "node '3' input 'model' links to missing node '99'"),
    ("no class_type", "node '8' needs a 'class_type'"),
    ("no SaveImage", "the graph has no SaveImage node"),
    ("required slot missing", "missing slot 'seed'"),
    ("slot without default", "slot 'sampler_mode' has no value in 'defaults'"),
    ("defaulted slot without default", "slot 'steps' has no value in 'defaults'"),
    ("unknown image slot", "unknown image slot 'mask'"),
    ("image slot not declared", "slot 'input' is an image; list it in 'image_slots'"),
    ("image slot without slot", "image slot 'input' has no entry in 'slots'"),
    ("defaults not an object", "'defaults' must be a dict"),
])
def test_validation_errors_name_template_and_problem(tmp_path: Path, change: str, message: str) -> None:
    path = tmp_path / "mine.json"
    path.write_text(json.dumps(_broken(change)), encoding="utf-8")
    with pytest.raises(TemplateError) as info:
        load_template(path)
    assert str(info.value).startswith(f"workflow template {path}: ") or str(info.value).startswith(
        "workflow template mine.json: ")
    assert message in str(info.value)


def test_not_json_names_the_file(tmp_path: Path) -> None:
    path = tmp_path / "broken.json"
    path.write_text("{'name': 1", encoding="utf-8")
    with pytest.raises(TemplateError, match=r"^workflow template broken.json: not valid JSON"):
        load_template(path)
    with pytest.raises(TemplateError, match="must be a JSON object"):
        parse_template([1, 2], "list.json")


def test_parse_does_not_keep_a_reference_it_will_change() -> None:
    data = _valid()
    before = copy.deepcopy(data)
    parse_template(data)
    assert data == before


def test_slot_may_write_to_several_inputs() -> None:
    template = load_library().get("blend", "checkpoint")
    assert [(t.node, t.input) for t in template.slots["width"]] == [("15", "width"), ("18", "width")]


# ---- user templates ---------------------------------------------------------------------------------------

def test_user_templates_load_after_shipped_ones(tmp_path: Path) -> None:
    mine = _valid()
    mine["title"] = "My text to image"
    mine["defaults"]["steps"] = 33
    (tmp_path / "a-override.json").write_text(json.dumps(mine), encoding="utf-8")
    extra = _valid()
    extra["name"] = "portrait"
    (tmp_path / "portrait.json").write_text(json.dumps(extra), encoding="utf-8")
    (tmp_path / "zz-broken.json").write_text("{", encoding="utf-8")
    library = load_library(tmp_path)
    assert library.get("text_to_image", "checkpoint").defaults["steps"] == 33
    assert library.get("text_to_image", "unet-flux").source.endswith("text_to_image-unet-flux.json")
    assert "portrait" in library and library.families("portrait") == ("checkpoint",)
    assert len(library.errors) == 1 and "zz-broken.json" in str(library.errors[0])


def test_a_broken_shipped_template_is_fatal(tmp_path: Path) -> None:
    (tmp_path / "bad.json").write_text("[]", encoding="utf-8")
    with pytest.raises(TemplateError, match="must be a JSON object"):
        load_library(None, shipped_dir=tmp_path)


def test_missing_folders_are_empty(tmp_path: Path) -> None:
    library = load_library(tmp_path / "none", shipped_dir=tmp_path / "none")
    assert library.names() == () and "text_to_image" not in library


# ---- choosing a family ------------------------------------------------------------------------------------

@pytest.mark.parametrize(("model", "group", "setting", "family"), [
    ("sd15/v1-5-pruned-emaonly.safetensors", "Checkpoints", "auto", "checkpoint"),
    ("flux-in-a-checkpoint.safetensors", "Checkpoints", "auto", "checkpoint"),
    ("z-image/turbo-fp8.safetensors", "UNET", "auto", "unet-zimage"),
    ("flux/FLUX1-dev-fp8.safetensors", "UNET", "auto", "unet-flux"),
    ("flux\\schnell.gguf", "UNET", "auto", "unet-flux"),
    ("flux/my-finetune.safetensors", "UNET", "auto", "unet-flux"),  # the folder counts too
    ("zimage/turbo-bf16.safetensors", "UNET", "auto", "unet-zimage"),
    ("z-image/turbo.safetensors", "UNET", "flux", "unet-flux"),
    ("flux1-dev.safetensors", "UNET", "unet-zimage", "unet-zimage"),
])
def test_family_for_model(model: str, group: str, setting: str, family: str) -> None:
    assert family_for_model(model, group, setting) == family


@pytest.mark.parametrize(("group", "setting"), [("Loras", "auto"), ("UNET", "sdxl"), ("UNET", "checkpoint")])
def test_family_for_model_rejects(group: str, setting: str) -> None:
    with pytest.raises(ValueError):
        family_for_model("m.safetensors", group, setting)


def test_choose_by_workflow_and_model() -> None:
    library = load_library()
    assert library.choose("text_to_image", "a.ckpt", "Checkpoints").family == "checkpoint"
    assert library.choose("blend", "flux1-dev.sft", "UNET").label == "blend (unet-flux)"
    with pytest.raises(TemplateError, match="unknown workflow"):
        library.choose("inpaint", "a.ckpt", "Checkpoints")
    with pytest.raises(TemplateError, match="unknown model group"):
        library.choose("text_to_image", "a.ckpt", "Loras")


def test_node_classes_unknown_to_the_running_comfy() -> None:
    template = load_library().get("text_to_image", "unet-flux")
    object_info: dict[str, Any] = {key: {} for key in CORE_CLASSES - {"FluxGuidance", "DualCLIPLoader"}}
    assert missing_node_classes(template, object_info) == ["DualCLIPLoader", "FluxGuidance"]
    with pytest.raises(TemplateError, match=r"text_to_image \(unet-flux\): node class\(es\) DualCLIPLoader, "
                                            "FluxGuidance unknown to the running ComfyUI"):
        check_node_classes(template, object_info)
    check_node_classes(template, {key: {} for key in CORE_CLASSES})
