"""Hostile inputs to a merge: each is a clear error and leaves no output behind."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import torch

from merges.engine import hostile
from merges.engine.executor import MergeError, execute
from merges.engine.recipe import RecipeError
from merges.engine.safetensors_io import SafetensorsError, SafetensorsReader

from .merge_fixtures import checkpoint, leftovers, recipe, write

WEIGHTED = recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"]}], ["a", "b"])


@pytest.fixture
def good(tmp_path: Path) -> Path:
    return write(tmp_path / "a.safetensors", checkpoint(1))


@pytest.fixture
def no_tensor_reads(monkeypatch) -> None:
    """Fail the test if any tensor byte is read (refusals must come first)."""

    def boom(*args, **kwargs):
        raise AssertionError("a tensor was read before the inputs were refused")

    monkeypatch.setattr(SafetensorsReader, "read_bytes_into", boom)


def _assert_clean(tmp_path: Path, *inputs: str) -> None:
    assert leftovers(tmp_path, set(inputs)) == []


@pytest.mark.parametrize("case", sorted(hostile.SAFETENSORS_CASES))
def test_hostile_file_as_a_merge_input(tmp_path, good, no_tensor_reads, case) -> None:
    code, make = hostile.SAFETENSORS_CASES[case]
    (tmp_path / "b.safetensors").write_bytes(make())
    with pytest.raises(SafetensorsError) as info:
        execute(WEIGHTED, {"a": good, "b": tmp_path / "b.safetensors"}, tmp_path / "out.safetensors")
    assert info.value.code == code
    assert "'b'" in str(info.value)  # names the input
    _assert_clean(tmp_path, "a.safetensors", "b.safetensors")


def test_pickle_renamed_to_safetensors_is_never_unpickled(tmp_path, good, no_tensor_reads) -> None:
    marker = tmp_path / "pwned"
    bomb = tmp_path / "b.safetensors"
    bomb.write_bytes(hostile.pickle_bomb(f"touch {marker}"))
    with pytest.raises(SafetensorsError) as info:
        execute(WEIGHTED, {"a": good, "b": bomb}, tmp_path / "out.safetensors")
    assert info.value.code == "not_safetensors"
    assert "pickle" in str(info.value)
    assert not marker.exists()
    zipped = tmp_path / "c.safetensors"
    zipped.write_bytes(hostile.zip_checkpoint(f"touch {marker}"))
    with pytest.raises(SafetensorsError) as info:
        execute(WEIGHTED, {"a": good, "b": zipped}, tmp_path / "out.safetensors")
    assert info.value.code == "not_safetensors" and "zip" in str(info.value)
    assert not marker.exists()
    _assert_clean(tmp_path, "a.safetensors", "b.safetensors", "c.safetensors")


def test_truncated_after_validation_fails_cleanly(tmp_path, good) -> None:
    """A file cut short while the merge runs: an error, and no partial output."""
    b = write(tmp_path / "b.safetensors", checkpoint(2))
    calls = []

    def truncate_midway() -> bool:
        calls.append(1)
        if len(calls) == 3:
            os.truncate(b, b.stat().st_size // 2)
        return False

    with pytest.raises(SafetensorsError) as info:
        execute(WEIGHTED, {"a": good, "b": b}, tmp_path / "out.safetensors", should_cancel=truncate_midway)
    assert info.value.code == "truncated"
    _assert_clean(tmp_path, "a.safetensors", "b.safetensors")


def test_mismatched_architectures_are_refused_before_reading(tmp_path, good, no_tensor_reads) -> None:
    write(tmp_path / "b.safetensors", checkpoint(2, arch="sdxl"))
    with pytest.raises(RecipeError) as info:
        execute(WEIGHTED, {"a": good, "b": tmp_path / "b.safetensors"}, tmp_path / "out.safetensors")
    assert info.value.errors == [("inputs.b", "is an sdxl checkpoint, the recipe is for sd1")]
    _assert_clean(tmp_path, "a.safetensors", "b.safetensors")


def test_lora_of_another_base_is_refused_before_reading(tmp_path, good, no_tensor_reads) -> None:
    lora = {
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_down.weight": torch.zeros(2, 8),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.lora_up.weight": torch.zeros(16, 2),
        "lora_te1_text_model_encoder_layers_0_mlp_fc1.alpha": torch.tensor(2.0),
    }
    write(tmp_path / "style.safetensors", lora)
    r = recipe([{"id": "m", "op": "apply_lora", "inputs": ["a", "style"]}], ["a", "style"])
    with pytest.raises(RecipeError) as info:
        execute(r, {"a": good, "style": tmp_path / "style.safetensors"}, tmp_path / "out.safetensors")
    assert info.value.errors == [("inputs.style", "is a LoRA for sdxl, the recipe is for sd1")]
    _assert_clean(tmp_path, "a.safetensors", "style.safetensors")


def test_lora_keys_that_match_nothing_are_listed(tmp_path, good) -> None:
    names = ["lora_unet_down_blocks_7_attentions_0_proj_in", "lora_te_text_model_encoder_layers_0_mlp_fc9"]
    lora = {}
    for n in names:
        lora[f"{n}.lora_down.weight"] = torch.zeros(2, 8)
        lora[f"{n}.lora_up.weight"] = torch.zeros(8, 2)
    write(tmp_path / "style.safetensors", lora)
    r = recipe([{"id": "m", "op": "apply_lora", "inputs": ["a", "style"]}], ["a", "style"])
    with pytest.raises(MergeError) as info:
        execute(r, {"a": good, "style": tmp_path / "style.safetensors"}, tmp_path / "out.safetensors")
    assert info.value.code == "lora_keys_unmatched"
    for n in names:
        assert n in str(info.value)
    _assert_clean(tmp_path, "a.safetensors", "style.safetensors")


def test_vae_or_unknown_file_is_not_a_merge_input(tmp_path, good, no_tensor_reads) -> None:
    write(tmp_path / "b.safetensors", {"encoder.conv_in.weight": torch.zeros(2, 2), "decoder.conv_in.weight": torch.zeros(2, 2)})
    with pytest.raises(RecipeError) as info:
        execute(WEIGHTED, {"a": good, "b": tmp_path / "b.safetensors"}, tmp_path / "out.safetensors")
    assert info.value.errors == [("inputs.b", "is a vae file, not a checkpoint or LoRA")]


def test_missing_output_directory(tmp_path, good) -> None:
    write(tmp_path / "b.safetensors", checkpoint(2))
    with pytest.raises(MergeError) as info:
        execute(WEIGHTED, {"a": good, "b": tmp_path / "b.safetensors"}, tmp_path / "nowhere" / "out.safetensors")
    assert info.value.code == "bad_output"
