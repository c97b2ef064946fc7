"""`POST /prompt` validation with ComfyUI's error types and body shapes (execution.validate_prompt)."""

from __future__ import annotations

import sys
import traceback
from dataclasses import dataclass, field
from typing import Any

from tests.fake_comfyui.folders import Folders
from tests.fake_comfyui.nodes import NODES, Files, choices

Reason = dict[str, Any]
Validated = dict[str, tuple[bool, list[Reason], str]]


@dataclass
class Verdict:
    """Outcome of validating a prompt: `error` is None when at least one output is valid."""

    error: dict[str, Any] | None
    good_outputs: list[str] = field(default_factory=list)
    node_errors: dict[str, Any] = field(default_factory=dict)


def _error(kind: str, message: str, details: str = "") -> dict[str, Any]:
    return {"type": kind, "message": message, "details": details, "extra_info": {}}


def _type_name(exc: BaseException) -> str:
    module = type(exc).__module__
    return type(exc).__qualname__ if module == "builtins" else f"{module}.{type(exc).__qualname__}"


def _types_match(received: Any, wanted: Any) -> bool:
    if received == wanted:
        return True
    if not isinstance(received, str) or not isinstance(wanted, str):
        return False
    got = {t.strip() for t in received.split(",")}
    want = {t.strip() for t in wanted.split(",")}
    return "*" in got or "*" in want or bool(got & want)


def _convert(kind: Any, value: Any) -> Any:
    converters: dict[str, Any] = {"INT": int, "FLOAT": float, "STRING": str, "BOOLEAN": bool}
    return converters[kind](value) if isinstance(kind, str) and kind in converters else value


def _check_value(name: str, value: Any, info: tuple[Any, dict[str, Any]], skip: bool) -> Reason | None:
    kind, opts = info
    config = [kind, opts]
    if skip:
        return None
    if "min" in opts and value < opts["min"]:
        return {"type": "value_smaller_than_min", "message": f"Value {value} smaller than min of {opts['min']}",
                "details": name, "extra_info": {"input_name": name, "input_config": config, "received_value": value}}
    if "max" in opts and value > opts["max"]:
        return {"type": "value_bigger_than_max", "message": f"Value {value} bigger than max of {opts['max']}",
                "details": name, "extra_info": {"input_name": name, "input_config": config, "received_value": value}}
    if isinstance(kind, list) and value not in kind:
        listed = f"(list of length {len(kind)})" if len(kind) > 20 else str(kind)
        return {"type": "value_not_in_list", "message": "Value not in list", "details": f"{name}: '{value}' not in "
                f"{listed}", "extra_info": {"input_name": name, "input_config": None if len(kind) > 20 else config,
                                            "received_value": value}}
    return None


def _validate_node(prompt: dict[str, Any], unique_id: str, validated: Validated, folders: Folders) -> bool:
    """validate_inputs(): exceptions from broken links propagate to the caller, as in ComfyUI."""
    if unique_id in validated:
        return validated[unique_id][0]
    inputs = prompt[unique_id]["inputs"]
    node = NODES[prompt[unique_id]["class_type"]]
    types = {**node.required, **node.optional}
    errors: list[Reason] = []
    valid = True
    for name, entry in types.items():
        kind = choices(entry[0], folders) if isinstance(entry[0], Files) else entry[0]
        info = (kind, entry[1] if len(entry) > 1 else {})
        if name not in inputs:
            if name in node.required:
                errors.append({"type": "required_input_missing", "message": "Required input is missing",
                               "details": name, "extra_info": {"input_name": name}})
            continue
        value = inputs[name]
        if isinstance(value, list):
            if len(value) != 2:
                errors.append({"type": "bad_linked_input", "message": "Bad linked input, must be a length-2 list of "
                               "[node_id, slot_index]", "details": name, "extra_info": {
                                   "input_name": name, "input_config": list(info), "received_value": value}})
                continue
            source_id = value[0]
            received = NODES[prompt[source_id]["class_type"]].outputs[value[1]]
            if not _types_match(received, kind):
                errors.append({"type": "return_type_mismatch", "message": "Return type mismatch between linked nodes",
                               "details": f"{name}, received_type({received}) mismatch input_type({kind})",
                               "extra_info": {"input_name": name, "input_config": list(info),
                                              "received_type": received, "linked_node": value}})
                continue
            try:
                if not _validate_node(prompt, source_id, validated, folders):
                    valid = False
            except Exception as ex:  # any failure below becomes exception_during_inner_validation
                valid = False
                validated[source_id] = (False, [{
                    "type": "exception_during_inner_validation", "message": "Exception when validating inner node",
                    "details": str(ex), "extra_info": {
                        "input_name": name, "input_config": list(info), "exception_message": str(ex),
                        "exception_type": _type_name(ex), "traceback": traceback.format_tb(sys.exc_info()[2]),
                        "linked_node": value}}], source_id)
            continue
        try:
            if isinstance(value, dict) and "__value__" in value:
                value = value["__value__"]
            value = _convert(kind, value)
            inputs[name] = value
        except Exception as ex:  # any conversion failure is an invalid_input_type
            errors.append({"type": "invalid_input_type", "message": f"Failed to convert an input value to a {kind} "
                           "value", "details": f"{name}, {value}, {ex}", "extra_info": {
                               "input_name": name, "input_config": list(info), "received_value": value,
                               "exception_message": str(ex)}})
            continue
        reason = _check_value(name, value, info, skip=node.has_validate)
        if reason:
            errors.append(reason)
    if node.has_validate and isinstance(inputs.get("image"), str):
        image = inputs["image"]
        if not folders.annotated_path(image).is_file():
            errors.append({"type": "custom_validation_failed", "message": "Custom validation failed for node",
                           "details": f"image - Invalid image file: {image}", "extra_info": {"input_name": "image"}})
    ok = valid and not errors
    validated[unique_id] = (ok, errors, unique_id)
    return ok


def validate_prompt(prompt: Any, folders: Folders, partial_targets: list[str] | None = None) -> Verdict:
    """Check a prompt as ComfyUI does; outputs are taken in prompt order (optionally only `partial_targets`)."""
    outputs: list[str] = []
    for node_id in prompt:
        if "class_type" not in prompt[node_id]:
            return Verdict(_error("invalid_prompt", "Cannot execute because a node is missing the class_type "
                                  "property.", f"Node ID '#{node_id}'"))
        class_type = prompt[node_id]["class_type"]
        if class_type not in NODES:
            return Verdict(_error("invalid_prompt", f"Cannot execute because node {class_type} does not exist.",
                                  f"Node ID '#{node_id}'"))
        if NODES[class_type].output_node and (partial_targets is None or node_id in partial_targets):
            outputs.append(node_id)
    if not outputs:
        return Verdict(_error("prompt_no_outputs", "Prompt has no outputs"))
    verdict = Verdict(None)
    failures: list[tuple[str, list[Reason]]] = []
    validated: Validated = {}
    for output in outputs:
        try:
            _validate_node(prompt, output, validated, folders)
            ok, reasons = validated[output][0], validated[output][1]
        except Exception as ex:  # mirrors exception_during_validation
            ok, reasons = False, [{"type": "exception_during_validation", "message": "Exception when validating node",
                                   "details": str(ex), "extra_info": {"exception_type": _type_name(ex),
                                                                      "traceback": traceback.format_tb(
                                                                          sys.exc_info()[2])}}]
            validated[output] = (False, reasons, output)
        if ok:
            verdict.good_outputs.append(output)
            continue
        failures.append((output, reasons))
        for node_id, (node_ok, node_reasons, _) in validated.items():
            if node_ok or not node_reasons:
                continue
            entry = verdict.node_errors.setdefault(node_id, {"errors": node_reasons, "dependent_outputs": [],
                                                             "class_type": prompt[node_id]["class_type"]})
            entry["dependent_outputs"].append(output)
    if not verdict.good_outputs:
        details = "\n".join(f"{r['message']}: {r['details']}" for _, reasons in failures for r in reasons)
        verdict.error = _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details)
    return verdict
