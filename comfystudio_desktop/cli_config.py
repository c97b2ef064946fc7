"""`comfystudio-desktop config get KEY | set KEY VALUE | list [--json]`: the settings dialog on the command line.

Values are parsed and validated by `settings.parse_setting`, the parser the dialog uses, so both accept and
refuse the same values with the same messages. A running window or worker picks up a change that needs no
restart (see `settings_watch`); for the others this command says a restart is needed.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import fields

from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import (
    RESTART_FIELDS,
    Settings,
    SettingsError,
    format_setting,
    load_settings,
    parse_setting,
    parse_setting_value,
    save_settings,
)

__all__ = ["cmd_config"]


def _names() -> list[str]:
    return [f.name for f in fields(Settings) if f.name != "schema_version"]


def cmd_config(args: argparse.Namespace, home: Home) -> int:
    """Get, set or list settings of the home's `config.json` (the file, not the --comfy-url override).

    `set` also repairs a file whose only problem is the value being set.
    """
    if args.action == "set" and args.key is not None and args.value is not None:
        return _set(home, args.key, args.value)
    current = load_settings(home.config_file)
    if args.action == "list":
        if args.key is not None:
            raise SettingsError(args.key, "config list takes no key")
        values = {name: getattr(current, name) for name in _names()}
        if args.json:
            print(json.dumps({k: list(v) if isinstance(v, tuple) else v for k, v in values.items()}))
        else:
            for name in values:
                print(f"{name} = {format_setting(current, name)}")
        return 0
    if args.key is None:
        raise SettingsError("(key)", f"config {args.action} needs a setting name")
    if args.key not in _names():
        raise SettingsError(args.key, "unknown setting (see: config list)")
    if args.action == "get":
        if args.value is not None:
            raise SettingsError(args.key, "config get takes no value")
        value = getattr(current, args.key)
        print(json.dumps(list(value) if isinstance(value, tuple) else value) if args.json
              else format_setting(current, args.key))
        return 0
    raise SettingsError(args.key, "config set needs a value")


def _set(home: Home, key: str, text: str) -> int:
    if key not in _names():
        raise SettingsError(key, "unknown setting (see: config list)")
    value = parse_setting_value(key, text)  # a value of the wrong form is refused before the file is read
    try:
        current = load_settings(home.config_file)
    except SettingsError as exc:
        if exc.field == "(file)":
            raise  # not readable JSON: one value cannot repair it
        # A readable file with an invalid field: set this one and check the whole (naming what is still wrong).
        raw = json.loads(home.config_file.read_bytes().decode("utf-8"))
        updated = Settings.from_dict({**raw, key: list(value) if isinstance(value, tuple) else value})
    else:
        updated = parse_setting(key, text, current)
    try:
        save_settings(home.config_file, updated)
    except OSError as exc:  # e.g. read-only, or on Windows held open by another program for longer than we wait
        raise SettingsError("(file)", f"cannot save {home.config_file}: {exc.strerror or exc}") from exc
    note = " (takes effect when the window or worker restarts)" if key in RESTART_FIELDS else ""
    print(f"{key} = {format_setting(updated, key)}{note}")
    return 0
