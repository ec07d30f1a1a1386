"""Recipe documents as the registry stores and shows them.

Validation is the engine's (`merges.engine.recipe`); this module adds what
people need around it: each error located on its line of the text they
typed, so the editor can show it there, and a readable rendering of the
stored document.
"""
from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import yaml

from merges.engine.recipe import Recipe, RecipeError, parse_recipe

_PATH_PART = re.compile(r"([^.\[\]]+)|\[(\d+)\]")
_LINE_IN_MESSAGE = re.compile(r"\(line (\d+)(?:, column \d+)?\)")
_YAML_MARK = re.compile(r"line (\d+), column \d+")


@dataclass(frozen=True)
class DocumentError:
    path: str
    message: str
    line: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"path": self.path, "message": self.message, "line": self.line}


class DocumentInvalid(ValueError):
    def __init__(self, errors: list[DocumentError]):
        self.errors = errors
        super().__init__("; ".join(f"{e.path}: {e.message}" if e.path else e.message for e in errors))


@dataclass(frozen=True)
class ParsedDocument:
    recipe: Recipe
    source: str

    @property
    def document(self) -> dict[str, Any]:
        return json.loads(self.recipe.canonical_json())

    @property
    def hash(self) -> str:
        return self.recipe.hash()


def _split_path(path: str) -> list[str | int]:
    parts: list[str | int] = []
    for name, index in _PATH_PART.findall(path):
        parts.append(int(index) if index else name)
    return parts


def _node_line(root: yaml.Node | None, path: str) -> int | None:
    """1-based line of the node at `path` (or of its nearest existing ancestor)."""
    node = root
    if node is None:
        return None
    line = node.start_mark.line + 1
    for part in _split_path(path):
        child = None
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                if isinstance(key_node, yaml.ScalarNode) and key_node.value == str(part):
                    # The key's line: a value may start on the next line (block style).
                    line = key_node.start_mark.line + 1
                    child = value_node
                    break
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int) and part < len(node.value):
            child = node.value[part]
            line = child.start_mark.line + 1
        if child is None:
            break
        node = child
    return line


def _compose(source: str) -> yaml.Node | None:
    try:
        return yaml.compose(source, Loader=yaml.SafeLoader)
    except yaml.YAMLError:
        return None


def _locate(source: str | None, errors: list[tuple[str, str]]) -> list[DocumentError]:
    root = _compose(source) if source else None
    located = []
    for path, message in errors:
        line = None
        if match := _LINE_IN_MESSAGE.search(message):
            line = int(match.group(1))
        elif marks := _YAML_MARK.findall(message):
            line = int(marks[-1])  # PyYAML names the context first and the problem last
        elif path:
            line = _node_line(root, path)
        located.append(DocumentError(path=path, message=message, line=line))
    return located


def document_parse(source: str | Mapping[str, Any]) -> ParsedDocument:
    """Validate a recipe given as JSON/YAML text or a mapping; raises DocumentInvalid."""
    text = source if isinstance(source, str) else document_text(source)
    try:
        recipe = parse_recipe(text)
    except RecipeError as exc:
        raise DocumentInvalid(_locate(text, exc.errors)) from exc
    return ParsedDocument(recipe=recipe, source=text)


def document_text(document: Mapping[str, Any]) -> str:
    """The stored document as people read and edit it: indented JSON, keys in schema order."""
    return _pretty(_ordered(document), 0) + "\n"


def _pretty(value: Any, depth: int) -> str:
    """Indented JSON, except that lists of numbers and strings stay on one line (block weights)."""
    pad, inner = "  " * depth, "  " * (depth + 1)
    if isinstance(value, Mapping) and value:
        items = [f"{inner}{json.dumps(str(k), ensure_ascii=False)}: {_pretty(v, depth + 1)}" for k, v in value.items()]
        return "{\n" + ",\n".join(items) + f"\n{pad}}}"
    if isinstance(value, list) and value and any(isinstance(v, (Mapping, list)) for v in value):
        items = [f"{inner}{_pretty(v, depth + 1)}" for v in value]
        return "[\n" + ",\n".join(items) + f"\n{pad}]"
    return json.dumps(value, ensure_ascii=False, separators=(", ", ": "))


_TOP_ORDER = ("format", "architecture", "inputs", "steps", "output", "seed", "preview")
_STEP_ORDER = ("id", "op", "inputs")


def _ordered(document: Mapping[str, Any]) -> dict[str, Any]:
    out: dict[str, Any] = {k: document[k] for k in _TOP_ORDER if k in document}
    out.update({k: v for k, v in document.items() if k not in out})
    if isinstance(out.get("steps"), list):
        out["steps"] = [
            {**{k: s[k] for k in _STEP_ORDER if k in s}, **{k: v for k, v in s.items() if k not in _STEP_ORDER}}
            if isinstance(s, Mapping)
            else s
            for s in out["steps"]
        ]
    return out
