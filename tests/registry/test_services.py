from __future__ import annotations

import pytest

from merges.registry.documents import document_text
from merges.registry.models import ImmutableError, Recipe, RecipeVersion
from merges.registry.services import (
    RecipeInvalid,
    RegistryPermissionDenied,
    licence_of_inputs,
    recipe_create,
    recipe_fork,
    recipe_version_create,
)
from tests.registry.conftest import sd1_document

pytestmark = pytest.mark.django_db


def test_create_stores_the_canonical_document_and_its_hash(public_recipe):
    version = public_recipe.versions.get()
    assert version.number == 1 and version.parent is None
    assert version.document["steps"][0]["alpha"] == 0.4
    assert version.document["seed"] == 0  # default filled in
    assert len(version.recipe_hash) == 64
    assert public_recipe.architecture == "sd1"
    assert public_recipe.slug == "soft-anime-mix"


def test_invalid_document_reports_each_error_on_its_line(alice):
    source = (
        "format: mergeworks/recipe@1\n"
        "architecture: sd1\n"
        "inputs:\n"
        "  a: {model_version: 1}\n"
        "  b: {model_version: 2}\n"
        "steps:\n"
        "  - {id: mix, op: weighted_sum, inputs: [a, b], alpha: 1.5}\n"
        "  - id: tune\n"
        "    op: weighted_sum\n"
        "    inputs: [mix, b]\n"
        "    alpha: {blocks: [0.1, 0.2]}\n"
        "output: {step: tune}\n"
    )
    with pytest.raises(RecipeInvalid) as info:
        recipe_create(owner=alice, title="Broken", source=source)
    errors = {(e.path, e.line) for e in info.value.errors}
    assert ("steps[0].alpha", 7) in errors
    assert ("steps[1].alpha", 11) in errors
    messages = [e.message for e in info.value.errors]
    assert "expected 26 block weights for sd1, got 2" in messages
    assert not Recipe.objects.exists()


def test_identical_document_creates_no_new_version(public_recipe, alice):
    latest = public_recipe.versions.get()
    # Same recipe written differently (YAML, defaults spelt out, keys reordered).
    same = document_text(latest.document)
    version, created = recipe_version_create(recipe=public_recipe, author=alice, source=same, message="no-op")
    assert (version.pk, created) == (latest.pk, False)
    assert public_recipe.versions.count() == 1


def test_new_version_records_its_parent(public_recipe, alice, sd1_inputs):
    base, anime = sd1_inputs
    v1 = public_recipe.versions.get()
    v2, created = recipe_version_create(
        recipe=public_recipe, author=alice, source=sd1_document(base.pk, anime.pk, alpha=0.6), message="stronger"
    )
    assert created and v2.number == 2 and v2.parent_id == v1.pk and v2.message == "stronger"


def test_versions_are_immutable(public_recipe):
    version = public_recipe.versions.get()
    version.message = "rewritten history"
    with pytest.raises(ImmutableError):
        version.save()
    assert RecipeVersion.objects.get(pk=version.pk).message == "First version"


def test_only_the_owner_adds_versions(public_recipe, bob, sd1_inputs):
    base, anime = sd1_inputs
    with pytest.raises(RegistryPermissionDenied):
        recipe_version_create(recipe=public_recipe, author=bob, source=sd1_document(base.pk, anime.pk, alpha=0.9))


def test_fork_copies_a_version_for_a_new_owner(public_recipe, bob, alice, sd1_inputs):
    base, anime = sd1_inputs
    v1 = public_recipe.versions.get()
    recipe_version_create(recipe=public_recipe, author=alice, source=sd1_document(base.pk, anime.pk, alpha=0.7))
    fork = recipe_fork(version=v1, owner=bob)
    assert fork.owner == bob and fork.forked_from_id == v1.pk and fork.title == public_recipe.title
    first = fork.versions.get()
    # The fork's history starts at the forked version, not at the latest one.
    assert first.number == 1 and first.parent_id == v1.pk and first.recipe_hash == v1.recipe_hash
    assert "Forked from alice/soft-anime-mix v1" in first.message
    # Forking again gives a fresh slug.
    again = recipe_fork(version=v1, owner=bob)
    assert again.slug != fork.slug


def test_licence_of_inputs_is_the_most_restrictive(sd1_inputs):
    base, anime = sd1_inputs
    licence = licence_of_inputs([base.model, anime.model])
    assert licence.allow_commercial_use == ["Image"]
    assert licence.allow_no_credit is False
    assert licence.allow_derivatives is True
