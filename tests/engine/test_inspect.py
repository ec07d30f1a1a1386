"""inspect_file on real-layout files, pickles under a false name, and hostile metadata."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save_file

from merges.engine.inspect import inspect_file, suggest_trigger_words, summarize_metadata
from merges.engine.safetensors_io import SafetensorsError
from merges.engine.tiny import save_single_file, tiny_sd1_components

from .lora_helpers import kohya_lora

TAGS = json.dumps({
    "10_sks dog": {"sks": 15, " dog": 10, "grass": 3, "1girl": 1},
    "5_extra": {"dog": 4, "sks": 1, "outdoors": 7},
})


@pytest.fixture(scope="module")
def components() -> dict:
    return tiny_sd1_components(seed=0)


def test_lora_file(tmp_path: Path, components: dict) -> None:
    lora = {k: v.half() if k.endswith("weight") else v for k, v in kohya_lora(components, "sd1").items()}
    path = tmp_path / "style.safetensors"
    metadata = {
        "ss_base_model_version": "sd_v1",
        "ss_network_module": "networks.lora",
        "ss_network_dim": "4",
        "ss_network_alpha": "2.0",
        "ss_output_name": "<script>alert(1)</script>",
        "ss_tag_frequency": TAGS,
        "ss_dataset_dirs": "{}",
    }
    save_file(lora, str(path), metadata=metadata)
    info = inspect_file(path)
    assert info["format"] == "safetensors"
    assert (info["kind"], info["architecture"]) == ("lora", "sd1")
    assert info["lora"] == {"kind": "locon", "base": "sd1", "rank": 4, "alpha": 2.0, "conv_rank": 2, "modules": 293}
    assert info["tensor_count"] == len(lora)
    assert info["parameters"] == sum(t.numel() for t in lora.values())
    assert info["dtypes"] == {"F16": 2 * 293, "F32": 293}
    assert info["dtype"] == "F16"
    assert info["hashes"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    meta = info["metadata"]
    # Values come back as text, unescaped: escaping is the renderer's job.
    assert meta["fields"]["ss_output_name"] == "<script>alert(1)</script>"
    assert meta["fields"]["ss_network_module"] == "networks.lora"
    assert "ss_tag_frequency" not in meta["fields"]
    # dog, grass, outdoors and 1girl are on too many Danbooru posts to say what was learnt.
    assert meta["trigger_words"] == ["sks"]
    assert "ss_dataset_dirs" in meta["keys"]
    assert info["warnings"] == []
    json.dumps(info)  # the CLI's --json and the ingest task store it as is


def test_checkpoint_file(tmp_path: Path, components: dict) -> None:
    path = save_single_file(components, tmp_path / "model.safetensors", "sd1", dtype=torch.float16)
    info = inspect_file(path, hashes=False)
    assert (info["kind"], info["architecture"], info["lora"]) == ("checkpoint", "sd1", None)
    assert info["dtype"] == "F16" and info["hashes"] is None
    assert info["metadata"]["merge_recipe"] is None


def test_metadata_disagreeing_with_tensors_is_flagged(tmp_path: Path, components: dict) -> None:
    path = tmp_path / "l.safetensors"
    save_file(kohya_lora(components, "sd1"), str(path), metadata={"ss_base_model_version": "sdxl_base_v1-0"})
    info = inspect_file(path, hashes=False)
    assert info["architecture"] == "sd1"
    assert info["warnings"] == ["metadata says sdxl, the tensors say sd1"]


class _Payload:
    """Unpickling this would create ``marker``: the test fails if that happens."""

    def __init__(self, marker: str) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.mkdir, (self.marker,))


@pytest.mark.parametrize("container", ["zip", "pickle"])
def test_pickle_named_safetensors_is_not_unpickled(tmp_path: Path, container: str) -> None:
    marker = tmp_path / "pwned"
    path = tmp_path / "innocent.safetensors"
    payload = {"state_dict": {"w": torch.zeros(2)}, "evil": _Payload(str(marker))}
    if container == "zip":
        torch.save(payload, path)
    else:
        path.write_bytes(pickle.dumps(payload, protocol=2))
    info = inspect_file(path)
    assert (info["format"], info["container"], info["kind"]) == ("pickle", container, "unknown")
    assert info["hashes"]["sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert info["hashes"]["autov3"] is None
    assert "can run code" in info["warnings"][0]
    assert not marker.exists()


def test_garbage_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "x.ckpt"
    path.write_bytes(b"\x00" * 100)
    with pytest.raises(SafetensorsError):
        inspect_file(path)
    zipped = tmp_path / "y.safetensors"
    with zipfile.ZipFile(zipped, "w") as z:
        z.writestr("readme.txt", "not a model")
    with pytest.raises(SafetensorsError):
        inspect_file(zipped)


def test_trigger_words_ranking_and_limit() -> None:
    tags = json.dumps({"10_kiri": {"kiri": 40, "1girl": 40, "solo": 39, "smile": 30, "red kimono": 20,
                                   "long_hair": 38, "Looking At Viewer": 25, "paper umbrella": 6}})
    assert suggest_trigger_words(tags) == ["kiri", "red kimono", "paper umbrella"]
    assert suggest_trigger_words(tags, limit=2) == ["kiri", "red kimono"]
    assert suggest_trigger_words(TAGS, limit=0) == []
    # A rarer tag outweighs a more frequent but commoner one (realistic: about 60,000 Danbooru posts).
    assert suggest_trigger_words(json.dumps({"d": {"realistic": 10, "zq_style": 9}})) == ["zq_style", "realistic"]
    # Nothing but generic tags: nothing to suggest.
    assert suggest_trigger_words(json.dumps({"d": {"1girl": 5, "highres": 5}})) == []
    # Equal totals: alphabetical, whatever the key order.
    assert suggest_trigger_words(json.dumps({"a": {"b": 2, "a": 2}})) == ["a", "b"]


@pytest.mark.parametrize(
    "garbage",
    [
        "",
        "not json",
        "{",
        "[1, 2, 3]",
        '"a string"',
        "null",
        '{"d": [1, 2]}',
        '{"d": {"tag": "12"}}',
        '{"d": {"tag": true}}',
        '{"d": {"tag": -5}}',
        '{"d": {"tag": NaN}}',
        '{"d": {"tag": Infinity}}',
        '{"d": {"tag": 1e999}}',
        '{"d": {"tag": ' + "9" * 4000 + "}}",
        '{"d": {"tag": ' + "9" * 5000 + "}}",
        "[" * 100_000 + "]" * 100_000,
        '{"d": {"' + "x" * 500 + '": 3}}',
        '{"d": {"bad\\u0000tag": 3}}',
        '{"d": {"   ": 3}}',
        json.dumps({"d": {f"t{i}": 1 for i in range(20)}}) + " " * (2 << 20),
    ],
)
def test_trigger_words_survive_garbage(garbage: str) -> None:
    assert suggest_trigger_words(garbage) == []


def test_merge_provenance() -> None:
    sha_a, sha_b = "a" * 64, "B" * 64
    recipe = {
        "type": "webui",
        "primary_model_hash": sha_a,
        "secondary_model_hash": sha_b,
        "tertiary_model_hash": None,
        "interp_method": "Weighted sum",
        "multiplier": 0.3,
        "save_as_half": True,
        "nested": {"dropped": 1},
        "weights_alpha": [0.1, 0.2],
        "custom_name": "x" * 10_000,
    }
    models = {
        sha_a: {"name": "base.safetensors", "legacy_hash": "1234abcd", "sd_merge_recipe": None},
        sha_b: {"name": "anime.safetensors", "legacy_hash": "99aa00bb", "sd_merge_recipe": recipe},
        "not-a-hash": {"name": "dropped"},
        "c" * 64: "not an object",
    }
    summary = summarize_metadata({"sd_merge_recipe": json.dumps(recipe), "sd_merge_models": json.dumps(models)})
    got = summary["merge_recipe"]
    assert got["interp_method"] == "Weighted sum" and got["multiplier"] == 0.3
    assert got["primary_model_hash"] == sha_a and got["tertiary_model_hash"] is None
    assert "nested" not in got and got["weights_alpha"] == [0.1, 0.2]
    assert len(got["custom_name"]) <= 513
    assert [m["sha256"] for m in summary["merge_models"]] == [sha_a, sha_b.lower()]
    assert summary["merge_models"][1]["recipe"]["multiplier"] == 0.3
    assert summary["warnings"] == []


@pytest.mark.parametrize("value", ["{broken", "[]", "1e999", "[" * 50_000 + "]" * 50_000, "{}" + " " * (1 << 20)])
def test_merge_provenance_garbage(value: str) -> None:
    summary = summarize_metadata({"sd_merge_recipe": value, "sd_merge_models": value})
    assert summary["merge_models"] is None
    assert summary["merge_recipe"] is None
    assert len(summary["warnings"]) == 2
