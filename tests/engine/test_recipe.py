"""Recipe parsing, validation errors, canonical form, recipe hash and merge key."""

from __future__ import annotations

import copy
import json

import pytest

from merges.engine.recipe import RecipeError, canonical_json, merge_key, parse_recipe, recipe_hash, resolve_inputs

SHA_A = "a" * 64
SHA_B = "b" * 64
SHA_C = "c" * 64

YAML = """
format: mergeworks/recipe@1
architecture: sd1
inputs:
  base:  {sha256: "%s"}
  anime: {model_version: 456}
  style: {path: loras/style.safetensors}
steps:
  - {id: mix,  op: weighted_sum, inputs: [base, anime], alpha: 0.4}
  - {id: tune, op: weighted_sum, inputs: [mix, anime], alpha: {blocks: [%s]}}
  - {id: out,  op: apply_lora,   inputs: [tune, style], strength: 0.7}
output: {step: out, dtype: fp16}
preview: {prompts: ["a cat"], negative: "blurry", seeds: [1, 2, 3], steps: 20, cfg: 7.0, size: [512, 512]}
""" % (SHA_A.upper(), ", ".join(["0.5"] * 26))


def doc() -> dict:
    return {
        "format": "mergeworks/recipe@1",
        "architecture": "sd1",
        "inputs": {"a": {"sha256": SHA_A}, "b": {"sha256": SHA_B}},
        "steps": [{"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 0.5}],
        "output": {"step": "m"},
    }


def errors_of(source) -> list[tuple[str, str]]:
    with pytest.raises(RecipeError) as info:
        parse_recipe(source)
    return info.value.errors


def test_yaml_and_json_give_the_same_canonical_form() -> None:
    from_yaml = parse_recipe(YAML)
    from_json = parse_recipe(json.dumps(from_yaml.doc))
    assert from_yaml.canonical_json() == from_json.canonical_json()
    assert from_yaml.hash() == recipe_hash(YAML) == from_json.hash()
    assert from_yaml.inputs["base"] == {"sha256": SHA_A}  # hex lower-cased


def test_defaults_are_filled_and_numbers_normalised() -> None:
    d = doc()
    d["steps"][0]["alpha"] = 0  # int, becomes 0.0
    r = parse_recipe(d)
    assert r.doc["output"]["dtype"] == "fp16"
    assert r.doc["seed"] == 0
    step = r.doc["steps"][0]
    assert step["alpha"] == 0.0 and isinstance(step["alpha"], float)
    assert '"alpha":0.0' in r.canonical_json()
    d["steps"][0]["alpha"] = -0.0
    assert parse_recipe(d).canonical_json() == r.canonical_json()
    ties = doc()
    ties["inputs"]["c"] = {"sha256": SHA_C}
    ties["steps"] = [{"id": "t", "op": "ties", "inputs": ["a", "b", "c"]}]
    ties["output"] = {"step": "t"}
    step = parse_recipe(ties).doc["steps"][0]
    assert step["weights"] == [1.0, 1.0] and step["density"] == 0.2 and step["alpha"] == 1.0


def test_canonical_json_is_sorted_and_compact() -> None:
    shuffled = dict(reversed(list(doc().items())))
    text = canonical_json(shuffled)
    assert text == canonical_json(doc())
    assert ", " not in text and ": " not in text
    parsed = json.loads(text)
    assert list(parsed) == sorted(parsed)


def test_hash_changes_with_content() -> None:
    d = doc()
    d["steps"][0]["alpha"] = 0.25
    assert recipe_hash(d) != recipe_hash(doc())


def test_block_count_error_names_step_and_field() -> None:
    text = YAML.replace(", ".join(["0.5"] * 26), ", ".join(["0.5"] * 25))
    assert ("steps[1].alpha", "expected 26 block weights for sd1, got 25") in errors_of(text)


def test_sdxl_takes_20_block_weights() -> None:
    d = doc()
    d["architecture"] = "sdxl"
    d["steps"][0]["alpha"] = {"blocks": [0.1] * 20}
    assert parse_recipe(d).doc["steps"][0]["alpha"] == {"blocks": [0.1] * 20}
    d["steps"][0]["alpha"] = {"blocks": [0.1] * 26}
    assert ("steps[0].alpha", "expected 20 block weights for sdxl, got 26") in errors_of(d)


def test_block_weights_not_defined_for_flux() -> None:
    d = doc()
    d["architecture"] = "flux"
    d["steps"][0]["alpha"] = {"blocks": [0.1] * 26}
    assert any(p == "steps[0].alpha.blocks" and "flux" in m for p, m in errors_of(d))


def test_every_error_is_reported_with_its_path() -> None:
    d = doc()
    d["inputs"]["c"] = {"sha256": SHA_C}
    d["steps"] = [
        {"id": "m", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": 1.5},  # out of range
        {"id": "m", "op": "weighted_sum", "inputs": ["m2", "nope"]},  # duplicate id, dangling ref
        {"id": "x", "op": "frobnicate", "inputs": ["a"]},  # unknown op
        {"id": "y", "op": "add_difference", "inputs": ["a", "b"]},  # wrong input count
        {"id": "z", "op": "weighted_sum", "inputs": ["a", "b"], "beta": 0.1},  # unknown param
        {"id": "w", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": {"blocks": [0.1] * 26 + ["x"]}},
    ]
    d["output"] = {"step": "missing"}
    errs = dict(errors_of(d))
    assert errs["steps[0].alpha"] == "1.5 is out of range [0, 1]"
    assert errs["steps[1].id"] == "duplicate step id 'm' (also steps[0])"
    assert "'m2' is neither an input nor a step" in errs["steps[1].inputs[0]"]
    assert "'nope' is neither an input nor a step" in errs["steps[1].inputs[1]"]
    assert errs["steps[2].op"].startswith("unknown op 'frobnicate'")
    assert errs["steps[3].inputs"] == "add_difference takes 3 inputs, got 2"
    assert errs["steps[4].beta"] == "unknown parameter for weighted_sum"
    assert errs["steps[5].alpha"] == "expected 26 block weights for sd1, got 27"
    assert "expected a number" in errs["steps[5].alpha.blocks[26]"]
    assert errs["output.step"] == "no step has id 'missing'"


def test_cycles_are_found() -> None:
    d = doc()
    d["steps"] = [
        {"id": "p", "op": "weighted_sum", "inputs": ["a", "q"]},
        {"id": "q", "op": "weighted_sum", "inputs": ["p", "b"]},
        {"id": "s", "op": "weighted_sum", "inputs": ["s", "b"]},
    ]
    msgs = [m for p, m in errors_of(d)]
    assert any("cyclic reference: p -> q -> p" in m for m in msgs)
    assert any("cyclic reference" in m and "s" in m for m in msgs)


def test_output_step_is_required() -> None:
    d = doc()
    del d["output"]
    assert any(p == "output" for p, _ in errors_of(d))
    d["output"] = {"dtype": "fp16"}
    assert any(p == "output.step" and "missing" in m for p, m in errors_of(d))


def test_value_kinds_between_steps() -> None:
    d = doc()
    d["steps"] = [
        {"id": "l", "op": "merge_loras", "inputs": ["a", "b"]},
        {"id": "m", "op": "weighted_sum", "inputs": ["l", "b"]},
        {"id": "n", "op": "apply_lora", "inputs": ["m", "m"]},
    ]
    d["output"] = {"step": "n"}
    errs = dict(errors_of(d))
    assert errs["steps[1].inputs[0]"] == "weighted_sum needs a checkpoint here, step 'l' gives a lora"
    assert errs["steps[2].inputs[1]"] == "apply_lora needs a lora here, step 'm' gives a checkpoint"


@pytest.mark.parametrize(
    ("spec", "path"),
    [
        ({"sha256": "xyz"}, "inputs.a.sha256"),
        ({"sha256": 1234}, "inputs.a.sha256"),
        ({"model_version": 0}, "inputs.a.model_version"),
        ({"model_version": True}, "inputs.a.model_version"),
        ({"path": ""}, "inputs.a.path"),
        ({"url": "http://x"}, "inputs.a.url"),
        ({"sha256": SHA_A, "path": "x"}, "inputs.a"),
    ],
)
def test_input_sources(spec: dict, path: str) -> None:
    d = doc()
    d["inputs"]["a"] = spec
    assert any(p == path for p, _ in errors_of(d))


def test_merge_loras_parameters() -> None:
    d = doc()
    d["steps"] = [{"id": "l", "op": "merge_loras", "inputs": ["a", "b"], "mode": "sum", "target_rank": 8, "weights": [1, 0.5]}]
    d["output"] = {"step": "l"}
    step = parse_recipe(d).doc["steps"][0]
    assert step == {"id": "l", "op": "merge_loras", "inputs": ["a", "b"], "mode": "sum", "target_rank": 8, "weights": [1.0, 0.5]}
    d["steps"][0].update(mode="avg", target_rank=0, weights=[1])
    errs = dict(errors_of(d))
    assert set(errs) == {"steps[0].mode", "steps[0].target_rank", "steps[0].weights"}


def test_unknown_top_level_field_and_format() -> None:
    d = doc()
    d["format"] = "other@2"
    d["colour"] = "red"
    errs = dict(errors_of(d))
    assert "format" in errs and errs["colour"] == "unknown field"


def test_duplicate_keys_and_aliases_are_refused() -> None:
    dup_yaml = YAML.replace("architecture: sd1", "architecture: sd1\narchitecture: sdxl")
    assert any("duplicate key 'architecture'" in m for _, m in errors_of(dup_yaml))
    dup_json = '{"format": "mergeworks/recipe@1", "format": "x"}'
    assert any("duplicate key 'format'" in m for _, m in errors_of(dup_json))
    bomb = "a: &x [1, 2]\nb: [*x, *x]\n"
    assert any("aliases" in m for _, m in errors_of(bomb))
    assert any("larger than" in m for _, m in errors_of("#" * (300 * 1024)))


def test_preview_defaults_and_checks() -> None:
    d = doc()
    d["preview"] = {"prompts": ["a cat"]}
    assert parse_recipe(d).doc["preview"] == {
        "prompts": ["a cat"],
        "negative": "",
        "seeds": [1],
        "steps": 20,
        "cfg": 7.0,
        "size": [512, 512],
    }
    d["preview"] = {"prompts": [], "size": [500, 512], "steps": 0}
    errs = dict(errors_of(d))
    assert {"preview.prompts", "preview.size", "preview.steps"} <= set(errs)


def test_needed_steps_and_inputs() -> None:
    r = parse_recipe(YAML)
    assert [s.id for s in r.needed_steps()] == ["mix", "tune", "out"]
    assert r.needed_inputs() == ["base", "anime", "style"]


def test_merge_key() -> None:
    r = parse_recipe(YAML)
    shas = {"base": SHA_A, "anime": SHA_B, "style": SHA_C}
    key = merge_key(r, shas, "0.1.0")
    assert len(key) == 64
    assert merge_key(YAML, shas, "0.1.0") == key
    assert merge_key(r, shas, "0.2.0") != key
    assert merge_key(r, {**shas, "anime": "d" * 64}, "0.1.0") != key
    seeded = copy.deepcopy(dict(r.doc))
    seeded["seed"] = 5
    assert merge_key(seeded, shas, "0.1.0") != key
    fp32 = copy.deepcopy(dict(r.doc))
    fp32["output"]["dtype"] = "fp32"
    assert merge_key(fp32, shas, "0.1.0") != key
    # The preview does not change the weights.
    other_preview = copy.deepcopy(dict(r.doc))
    other_preview["preview"]["prompts"] = ["a dog"]
    assert merge_key(other_preview, shas, "0.1.0") == key
    # Nor does a step the output does not use.
    extra = copy.deepcopy(dict(r.doc))
    extra["steps"].append({"id": "unused", "op": "weighted_sum", "inputs": ["base", "anime"]})
    assert merge_key(extra, shas, "0.1.0") == key
    # The same files named differently in the recipe: model_version vs sha256 pin.
    pinned = copy.deepcopy(dict(r.doc))
    pinned["inputs"]["anime"] = {"sha256": SHA_B}
    assert merge_key(pinned, shas, "0.1.0") == key


def test_merge_key_needs_every_used_input_resolved_and_pins_to_match() -> None:
    r = parse_recipe(YAML)
    with pytest.raises(RecipeError) as info:
        merge_key(r, {"base": SHA_A}, "0.1.0")
    assert {p for p, _ in info.value.errors} == {"inputs.anime", "inputs.style"}
    with pytest.raises(RecipeError) as info:
        merge_key(r, {"base": SHA_B, "anime": SHA_B, "style": SHA_C}, "0.1.0")
    assert info.value.errors[0][0] == "inputs.base" and "pins" in info.value.errors[0][1]


def test_resolve_inputs_drops_unused_parts() -> None:
    d = doc()
    d["inputs"]["c"] = {"model_version": 3}
    d["steps"].append({"id": "unused", "op": "weighted_sum", "inputs": ["a", "c"]})
    resolved = resolve_inputs(d, {})
    assert resolved.inputs == {"a": {"sha256": SHA_A}, "b": {"sha256": SHA_B}}
    assert [s.id for s in resolved.steps] == ["m"]
