"""Structural diffs of representative edits, against snapshots in tests/registry/snapshots/.

Set UPDATE_SNAPSHOTS=1 to rewrite the snapshots after an intended change, then
review the diff in git.
"""
from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import pytest

from merges.registry.diff import diff_summary, document_diff
from merges.registry.documents import document_parse

SNAPSHOTS = Path(__file__).parent / "snapshots"

BASE = {
    "format": "mergeworks/recipe@1",
    "architecture": "sd1",
    "inputs": {
        "base": {"model_version": 101},
        "anime": {"model_version": 202},
        "style": {"sha256": "ab" * 32},
    },
    "steps": [
        {"id": "mix", "op": "weighted_sum", "inputs": ["base", "anime"], "alpha": 0.4},
        {"id": "tune", "op": "weighted_sum", "inputs": ["mix", "anime"], "alpha": {"blocks": [0.5] * 26}},
    ],
    "output": {"step": "tune", "dtype": "fp16"},
}


def edit(fn):
    doc = copy.deepcopy(BASE)
    fn(doc)
    return doc


def _alpha(doc, value):
    doc["steps"][0]["alpha"] = value


def _blocks(doc):
    blocks = doc["steps"][1]["alpha"]["blocks"]
    blocks[0], blocks[5], blocks[13] = 0.2, 0.9, 0.75  # BASE, IN04, M00


def _swap_inputs(doc):
    doc["steps"][0]["inputs"] = ["anime", "base"]


def _replace_input(doc):
    doc["inputs"]["anime"] = {"model_version": 303}


def _add_lora(doc):
    doc["steps"].append({"id": "out", "op": "add_difference", "inputs": ["tune", "style", "base"], "alpha": 0.3})
    doc["output"]["step"] = "out"


def _remove_step(doc):
    doc["steps"] = [doc["steps"][0]]
    doc["output"] = {"step": "mix", "dtype": "fp32"}


def _scalar_to_blocks(doc):
    doc["steps"][0]["alpha"] = {"blocks": [0.4] * 12 + [0.8] + [0.4] * 13}


EDITS = {
    "identical": lambda doc: None,
    "scalar_param": lambda doc: _alpha(doc, 0.6),
    "block_weights": _blocks,
    "inputs_swapped": _swap_inputs,
    "input_replaced": _replace_input,
    "step_added": _add_lora,
    "step_removed_and_output_changed": _remove_step,
    "scalar_to_blocks": _scalar_to_blocks,
    "seed_and_preview": lambda doc: doc.update(seed=42, preview={"prompts": ["a cat"], "seeds": [1, 2]}),
}


@pytest.mark.parametrize("name", sorted(EDITS))
def test_diff_snapshot(name):
    old = document_parse(BASE).document
    new = document_parse(edit(EDITS[name])).document
    diff = document_diff(old, new)
    actual = {"diff": diff, "summary": diff_summary(diff)}
    path = SNAPSHOTS / f"diff_{name}.json"
    text = json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n"
    if os.environ.get("UPDATE_SNAPSHOTS") or not path.exists():
        SNAPSHOTS.mkdir(exist_ok=True)
        path.write_text(text)
        if not os.environ.get("UPDATE_SNAPSHOTS"):
            pytest.fail(f"wrote a new snapshot {path.name}; review and commit it")
    assert json.loads(path.read_text()) == actual, f"diff for {name!r} differs from {path.name}"


def test_identical_documents_written_differently_have_no_changes():
    yaml_text = (
        "format: mergeworks/recipe@1\narchitecture: sd1\n"
        "inputs:\n  anime: {model_version: 202}\n  base: {model_version: 101}\n  style: {sha256: '" + "AB" * 32 + "'}\n"
        "steps:\n  - {id: mix, op: weighted_sum, inputs: [base, anime], alpha: 0.40}\n"
        "  - {id: tune, op: weighted_sum, inputs: [mix, anime], alpha: {blocks: [" + ", ".join(["0.5"] * 26) + "]}}\n"
        "output: {step: tune}\nseed: 0\n"
    )
    a, b = document_parse(BASE), document_parse(yaml_text)
    assert a.hash == b.hash
    assert document_diff(a.document, b.document)["identical"] is True
