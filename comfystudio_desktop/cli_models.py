"""`comfystudio-desktop models [--json]`: the model catalogue on the command line."""

from __future__ import annotations

import argparse
import sys

from comfystudio_desktop.comfy.comfy_client import ComfyClient
from comfystudio_desktop.comfy.model_catalogue import Catalogue, load_catalogue
from comfystudio_desktop.home import Home
from comfystudio_desktop.settings import Settings

__all__ = ["cmd_models"]

# A CLI call should not hang on a ComfyUI that is busy starting; the folder scan is the fallback.
_QUICK_TIMEOUT_S = 3.0


def cmd_models(args: argparse.Namespace, home: Home, settings: Settings) -> int:
    """Print models grouped into UNET and Checkpoints; exit 1 if nothing could be listed at all.

    `--json` prints `{"UNET": [...], "Checkpoints": [...]}`; a note on stderr says when ComfyUI did not
    answer and the list comes from scanning `comfy_models_dir`.
    """
    with ComfyClient(settings.comfy_url, connect_timeout=_QUICK_TIMEOUT_S, read_timeout=_QUICK_TIMEOUT_S) as client:
        catalogue = load_catalogue(client, settings.comfy_models_dir or None)
    if not catalogue.comfy_answered:
        source = (f"scanned {settings.comfy_models_dir}" if settings.comfy_models_dir
                  else "no models folder set (setting comfy_models_dir)")
        print(f"ComfyUI is not reachable at {settings.comfy_url}; {source}", file=sys.stderr)
    if getattr(args, "json", False):
        print(catalogue.to_json())
    else:
        print(_as_text(catalogue))
    return 1 if catalogue.empty and not catalogue.comfy_answered else 0


def _as_text(catalogue: Catalogue) -> str:
    lines: list[str] = []
    for group, names in catalogue.to_dict().items():
        lines.append(f"{group} ({len(names)}):")
        lines.extend(f"  {name}" for name in names)
        if not names:
            lines.append("  (none)")
    return "\n".join(lines)
