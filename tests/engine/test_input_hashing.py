"""Inputs hashed while the merge runs (header completed at the end) and the A1111-style hash cache."""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pytest

from merges.engine import executor as executor_module
from merges.engine.executor import MergeError, execute
from merges.engine.hash_cache import HashCache

from .merge_fixtures import SLICE, checkpoint, leftovers, recipe, write


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.fixture
def inputs(tmp_path: Path) -> dict[str, Path]:
    a = write(tmp_path / "a.safetensors", checkpoint(1), {"sd_merge_models": json.dumps({"e" * 64: {"name": "older"}})})
    b = write(tmp_path / "b.safetensors", checkpoint(2))
    return {"a": a, "b": b}


def _recipe(**extra) -> dict:
    return recipe([{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.3}], ["a", "b"], **extra)


def test_hashing_during_the_merge_writes_the_same_bytes_as_known_hashes(tmp_path, inputs) -> None:
    known = {name: sha256_of(p) for name, p in inputs.items()}
    first = execute(_recipe(), inputs, tmp_path / "known.safetensors", input_sha256s=known, chunk_elems=SLICE)
    second = execute(_recipe(), inputs, tmp_path / "in-pass.safetensors", chunk_elems=SLICE)
    assert (tmp_path / "in-pass.safetensors").read_bytes() == (tmp_path / "known.safetensors").read_bytes()
    assert second.input_sha256s == known and second.merge_key == first.merge_key
    # The output hash streamed from the final header, not the placeholder one.
    assert second.sha256 == first.sha256 == sha256_of(tmp_path / "in-pass.safetensors")
    assert leftovers(tmp_path, {"a.safetensors", "b.safetensors", "known.safetensors", "in-pass.safetensors"}) == []


def test_the_same_file_twice_changes_the_header_length_and_the_data_is_moved_to_fit(tmp_path, inputs) -> None:
    # Both inputs are one file: their provenance entries merge into one, so the final header is
    # shorter than the placeholder one.
    same = {"a": inputs["a"], "b": inputs["a"]}
    sha = sha256_of(inputs["a"])
    first = execute(_recipe(), same, tmp_path / "known.safetensors", input_sha256s={"a": sha, "b": sha})
    second = execute(_recipe(), same, tmp_path / "in-pass.safetensors")
    assert (tmp_path / "in-pass.safetensors").read_bytes() == (tmp_path / "known.safetensors").read_bytes()
    assert second.sha256 == first.sha256 == sha256_of(tmp_path / "known.safetensors")


def test_output_hashing_held_back_past_its_budget_still_hashes_right(tmp_path, inputs, monkeypatch) -> None:
    monkeypatch.setattr(executor_module._DeferredHeader, "HOLD_BYTES", 1)
    result = execute(_recipe(), inputs, tmp_path / "out.safetensors", output_hashes=True, chunk_elems=SLICE)
    assert result.sha256 == sha256_of(tmp_path / "out.safetensors")
    assert result.hashes["sha256"] == result.sha256


def test_a_pinned_hash_that_does_not_match_leaves_no_output(tmp_path, inputs) -> None:
    wrong = "f" * 64
    r = _recipe()
    r["inputs"]["b"] = {"sha256": wrong}
    with pytest.raises(MergeError) as err:
        execute(r, inputs, tmp_path / "out.safetensors", chunk_elems=SLICE)
    assert err.value.code == "input_hash" and wrong in str(err.value)
    assert not (tmp_path / "out.safetensors").exists()
    assert leftovers(tmp_path, {"a.safetensors", "b.safetensors"}) == []


def test_the_hash_cache_spares_the_next_run_and_notices_a_changed_file(tmp_path, inputs, monkeypatch) -> None:
    cache_file = tmp_path / "cache" / "hashes.json"
    execute(_recipe(), inputs, tmp_path / "one.safetensors", hash_cache=HashCache(cache_file))
    entries = json.loads(cache_file.read_text())["entries"]
    assert {e["sha256"] for e in entries.values()} == {sha256_of(p) for p in inputs.values()}

    started: list[str] = []
    real_start = executor_module._InputHash.start
    monkeypatch.setattr(executor_module._InputHash, "start", lambda self: (started.append(self.path), real_start(self)))
    execute(_recipe(), inputs, tmp_path / "two.safetensors", hash_cache=HashCache(cache_file))
    assert started == []
    assert (tmp_path / "two.safetensors").read_bytes() == (tmp_path / "one.safetensors").read_bytes()

    # A rewritten input (new bytes, new mtime) is hashed again, never taken from the cache.
    write(inputs["b"], checkpoint(3))
    st = os.stat(inputs["b"])
    os.utime(inputs["b"], ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))
    result = execute(_recipe(), inputs, tmp_path / "three.safetensors", hash_cache=HashCache(cache_file))
    assert started == [str(inputs["b"])]
    assert result.input_sha256s["b"] == sha256_of(inputs["b"])


def test_a_broken_cache_file_is_an_empty_cache(tmp_path, inputs) -> None:
    cache_file = tmp_path / "hashes.json"
    cache_file.write_text("{not json")
    cache = HashCache(cache_file)
    assert cache.get(inputs["a"]) is None
    execute(_recipe(), inputs, tmp_path / "out.safetensors", hash_cache=cache)
    assert HashCache(cache_file).get(inputs["a"]) == sha256_of(inputs["a"])


def test_the_cli_uses_the_cache_from_the_environment(tmp_path, inputs, monkeypatch, capsys) -> None:
    from merges.engine.cli import main

    cache_file = tmp_path / "env-cache.json"
    monkeypatch.setenv("MERGEWORKS_HASH_CACHE", str(cache_file))
    (tmp_path / "recipe.json").write_text(json.dumps(_recipe()))
    args = ["run", str(tmp_path / "recipe.json"), "-o", str(tmp_path / "cli.safetensors"), "--json",
            "--input", f"a={inputs['a']}", "--input", f"b={inputs['b']}"]
    assert main(args) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["sha256"] == sha256_of(tmp_path / "cli.safetensors")
    assert HashCache(cache_file).get(inputs["b"]) == sha256_of(inputs["b"])
