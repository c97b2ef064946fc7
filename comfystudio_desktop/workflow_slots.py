"""Which images a workflow takes: one rule for the window's prompt panel and for `submit --image`. Qt-free."""

from __future__ import annotations

from collections.abc import Collection, Mapping

__all__ = ["SLOT_TITLES", "slot_problems"]

SLOT_TITLES: Mapping[str, str] = {"input": "Input image", "source": "Source image", "target": "Target image"}


def slot_problems(workflow: str, wanted: Collection[str], given: Collection[str]) -> dict[str, str]:
    """{slot: message} for each image `workflow` needs (`wanted`) that is not `given`, and each given it does not take.

    Empty when the images fit the workflow. Messages are sentences for the user, naming the slot.
    """
    problems: dict[str, str] = {}
    for slot in wanted:
        if slot not in given:
            article = "an" if SLOT_TITLES.get(slot, slot)[0].lower() in "aeiou" else "a"
            problems[slot] = f"This workflow needs {article} {SLOT_TITLES.get(slot, slot).lower()}"
    for slot in given:
        if slot not in wanted:
            takes = f"takes only {' and '.join(wanted)}" if wanted else "takes no image"
            problems[slot] = f"Workflow {workflow!r} {takes}; remove the {slot} image"
    return problems
