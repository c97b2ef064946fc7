"""One named function per failure fix: each opens exactly the choice that fixes a failed job.

The window calls `open_fix(fix, ...)` when the user presses the fix button under a failed job's error.
"""

from __future__ import annotations

from collections.abc import Callable

from PySide6.QtWidgets import QComboBox

from comfystudio_desktop.comfy.failure_report import FixAction
from comfystudio_desktop.jobs import Job
from comfystudio_desktop.ui.prompt_panel import PromptPanel

__all__ = ["open_fix"]


def open_fix(fix: FixAction, job: Job | None, panel: PromptPanel, open_settings: Callable[[str], object]) -> None:
    """Open the choice that fixes a failure of `job`; `open_settings(field)` opens Settings at that field."""
    match fix:
        case FixAction.PICK_TEXT_ENCODER:
            pick_text_encoder(job, panel)
        case FixAction.PICK_VAE:
            pick_vae(job, panel)
        case FixAction.PICK_MODEL:
            pick_model(job, panel)
        case FixAction.SET_FLUX_CLIP_L:
            open_settings("flux_clip_l")
        case FixAction.COMFY_SETTINGS:
            open_settings("comfy_url")
        case FixAction.NONE:
            pass


def pick_text_encoder(job: Job | None, panel: PromptPanel) -> None:
    """Load the job's parameters and open the text encoder list of its UNET model."""
    _load(job, panel)
    _open(panel.unet_parts.text_encoder_combo)


def pick_vae(job: Job | None, panel: PromptPanel) -> None:
    """Load the job's parameters and open the VAE list of its UNET model."""
    _load(job, panel)
    _open(panel.unet_parts.vae_combo)


def pick_model(job: Job | None, panel: PromptPanel) -> None:
    """Load the job's parameters and open the model list (its file is not installed)."""
    _load(job, panel)
    _open(panel.model_combo)


def _load(job: Job | None, panel: PromptPanel) -> None:
    if job is not None:
        panel.load_job(job)


def _open(combo: QComboBox) -> None:
    combo.setFocus()
    if combo.isVisible():
        combo.showPopup()
