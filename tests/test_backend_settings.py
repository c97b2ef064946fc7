"""Backends in the settings: strict parsing (proved with hypothesis), unique names, the v2 → v3 migration."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.backend_settings import (
    Backend,
    BackendError,
    BackendKind,
    backends_from_json,
    backends_to_json,
)
from comfystudio_desktop.settings import (
    SCHEMA_VERSION,
    Settings,
    SettingsError,
    format_setting,
    load_settings,
    parse_setting,
    save_settings,
)

_JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                 max_size=4), max_leaves=20)
_FIELD_VALUES: dict[str, Any] = {
    "name": st.text(max_size=40), "kind": st.sampled_from(["external", "managed", "other", ""]),
    "url": st.sampled_from(["http://10.0.0.2:8188", "https://gpu.lan", "ftp://x", "", "http://"]),
    "comfy_main": st.text(max_size=10), "comfy_python": st.text(max_size=10), "port": st.integers(-5, 70_000),
    "cuda_device": st.integers(-3, 70), "pipeline_depth": st.integers(-1, 10), "enabled": st.booleans(),
}
_ENTRY = st.fixed_dictionaries({}, optional={key: value | _JSON for key, value in _FIELD_VALUES.items()})


@given(st.lists(_ENTRY, max_size=4) | _JSON)
def test_any_json_is_either_a_valid_backend_list_or_one_backend_error(raw: Any) -> None:
    try:
        backends = backends_from_json(raw)
    except BackendError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    assert len({b.name for b in backends}) == len(backends)
    for backend in backends:
        assert backend.validate() is backend
    assert backends_from_json(backends_to_json(backends)) == backends  # round trip


@pytest.mark.parametrize(("raw", "words"), [
    ([{"name": "a", "url": "http://h:1"}, {"name": "a", "url": "http://h:2"}], "used twice"),
    ([{"name": "a", "url": "http://h:1", "port": True}], "port must be int"),
    ([{"name": "a", "url": "http://h:1", "pipeline_depth": 2.0}], "pipeline_depth must be int"),
    ([{"name": "a b", "url": "http://h:1"}], "name must be"),
    ([{"name": "a", "kind": "managed"}], "comfy_main is required"),
    ([{"name": "a", "url": "http://h:1", "colour": "red"}], "unknown field 'colour'"),
    ([{"url": "http://h:1"}], "name is required"),
    ({"name": "a"}, "JSON list"),
])
def test_bad_backend_lists_are_named(raw: Any, words: str) -> None:
    with pytest.raises(BackendError, match=words):
        backends_from_json(raw)


def test_a_v2_file_becomes_one_backend_named_local(tmp_path: Path) -> None:
    config = tmp_path / "config.json"
    config.write_text(json.dumps({"schema_version": 2, "comfy_url": "http://127.0.0.1:9000", "pipeline_depth": 3}))
    settings = load_settings(config)
    assert settings.schema_version == SCHEMA_VERSION == 3
    assert settings.backends == (Backend(name="local", url="http://127.0.0.1:9000", pipeline_depth=3),)
    managed = tmp_path / "managed.json"
    managed.write_text(json.dumps({"comfy_mode": "managed", "comfy_main": "/opt/ComfyUI/main.py", "comfy_port": 8190}))
    local = load_settings(managed).backends[0]
    assert (local.kind, local.comfy_main, local.port, local.comfy_url) == (
        BackendKind.MANAGED, "/opt/ComfyUI/main.py", 8190, "http://127.0.0.1:8190")


def test_backends_save_load_and_set_from_text(tmp_path: Path) -> None:
    text = json.dumps([{"name": "gpu0", "kind": "managed", "comfy_main": "/c/main.py", "cuda_device": 0},
                       {"name": "lan", "url": "http://192.168.1.9:8188", "enabled": False}])
    settings = parse_setting("backends", text)
    assert [b.name for b in settings.all_backends()] == ["gpu0", "lan"]
    assert settings.backend("gpu0").comfy_args() == ("--cuda-device", "0")
    assert parse_setting("backends", format_setting(settings, "backends")) == settings
    save_settings(tmp_path / "c.json", settings)
    assert load_settings(tmp_path / "c.json") == settings
    with pytest.raises(SettingsError, match="no backend named 'x'"):
        settings.backend("x")
    with pytest.raises(SettingsError, match="backends"):
        parse_setting("backends", "[{")


def test_without_backends_the_single_comfyui_is_local() -> None:
    settings = Settings(comfy_url="http://127.0.0.1:8111")
    assert settings.all_backends() == (Backend(name="local", url="http://127.0.0.1:8111"),)
    with pytest.raises(SettingsError, match="backends"):
        Settings.from_dict({"backends": [{"name": "x", "url": "nope"}]})
