"""The README's settings table documents every field of `Settings` with its real default."""

from __future__ import annotations

import json
import re
from dataclasses import fields

from comfystudio_desktop.settings import Settings
from tests.conftest import REPO_ROOT


def _table() -> dict[str, str]:
    text = (REPO_ROOT / "README.md").read_text(encoding="utf-8")
    section = text[text.index("## Configuration"):text.index("## Where data lives")]
    return {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| `([^`]*)` \|", section, re.MULTILINE)}


def test_every_setting_is_in_the_readme_with_its_default() -> None:
    table = _table()
    defaults = Settings().to_dict()
    assert set(table) == {f.name for f in fields(Settings)}
    for name, shown in table.items():
        value = defaults[name]
        expected = {json.dumps(value), str(value)} | ({f"{value:g}"} if isinstance(value, float) else set())
        assert shown in expected, f"{name}: README says {shown!r}, default is {value!r}"
