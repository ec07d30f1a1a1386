"""Structural differences between two recipe documents.

Works on validated documents (defaults filled), so a missing key and its
default never show up as a change. Steps are matched by `id`; block-weight
parameters (`{blocks: [...]}`) are compared block by block with the block
names of the document's architecture, and a scalar compared with block
weights counts as that value in every block.
"""
from __future__ import annotations

import json
from typing import Any

from merges.engine.blocks import BLOCK_NAMES

# Step fields that are structure rather than parameters.
_STEP_STRUCTURE = ("id", "op", "inputs")


def _blocks_of(value: Any) -> list[Any] | None:
    if isinstance(value, dict) and isinstance(value.get("blocks"), list):
        return value["blocks"]
    return None


def _block_changes(old: Any, new: Any, arch: str) -> list[dict[str, Any]] | None:
    """Per-block changes when either side is a block-weight list, else None."""
    old_blocks, new_blocks = _blocks_of(old), _blocks_of(new)
    if old_blocks is None and new_blocks is None:
        return None
    names = BLOCK_NAMES.get(arch) or []
    n = max(len(old_blocks or []), len(new_blocks or []))
    old_list = old_blocks if old_blocks is not None else [old] * n
    new_list = new_blocks if new_blocks is not None else [new] * n
    changes = []
    for i in range(n):
        a = old_list[i] if i < len(old_list) else None
        b = new_list[i] if i < len(new_list) else None
        if a != b:
            changes.append({"block": names[i] if i < len(names) else str(i), "index": i, "old": a, "new": b})
    return changes


def _param_changes(old: dict[str, Any], new: dict[str, Any], arch: str, skip: tuple[str, ...] = ()) -> list[dict]:
    changes: list[dict[str, Any]] = []
    for key in sorted(set(old) | set(new)):
        if key in skip:
            continue
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        blocks = _block_changes(a, b, arch)
        if blocks is not None:
            change: dict[str, Any] = {"field": key, "kind": "blocks", "blocks": blocks}
            if _blocks_of(a) is None or _blocks_of(b) is None:
                change.update(old=a, new=b)
            changes.append(change)
        elif isinstance(a, dict) and isinstance(b, dict):
            for nested in _param_changes(a, b, arch):
                changes.append({**nested, "field": f"{key}.{nested['field']}"})
        else:
            changes.append({"field": key, "kind": "value", "old": a, "new": b})
    return changes


def _inputs_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list]:
    added = [{"name": k, "ref": new[k]} for k in sorted(set(new) - set(old))]
    removed = [{"name": k, "ref": old[k]} for k in sorted(set(old) - set(new))]
    changed = [{"name": k, "old": old[k], "new": new[k]} for k in sorted(set(old) & set(new)) if old[k] != new[k]]
    return {"added": added, "removed": removed, "changed": changed}


def _step_summary(step: dict[str, Any]) -> dict[str, Any]:
    return {"id": step.get("id"), "op": step.get("op"), "inputs": step.get("inputs", [])}


def _steps_diff(old: list[dict], new: list[dict], arch: str) -> dict[str, Any]:
    old_by_id = {s.get("id"): s for s in old}
    new_by_id = {s.get("id"): s for s in new}
    added = [_step_summary(s) for s in new if s.get("id") not in old_by_id]
    removed = [_step_summary(s) for s in old if s.get("id") not in new_by_id]
    changed = []
    for step in new:
        sid = step.get("id")
        before = old_by_id.get(sid)
        if before is None or before == step:
            continue
        changes: list[dict[str, Any]] = []
        if before.get("op") != step.get("op"):
            changes.append({"field": "op", "kind": "value", "old": before.get("op"), "new": step.get("op")})
        a_in, b_in = list(before.get("inputs", [])), list(step.get("inputs", []))
        if a_in != b_in:
            kind = "swapped" if sorted(map(str, a_in)) == sorted(map(str, b_in)) else "inputs"
            changes.append({"field": "inputs", "kind": kind, "old": a_in, "new": b_in})
        changes.extend(_param_changes(before, step, arch, skip=_STEP_STRUCTURE))
        changed.append({"id": sid, "op": step.get("op"), "changes": changes})
    common_old = [s.get("id") for s in old if s.get("id") in new_by_id]
    common_new = [s.get("id") for s in new if s.get("id") in old_by_id]
    return {"added": added, "removed": removed, "changed": changed, "reordered": common_old != common_new}


def document_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The structural diff of two validated recipe documents (JSON-serialisable)."""
    arch = str(new.get("architecture") or old.get("architecture") or "")
    result: dict[str, Any] = {"identical": old == new}
    result["architecture"] = (
        {"old": old.get("architecture"), "new": new.get("architecture")}
        if old.get("architecture") != new.get("architecture")
        else None
    )
    result["inputs"] = _inputs_diff(old.get("inputs") or {}, new.get("inputs") or {})
    result["steps"] = _steps_diff(old.get("steps") or [], new.get("steps") or [], arch)
    known = {"format", "architecture", "inputs", "steps"}
    other: list[dict[str, Any]] = []
    for key in sorted((set(old) | set(new)) - known):
        a, b = old.get(key), new.get(key)
        if a == b:
            continue
        if isinstance(a, dict) and isinstance(b, dict):
            other.extend({**c, "field": f"{key}.{c['field']}"} for c in _param_changes(a, b, arch))
        else:
            other.append({"field": key, "kind": "value", "old": a, "new": b})
    if old.get("format") != new.get("format"):
        other.insert(0, {"field": "format", "kind": "value", "old": old.get("format"), "new": new.get("format")})
    result["other"] = other
    return result


def diff_summary(diff: dict[str, Any]) -> list[str]:
    """One line per change, for people (the website, the CLI and snapshot tests)."""
    lines: list[str] = []
    if diff["identical"]:
        return ["no changes"]
    if diff["architecture"]:
        lines.append(f"architecture: {diff['architecture']['old']} → {diff['architecture']['new']}")
    for item in diff["inputs"]["added"]:
        lines.append(f"+ input {item['name']}: {_ref(item['ref'])}")
    for item in diff["inputs"]["removed"]:
        lines.append(f"- input {item['name']}: {_ref(item['ref'])}")
    for item in diff["inputs"]["changed"]:
        lines.append(f"~ input {item['name']}: {_ref(item['old'])} → {_ref(item['new'])}")
    for step in diff["steps"]["added"]:
        lines.append(f"+ step {step['id']} ({step['op']} of {', '.join(map(str, step['inputs']))})")
    for step in diff["steps"]["removed"]:
        lines.append(f"- step {step['id']} ({step['op']} of {', '.join(map(str, step['inputs']))})")
    for step in diff["steps"]["changed"]:
        for change in step["changes"]:
            lines.extend(_change_lines(f"steps.{step['id']}.{change['field']}", change))
    if diff["steps"]["reordered"]:
        lines.append("~ steps reordered")
    for change in diff["other"]:
        lines.extend(_change_lines(change["field"], change))
    return lines


def _ref(ref: Any) -> str:
    if isinstance(ref, dict) and len(ref) == 1:
        (k, v), = ref.items()
        return f"{k} {str(v)[:12] if k == 'sha256' else v}"
    return str(ref)


def _fmt(value: Any) -> str:
    if isinstance(value, dict) and "blocks" in value:
        return f"blocks[{len(value['blocks'])}]"
    if value is None:
        return "(none)"
    if isinstance(value, (dict, list)):
        return json.dumps(value, sort_keys=True, ensure_ascii=False, separators=(", ", ": "))
    return str(value)


def _change_lines(label: str, change: dict[str, Any]) -> list[str]:
    if change["kind"] == "blocks":
        head = [f"~ {label}: {_fmt(change['old'])} → {_fmt(change['new'])}"] if "old" in change else []
        return head + [f"~ {label}[{b['block']}]: {b['old']} → {b['new']}" for b in change["blocks"]]
    if change["kind"] == "swapped":
        return [f"~ {label} swapped: {', '.join(map(str, change['old']))} → {', '.join(map(str, change['new']))}"]
    return [f"~ {label}: {_fmt(change['old'])} → {_fmt(change['new'])}"]
