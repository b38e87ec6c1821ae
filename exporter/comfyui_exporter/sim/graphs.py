"""Node classes and prompt validation, shaped like ComfyUI 0.8.0's ``validate_prompt``.

The simulator must reject malformed graphs with byte-compatible 400 bodies (the exporter and
its tests parse them), so the node definitions below carry the same ``input_config`` dicts that
the recordings show, and validation follows the same order: class_type checks over the whole
graph, then the output set, then a recursive input check per output node.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .nodes import NodeClass

if TYPE_CHECKING:
    from .versions import VersionProfile


def _error(typ: str, message: str, details: str, extra: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"type": typ, "message": message, "details": details, "extra_info": extra or {}}


# A KeyError traceback as ComfyUI prints it (recorder-redacted form), for dangling links.
_OMITTED = "    <source line omitted by recorder>\n"


def _validation_tb(lines: tuple[int, int] = (1043, 818)) -> list[str]:
    """The two frames of that traceback; the line numbers differ per ComfyUI version."""
    return [
        f'  File "/opt/ComfyUI/execution.py", line {lines[0]}, in validate_prompt\n{_OMITTED}',
        f'  File "/opt/ComfyUI/execution.py", line {lines[1]}, in validate_inputs\n{_OMITTED}',
    ]


class _LinkError(Exception):
    """Raised for a link to a node id that is not in the graph (ComfyUI raises KeyError there)."""


def _convert(input_type: Any, val: Any) -> Any:
    if input_type == "INT":
        return int(val)
    if input_type == "FLOAT":
        return float(val)
    if input_type == "STRING":
        return str(val)
    if input_type == "BOOLEAN":
        return bool(val)
    return val


def _validate_node(
    prompt: dict[str, Any],
    node_id: str,
    classes: dict[str, NodeClass],
    validated: dict[str, tuple[bool, list[dict[str, Any]]]],
) -> bool:
    if node_id in validated:
        return validated[node_id][0]
    node = prompt[node_id]
    cls = classes[node["class_type"]]
    inputs = node.get("inputs", {})
    errors: list[dict[str, Any]] = []
    valid = True
    for name in [*cls.required, *cls.optional]:
        input_type, category, extra = cls.input_info(name)
        if name not in inputs:
            if category == "required":
                errors.append(
                    _error("required_input_missing", "Required input is missing", name, {"input_name": name})
                )
            continue
        val = inputs[name]
        info = [input_type, extra]
        if isinstance(val, list):
            if len(val) != 2:
                errors.append(
                    _error(
                        "bad_linked_input",
                        "Bad linked input, must be a length-2 list of [node_id, slot_index]",
                        name,
                        {"input_name": name, "input_config": info, "received_value": val},
                    )
                )
                continue
            o_id = val[0]
            if o_id not in prompt:
                raise _LinkError(repr(str(o_id)))
            received = classes[prompt[o_id]["class_type"]].return_types[val[1]]
            if received != input_type and input_type != "*":
                errors.append(
                    _error(
                        "return_type_mismatch",
                        "Return type mismatch between linked nodes",
                        f"{name}, received_type({received}) mismatch input_type({input_type})",
                        {
                            "input_name": name,
                            "input_config": info,
                            "received_type": received,
                            "linked_node": val,
                        },
                    )
                )
                continue
            if not _validate_node(prompt, o_id, classes, validated):
                valid = False
            continue
        try:
            val = _convert(input_type, val)
        except (TypeError, ValueError) as ex:
            errors.append(
                _error(
                    "invalid_input_type",
                    f"Failed to convert an input value to a {input_type} value",
                    f"{name}, {val}, {ex}",
                    {
                        "input_name": name,
                        "input_config": info,
                        "received_value": val,
                        "exception_message": str(ex),
                    },
                )
            )
            continue
        if "min" in extra and val < extra["min"]:
            errors.append(
                _error(
                    "value_smaller_than_min",
                    f"Value {val} smaller than min of {extra['min']}",
                    name,
                    {"input_name": name, "input_config": info, "received_value": val},
                )
            )
            continue
        if "max" in extra and val > extra["max"]:
            errors.append(
                _error(
                    "value_bigger_than_max",
                    f"Value {val} bigger than max of {extra['max']}",
                    name,
                    {"input_name": name, "input_config": info, "received_value": val},
                )
            )
            continue
        if isinstance(input_type, list) and val not in input_type:
            big = len(input_type) > 20
            list_info = f"(list of length {len(input_type)})" if big else str(input_type)
            errors.append(
                _error(
                    "value_not_in_list",
                    "Value not in list",
                    f"{name}: '{val}' not in {list_info}",
                    {"input_name": name, "input_config": None if big else info, "received_value": val},
                )
            )
    ok = valid and not errors
    validated[node_id] = (ok, errors)
    return ok


def _missing_node_type(node_id: str, node: Any) -> dict[str, Any]:
    """0.38's answer for a node without class_type or with an unknown one (was invalid_prompt)."""
    class_type = node.get("class_type") if isinstance(node, dict) else None
    meta = node.get("_meta", {}) if isinstance(node, dict) else {}
    if class_type is None:
        title = meta.get("title")
        message = (
            f"Node '{title or f'ID #{node_id}'}' has no class_type. "
            "The workflow may be corrupted or a custom node is missing."
        )
    else:
        title = meta.get("title", class_type)
        message = f"Node '{title}' not found. The custom node may not be installed."
    return _error(
        "missing_node_type",
        message,
        f"Node ID '#{node_id}'",
        {"node_id": node_id, "class_type": class_type, "node_title": title},
    )


def validate_prompt(
    prompt: Any,
    classes: dict[str, NodeClass],
    partial: list[str] | None = None,
    profile: VersionProfile | None = None,
) -> tuple[bool, dict[str, Any] | None, list[str], dict]:
    """Validate a graph; returns ``(ok, error, good_outputs, node_errors)`` like ComfyUI."""
    outputs: list[str] = []
    for node_id in prompt:
        node = prompt[node_id]
        unknown = not isinstance(node, dict) or node.get("class_type", None) not in classes
        if unknown and profile is not None and profile.missing_node_type:
            return False, _missing_node_type(node_id, node), [], {}
        if not isinstance(node, dict) or "class_type" not in node:
            return (
                False,
                _error(
                    "invalid_prompt",
                    "Cannot execute because a node is missing the class_type property.",
                    f"Node ID '#{node_id}'",
                ),
                [],
                {},
            )
        if node["class_type"] not in classes:
            return (
                False,
                _error(
                    "invalid_prompt",
                    f"Cannot execute because node {node['class_type']} does not exist.",
                    f"Node ID '#{node_id}'",
                ),
                [],
                {},
            )
        if classes[node["class_type"]].output_node and (partial is None or node_id in partial):
            outputs.append(node_id)
    if not outputs:
        return False, _error("prompt_no_outputs", "Prompt has no outputs", ""), [], {}

    good: list[str] = []
    failed: list[tuple[str, list[dict[str, Any]]]] = []
    node_errors: dict[str, Any] = {}
    validated: dict[str, tuple[bool, list[dict[str, Any]]]] = {}
    for out in outputs:
        try:
            ok = _validate_node(prompt, out, classes, validated)
            reasons = validated[out][1]
        except _LinkError as ex:
            ok = False
            reasons = [
                _error(
                    "exception_during_validation",
                    "Exception when validating node",
                    str(ex),
                    {
                        "exception_type": "KeyError",
                        "traceback": _validation_tb(profile.validation_lines if profile else (1043, 818)),
                    },
                )
            ]
            validated[out] = (False, reasons)
        if ok:
            good.append(out)
            continue
        failed.append((out, reasons))
        for node_id, (node_ok, node_reasons) in validated.items():
            if not node_ok and node_reasons:
                entry = node_errors.setdefault(
                    node_id,
                    {
                        "errors": node_reasons,
                        "dependent_outputs": [],
                        "class_type": prompt[node_id]["class_type"],
                    },
                )
                entry["dependent_outputs"].append(out)
    if not good:
        details = "\n".join(f"{e['message']}: {e['details']}" for _, errs in failed for e in errs)
        return (
            False,
            _error("prompt_outputs_failed_validation", "Prompt outputs failed validation", details),
            [],
            node_errors,
        )
    return True, None, good, node_errors


def execution_order(prompt: dict[str, Any], outputs: list[str]) -> list[str]:
    """Topological order of the nodes the outputs depend on (dependencies first)."""
    order: list[str] = []
    seen: set[str] = set()

    def visit(node_id: str) -> None:
        if node_id in seen:
            return
        seen.add(node_id)
        for val in prompt[node_id].get("inputs", {}).values():
            if isinstance(val, list) and len(val) == 2 and val[0] in prompt:
                visit(val[0])
        order.append(node_id)

    for out in sorted(outputs, key=lambda x: (len(x), x)):
        visit(out)
    return order


def signatures(prompt: dict[str, Any], classes: dict[str, NodeClass]) -> dict[str, str]:
    """Cache keys per node: class, constant inputs and upstream keys (node id for unique_id nodes)."""
    memo: dict[str, str] = {}

    def sig(node_id: str) -> str:
        if node_id in memo:
            return memo[node_id]
        node = prompt[node_id]
        cls = classes.get(node["class_type"])
        parts = [node["class_type"]]
        if cls is not None and cls.unique_id_input:
            parts.append(f"#{node_id}")
        for name, val in sorted(node.get("inputs", {}).items()):
            if isinstance(val, list) and len(val) == 2 and val[0] in prompt:
                parts.append(f"{name}=<{sig(val[0])}>[{val[1]}]")
            else:
                parts.append(f"{name}={val!r}")
        memo[node_id] = "|".join(parts)
        return memo[node_id]

    return {node_id: sig(node_id) for node_id in prompt}
