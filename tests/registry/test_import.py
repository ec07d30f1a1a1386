"""A checkpoint carrying A1111's `sd_merge_recipe` becomes a draft recipe."""
from __future__ import annotations

import json

import pytest

from merges.registry.models import Recipe
from tests.registry.test_api import client_for
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db


def merged_file(owner, recipe: dict, models: dict | None = None):
    metadata = {"sd_merge_recipe": json.dumps(recipe)}
    if models is not None:
        metadata["sd_merge_models"] = json.dumps(models)
    model = make_published_model(owner, "Someone's Merge", data=tiny_safetensors_bytes(42, metadata=metadata))
    return model.versions.get().files.get()


def test_weighted_sum_becomes_a_private_draft_with_inputs_matched_by_sha256(alice, sd1_inputs):
    base, anime = sd1_inputs
    a, b = base.files.get().sha256, anime.files.get().sha256
    model_file = merged_file(
        alice,
        {"type": "webui", "primary_model_hash": a, "secondary_model_hash": b, "tertiary_model_hash": None,
         "interp_method": "Weighted sum", "multiplier": 0.35, "save_as_half": True},
    )
    response = client_for(alice, ["upload"]).post("/api/v1/recipes/import", {"fileId": model_file.pk}, format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert body["notes"] == []
    recipe = Recipe.objects.get(pk=body["recipe"]["id"])
    assert recipe.visibility == "private" and recipe.owner == alice
    document = recipe.versions.get().document
    assert document["inputs"] == {"primary": {"model_version": base.pk}, "secondary": {"model_version": anime.pk}}
    assert document["steps"] == [
        {"id": "merge", "op": "weighted_sum", "inputs": ["primary", "secondary"], "alpha": 0.35}
    ]
    assert document["output"] == {"step": "merge", "dtype": "fp16"}


def test_add_difference_keeps_unknown_inputs_as_sha256_with_a_note(alice, sd1_inputs):
    base, anime = sd1_inputs
    unknown = "cd" * 32
    model_file = merged_file(
        alice,
        {"type": "webui", "primary_model_hash": base.files.get().sha256, "secondary_model_hash": anime.files.get().sha256,
         "tertiary_model_hash": unknown, "interp_method": "Add difference", "multiplier": 0.7},
        models={unknown: {"name": "sd-v1-5-pruned.safetensors", "legacy_hash": "abcd1234"}},
    )
    body = client_for(alice, ["upload"]).post(
        "/api/v1/recipes/import", {"modelVersionId": model_file.version_id}, format="json"
    ).json()
    document = Recipe.objects.get(pk=body["recipe"]["id"]).versions.get().document
    assert document["inputs"]["tertiary"] == {"sha256": unknown}
    assert document["steps"][0]["op"] == "add_difference" and document["steps"][0]["alpha"] == 0.7
    assert body["notes"] == [
        "input tertiary (sd-v1-5-pruned.safetensors) is not on the hub; upload it before running this recipe"
    ]


def test_unsupported_methods_and_plain_files_are_refused(alice):
    other = merged_file(alice, {"type": "webui", "interp_method": "No interpolation", "primary_model_hash": "ab" * 32})
    response = client_for(alice, ["upload"]).post("/api/v1/recipes/import", {"fileId": other.pk}, format="json")
    assert response.status_code == 400 and "only 'Weighted sum' and 'Add difference'" in response.json()["error"]
    plain = make_published_model(alice, "Plain", data=tiny_safetensors_bytes(5)).versions.get().files.get()
    response = client_for(alice, ["upload"]).post("/api/v1/recipes/import", {"fileId": plain.pk}, format="json")
    assert response.status_code == 400 and "no sd_merge_recipe" in response.json()["error"]
    assert not Recipe.objects.exists()
