"""`UnetPartsPicker`: the text encoder and VAE combos shown when a UNET model is chosen.

Filled from ComfyUI's loader lists (`PartLists`); the first entry is "Automatic" (item data ""), which says
which file the worker would choose. A user's pick is remembered per model by whoever listens to `choice_changed`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QComboBox, QFormLayout, QWidget

from comfystudio_desktop.comfy.unet_parts import (
    FAMILY_SPECS,
    PartLists,
    PartsError,
    fitting_files,
    resolve_unet_parts,
)
from comfystudio_desktop.ui.model_combo import model_label

__all__ = ["UnetChoice", "UnetPartsPicker"]

_AUTOMATIC = "Automatic"


@dataclass(frozen=True, slots=True)
class UnetChoice:
    """A user's text encoder / VAE for one UNET model ("" = automatic)."""

    model: str
    text_encoder: str = ""
    vae: str = ""


class UnetPartsPicker(QWidget):
    """Two combos, text encoder and VAE, for the UNET model given to `show_model`."""

    #: The user changed a pick: a `UnetChoice` for the model shown.
    choice_changed = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text_encoder_combo = QComboBox(self)
        self.text_encoder_combo.setAccessibleName("Text encoder")
        self.vae_combo = QComboBox(self)
        self.vae_combo.setAccessibleName("VAE")
        form = QFormLayout(self)
        form.setContentsMargins(0, 0, 0, 0)
        form.addRow("Text &encoder", self.text_encoder_combo)
        form.addRow("&VAE", self.vae_combo)
        self._lists = PartLists()
        self._remembered: dict[str, UnetChoice] = {}
        self._model = ""
        self.text_encoder_combo.activated.connect(self._on_combo_activated)
        self.vae_combo.activated.connect(self._on_combo_activated)
        self.setVisible(False)

    @property
    def lists(self) -> PartLists:
        """The files ComfyUI's loaders reported last (empty lists until it has)."""
        return self._lists

    def set_lists(self, lists: PartLists) -> None:
        """The files ComfyUI's loaders accept now; the combos are filled again."""
        self._lists = lists
        self.show_model(self._model)

    def set_remembered(self, choices: Mapping[str, Mapping[str, str]]) -> None:
        """The picks remembered per model (the `unet_parts` setting)."""
        self._remembered = {model: UnetChoice(model, parts.get("text_encoder", ""), parts.get("vae", ""))
                            for model, parts in choices.items()}
        self.show_model(self._model)

    def show_model(self, model: str) -> None:
        """Offer the parts for UNET `model` ("" hides the combos)."""
        self._model = model
        self.setVisible(bool(model))
        if not model:
            return
        choice = self._remembered.get(model, UnetChoice(model))
        spec = next((s for s in FAMILY_SPECS if s.name_pattern.search(model)), None)
        encoders: Sequence[str] = self._lists.text_encoders
        vaes: Sequence[str] = self._lists.vaes
        if spec is not None:  # the name says the family: offer what fits it
            others = [s.encoder_pattern for s in FAMILY_SPECS if s is not spec]
            encoders = fitting_files(encoders, spec.encoder_pattern, others) or encoders
            vaes = fitting_files(vaes, spec.vae_pattern, [s.vae_pattern for s in FAMILY_SPECS
                                                         if s.vae_pattern.pattern != spec.vae_pattern.pattern]) or vaes
        automatic_encoder, automatic_vae = self._automatic(model)
        _fill(self.text_encoder_combo, encoders, choice.text_encoder, automatic_encoder)
        _fill(self.vae_combo, vaes, choice.vae, automatic_vae)

    def show_choice(self, choice: UnetChoice) -> None:
        """Show `choice` for its model (e.g. a job's parameters loaded into the form)."""
        self._remembered[choice.model] = choice
        if choice.model == self._model:
            self.show_model(self._model)

    def choice(self) -> UnetChoice:
        """What the combos show for the current model."""
        return UnetChoice(self._model, str(self.text_encoder_combo.currentData() or ""),
                          str(self.vae_combo.currentData() or ""))

    def choice_for(self, model: str) -> UnetChoice:
        """The picks for UNET `model`: the combos' for the model shown, else the remembered ones ("" = Automatic)."""
        if model == self._model:
            return self.choice()
        return self._remembered.get(model, UnetChoice(model))

    def _automatic(self, model: str) -> tuple[str, str]:
        """What the worker would pick with both combos on Automatic ("" where it would ask)."""
        try:
            parts = resolve_unet_parts(model, self._lists)
        except PartsError:
            return "", ""  # the worker would ask: the user picks here
        return parts.text_encoder, parts.vae

    def _on_combo_activated(self, _index: int) -> None:
        if self._model:
            self.choice_changed.emit(self.choice())


def _fill(combo: QComboBox, files: Sequence[str], chosen: str, automatic: str) -> None:
    combo.blockSignals(True)
    try:
        combo.clear()
        combo.addItem(f"{_AUTOMATIC} ({model_label(automatic)[0]})" if automatic else _AUTOMATIC, "")
        combo.setItemData(0, "Chosen from the files ComfyUI has installed", Qt.ItemDataRole.ToolTipRole)
        listed = list(dict.fromkeys(files))
        if chosen and chosen not in listed:
            listed.append(chosen)  # remembered, though ComfyUI does not list it now: keep it visible
        for name in listed:
            label = model_label(name)[0] + ("" if name in files else " (not installed)")
            combo.addItem(label, name)
            combo.setItemData(combo.count() - 1, name, Qt.ItemDataRole.ToolTipRole)
        combo.setCurrentIndex(max(0, combo.findData(chosen)) if chosen else 0)
    finally:
        combo.blockSignals(False)
