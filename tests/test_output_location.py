"""The stored output location is read strictly: any JSON (or any text) is a location or a BadLocation, never an
exception; what the worker writes reads back equal; one wrong field spoils the whole location."""

from __future__ import annotations

import json
import string
from typing import Any

from hypothesis import given
from hypothesis import strategies as st

from comfystudio_desktop.outputs.location import BadLocation, OutputFile, OutputLocation, parse_location

_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
                     max_leaves=20)
_alnum = string.ascii_letters + string.digits
_job_id = st.text(_alnum, min_size=1, max_size=1).flatmap(
    lambda first: st.text(_alnum + "_-", max_size=40).map(lambda rest: first + rest))
_files = st.builds(
    OutputFile,
    name=st.tuples(_job_id, st.sampled_from(["", "_2", "_17"]), st.sampled_from(["png", "webp", "jpg"])).map(
        lambda t: f"{t[0]}{t[1]}.{t[2]}"),
    size=st.integers(1, 1024 ** 3),
    sha256=st.text("0123456789abcdef", min_size=64, max_size=64),
    filename=st.text(_alnum + "_-. ", max_size=30),
    subfolder=st.sampled_from(["", "batch", "a/b"]),
    type=st.sampled_from(["output", "temp", "input"]),
)
_locations = st.builds(
    OutputLocation,
    backend=st.sampled_from(["", "gpu0", "lan-b"]),
    host_id=st.text("0123456789abcdef", min_size=32, max_size=32),
    host_name=st.text(string.ascii_letters + "-. ", max_size=20),
    comfy_url=st.sampled_from(["", "http://127.0.0.1:8188", "https://gpu-b.lan:8443/comfy"]),
    files=st.lists(_files, min_size=1, max_size=4, unique_by=lambda f: f.name).map(tuple),
)


@given(_json)
def test_any_json_is_a_location_or_bad(value: Any) -> None:
    assert isinstance(parse_location(json.dumps(value)), OutputLocation | BadLocation)


@given(st.text())
def test_any_text_is_a_location_or_bad(text: str) -> None:
    assert isinstance(parse_location(text), OutputLocation | BadLocation)


@given(_locations)
def test_what_the_worker_writes_reads_back_equal(location: OutputLocation) -> None:
    assert parse_location(location.to_json()) == location


@given(_locations, st.data())
def test_one_field_of_another_type_spoils_the_location(location: OutputLocation, data: st.DataObject) -> None:
    document = json.loads(location.to_json())
    in_file = data.draw(st.booleans())
    target = document["files"][0] if in_file else document
    key = data.draw(st.sampled_from(sorted(target)))
    original = target[key]
    replacement = data.draw(_json.filter(lambda v: type(v) is not type(original)))
    target[key] = replacement
    assert isinstance(parse_location(json.dumps(document)), BadLocation)


@given(_locations, st.sampled_from(["../x.png", "a/b.png", "x.exe", "", ".png", "x.png\n"]))
def test_a_file_name_that_is_not_an_output_name_is_bad(location: OutputLocation, name: str) -> None:
    document = json.loads(location.to_json())
    document["files"][0]["name"] = name
    assert isinstance(parse_location(json.dumps(document)), BadLocation)


def test_examples_of_bad_locations() -> None:
    good = json.loads(OutputLocation("gpu0", "0" * 32, "box", "http://127.0.0.1:8188",
                                     (OutputFile("j1.png", 10, "a" * 64, "ComfyUI_00001_.png"),)).to_json())
    change: dict[str, Any]
    for change in ({"format": 2}, {"files": []}, {"extra": 1}, {"host_id": "ZZ"}, {"comfy_url": "file:///etc"},
                   {"backend": "../x"}, {"format": True}):
        assert isinstance(parse_location(json.dumps({**good, **change})), BadLocation), change
    file_change: dict[str, Any]
    for file_change in ({"size": 0}, {"size": -1}, {"size": 1.0}, {"sha256": "A" * 64}, {"filename": "a/b.png"},
                        {"subfolder": "../up"}, {"type": "secret"}, {"more": 1}):
        document = {**good, "files": [{**good["files"][0], **file_change}]}
        assert isinstance(parse_location(json.dumps(document)), BadLocation), file_change
    twice = {**good, "files": [good["files"][0], good["files"][0]]}
    assert isinstance(parse_location(json.dumps(twice)), BadLocation)
    assert isinstance(parse_location("[" * 100_000), BadLocation)
