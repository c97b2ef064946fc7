"""The grouped model list: from ComfyUI's answers, or from a scan of its models folder when it is down."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path
from typing import Any

import pytest

from comfystudio_desktop.cli_models import cmd_models
from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.comfy_errors import ComfyUnavailable
from comfystudio_desktop.comfy.model_catalogue import (
    Catalogue,
    fetch_from_comfy,
    load_catalogue,
    merge_groups,
    normalise_model_name,
    scan_models_dir,
)
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings
from tests.fake_comfyui.process import free_port
from tests.test_comfy_transcripts import http_reply


class RecordedComfy:
    """Answers `models` and `object_info` like the recorded server (a_info_endpoints.json)."""

    def __init__(self, extra_unet: list[str] | None = None) -> None:
        self.extra_unet = extra_unet or []

    def models(self, folder: str) -> list[str]:
        try:
            reply = http_reply("a_info_endpoints.json", "GET", f"/models/{folder}")
        except IndexError:
            return []
        return [] if reply["status"] == 404 else list(reply["response_json"])

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        info: dict[str, Any] = http_reply("a_info_endpoints.json", "GET", f"/object_info/{node_class}")[
            "response_json"]
        if node_class == "UNETLoader" and self.extra_unet:
            info = json.loads(json.dumps(info))
            info["UNETLoader"]["input"]["required"]["unet_name"][0].extend(self.extra_unet)
        return info


class DownComfy:
    def models(self, folder: str) -> list[str]:
        raise ComfyUnavailable("http://127.0.0.1:1", "connection refused")

    def object_info(self, node_class: str | None = None) -> dict[str, Any]:
        raise AssertionError("not reached")


def _touch(root: Path, *names: str) -> None:
    for name in names:
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"")


@pytest.fixture
def models_dir(tmp_path: Path) -> Path:
    root = tmp_path / "models"
    _touch(root,
           "checkpoints/folder/model2.ckpt", "checkpoints/a.safetensors", "checkpoints/readme.txt",
           "checkpoints/.cache/hidden.safetensors", "checkpoints/B.PTH",
           "unet/z-image/turbo-fp8.safetensors", "unet/old.bin",
           "diffusion_models/flux/flux1-dev.sft", "diffusion_models/q/model.GGUF", "diffusion_models/x.pt",
           "vae/ae.safetensors", "loras/style.safetensors")
    return root


def test_scan_finds_models_recursively_by_extension(models_dir: Path) -> None:
    found = scan_models_dir(models_dir)
    assert sorted(found["Checkpoints"]) == ["B.PTH", "a.safetensors", "folder/model2.ckpt"]
    assert sorted(found["UNET"]) == ["flux/flux1-dev.sft", "old.bin", "q/model.GGUF", "x.pt",
                                     "z-image/turbo-fp8.safetensors"]


def test_scan_of_a_missing_folder_is_empty(tmp_path: Path) -> None:
    assert scan_models_dir(tmp_path / "nope") == {"UNET": [], "Checkpoints": []}


@pytest.mark.skipif(os.name != "posix", reason="symlinks")
def test_scan_follows_symlinks_but_not_loops(models_dir: Path, tmp_path: Path) -> None:
    elsewhere = tmp_path / "big-disk"
    _touch(elsewhere, "linked.safetensors")
    (models_dir / "checkpoints" / "ext").symlink_to(elsewhere)
    (models_dir / "checkpoints" / "folder" / "loop").symlink_to(models_dir / "checkpoints")
    found = scan_models_dir(models_dir)["Checkpoints"]
    assert "ext/linked.safetensors" in found
    assert len(found) == len(set(found)) and len(found) < 20


def test_down_comfy_falls_back_to_the_folder(models_dir: Path) -> None:
    catalogue = load_catalogue(DownComfy(), models_dir)  # type: ignore[arg-type]
    assert not catalogue.comfy_answered
    assert catalogue.to_dict() == {
        "UNET": ["flux/flux1-dev.sft", "old.bin", "q/model.GGUF", "x.pt", "z-image/turbo-fp8.safetensors"],
        "Checkpoints": ["a.safetensors", "B.PTH", "folder/model2.ckpt"],
    }


def test_unreachable_server_over_http_falls_back(models_dir: Path) -> None:
    client = ComfyClient(f"http://127.0.0.1:{free_port()}")
    catalogue = load_catalogue(client, models_dir)
    assert not catalogue.comfy_answered and catalogue.contains("folder/model2.ckpt")


def test_no_comfy_and_no_folder_is_empty() -> None:
    catalogue = load_catalogue(None, "")
    assert catalogue.empty and catalogue.to_dict() == {"UNET": [], "Checkpoints": []}


def test_recorded_comfy_answers() -> None:
    catalogue = load_catalogue(RecordedComfy(), "/does/not/matter")  # type: ignore[arg-type]
    assert catalogue.comfy_answered
    assert catalogue.to_dict() == {"UNET": ["tiny/sd15-unet-random.safetensors"],
                                   "Checkpoints": ["tiny/sd15-random.safetensors"]}
    assert json.loads(catalogue.to_json()) == catalogue.to_dict()


def test_unet_loader_also_lists_the_legacy_unet_folder() -> None:
    raw = fetch_from_comfy(RecordedComfy(extra_unet=["legacy\\in-unet.safetensors"]))  # type: ignore[arg-type]
    assert "legacy\\in-unet.safetensors" in raw["UNET"]
    catalogue = load_catalogue(RecordedComfy(extra_unet=["legacy\\in-unet.safetensors"]))  # type: ignore[arg-type]
    assert catalogue.groups["UNET"] == ("legacy/in-unet.safetensors", "tiny/sd15-unet-random.safetensors")
    assert catalogue.group_of("legacy\\in-unet.safetensors") == "UNET"
    assert catalogue.comfy_name("legacy/in-unet.safetensors") == "legacy\\in-unet.safetensors"
    assert catalogue.comfy_name("tiny/sd15-unet-random.safetensors") == "tiny/sd15-unet-random.safetensors"


@pytest.mark.parametrize(("name", "normalised"), [
    ("a.safetensors", "a.safetensors"),
    ("unet\\z-image\\a.safetensors", "unet/z-image/a.safetensors"),
    ("./x//y.ckpt", "x/y.ckpt"),
    ("/abs/z.ckpt", "abs/z.ckpt"),
])
def test_normalise_model_name(name: str, normalised: str) -> None:
    assert normalise_model_name(name) == normalised


def test_merge_dedupes_and_sorts_case_insensitively() -> None:
    merged = merge_groups({"Checkpoints": ["b.ckpt", "A.ckpt", "sub\\c.ckpt"]},
                          {"Checkpoints": ["sub/c.ckpt", "a.ckpt", ""], "UNET": ["z.gguf"]})
    assert merged == {"UNET": ("z.gguf",), "Checkpoints": ("A.ckpt", "a.ckpt", "b.ckpt", "sub/c.ckpt")}


@pytest.mark.parametrize(("name", "group"), [
    ("tiny/sd15-random.safetensors", "Checkpoints"),
    ("tiny\\sd15-random.safetensors", "Checkpoints"),
    ("flux/flux1-dev.sft", "UNET"),
    ("unknown.safetensors", None),
    ("", None),
])
def test_group_of(name: str, group: str | None) -> None:
    catalogue = Catalogue({"UNET": ("flux/flux1-dev.sft",), "Checkpoints": ("tiny/sd15-random.safetensors",)}, True)
    assert catalogue.group_of(name) == group
    assert catalogue.contains(name) is (group is not None)


# ---- `comfystudio-desktop models` ---------------------------------------------------------------------------

def _run_models(capsys: pytest.CaptureFixture[str], tmp_path: Path, as_json: bool, **settings: Any) -> tuple[
        int, str, str]:
    code = cmd_models(argparse.Namespace(json=as_json), Home(tmp_path / "home"), Settings(**settings))
    out, err = capsys.readouterr()
    return code, out, err


def test_cli_models_from_the_folder_when_comfy_is_down(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                                     models_dir: Path) -> None:
    url = f"http://127.0.0.1:{free_port()}"
    code, out, err = _run_models(capsys, tmp_path, True, comfy_url=url, comfy_models_dir=str(models_dir))
    assert code == 0 and json.loads(out)["Checkpoints"] == ["a.safetensors", "B.PTH", "folder/model2.ckpt"]
    assert err.strip() == f"ComfyUI is not reachable at {url}; scanned {models_dir}"
    code, out, _ = _run_models(capsys, tmp_path, False, comfy_url=url, comfy_models_dir=str(models_dir))
    assert code == 0 and out.splitlines()[:2] == ["UNET (5):", "  flux/flux1-dev.sft"]


def test_cli_models_with_nothing_to_list_fails(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    code, out, err = _run_models(capsys, tmp_path, True, comfy_url=f"http://127.0.0.1:{free_port()}")
    assert code == 1 and json.loads(out) == {"UNET": [], "Checkpoints": []}
    assert "no models folder set (setting comfy_models_dir)" in err
