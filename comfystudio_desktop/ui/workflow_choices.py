"""The workflows the prompt panel offers: a typed value per workflow, in the order a person meets them."""

from __future__ import annotations

from dataclasses import dataclass

from comfystudio_desktop.comfy.workflow_templates import TemplateLibrary

__all__ = ["WorkflowInfo", "workflow_infos"]

# The shipped workflows in the order a person meets them; user templates follow alphabetically.
_WORKFLOW_ORDER = {"text_to_image": 0, "image_to_image": 1, "blend": 2}


@dataclass(frozen=True, slots=True)
class WorkflowInfo:
    """A workflow as the panel offers it: its id, its title and the image slots it needs."""

    name: str
    title: str
    image_slots: tuple[str, ...] = ()

    @property
    def label(self) -> str:
        """The combo text: the title plus the images it needs."""
        if not self.image_slots:
            return self.title
        return f"{self.title} ({' + '.join(self.image_slots)} image{'s' if len(self.image_slots) > 1 else ''})"


def workflow_infos(library: TemplateLibrary) -> list[WorkflowInfo]:
    """Every workflow of `library`: the shipped ones first in their own order, then the rest by name."""
    names = sorted(library.names(), key=lambda n: (_WORKFLOW_ORDER.get(n, len(_WORKFLOW_ORDER)), n))
    return [WorkflowInfo(name, library.title(name) or name, tuple(library.image_slots(name))) for name in names]
