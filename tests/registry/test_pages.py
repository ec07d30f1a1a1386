"""Server-rendered recipe pages (the browser test covers the scripts)."""
from __future__ import annotations

import re

import pytest
from django.db import transaction

from hub.catalog.models import ModelVersion
from merges.registry.models import RecipeVersion
from merges.registry.services import _blob_of, merge_output_publish, recipe_create, recipe_fork
from tests.registry.conftest import sd1_document

pytestmark = pytest.mark.django_db


def test_list_shows_public_recipes_and_hides_others_private_ones(client, alice, bob, public_recipe, sd1_inputs):
    base, anime = sd1_inputs
    recipe_create(owner=alice, title="Hidden Gem", source=sd1_document(base.pk, anime.pk), visibility="private")
    client.force_login(bob)
    page = client.get("/recipes/").content.decode()
    assert "Soft Anime Mix" in page and "Hidden Gem" not in page
    client.force_login(alice)
    assert "Hidden Gem" in client.get("/recipes/").content.decode()


def test_detail_shows_the_document_readably_with_inputs_linked(client, public_recipe, sd1_inputs):
    base, anime = sd1_inputs
    page = client.get(f"/recipes/{public_recipe.pk}/").content.decode()
    assert f'href="/models/{base.model_id}/{base.model.slug}/?modelVersionId={base.pk}"' in page
    assert "Tiny Anime v1.0" in page
    assert "26 block weights" in page and "IN04" in page
    assert "Sign in to fork or run" in page


def test_private_recipe_page_is_404_for_others(client, alice, bob, sd1_inputs):
    base, anime = sd1_inputs
    secret = recipe_create(owner=alice, title="Secret", source=sd1_document(base.pk, anime.pk), visibility="private")
    client.force_login(bob)
    assert client.get(f"/recipes/{secret.pk}/").status_code == 404
    assert client.get(f"/recipes/{secret.pk}/edit/").status_code == 404
    assert client.post(f"/recipes/{secret.pk}/fork/").status_code == 404


def test_editor_is_the_owners_only(client, bob, public_recipe):
    client.force_login(bob)
    assert client.get(f"/recipes/{public_recipe.pk}/edit/").status_code == 403
    assert client.post(f"/recipes/{public_recipe.pk}/edit/", {"document": "{}"}).status_code == 403


def test_editor_shows_server_errors_on_their_lines_and_saves_valid_edits(client, alice, public_recipe):
    client.force_login(alice)
    page = client.get(f"/recipes/{public_recipe.pk}/edit/").content.decode()
    assert 'id="recipe-document"' in page and "Save version 2" in page
    text = re.search(r'<textarea id="recipe-document"[^>]*>(.*?)</textarea>', page, re.S).group(1)
    import html

    text = html.unescape(text)
    broken = text.replace('"alpha": 0.4', '"alpha": 1.4')
    response = client.post(f"/recipes/{public_recipe.pk}/edit/", {"document": broken, "message": "too much"})
    assert response.status_code == 400
    body = response.content.decode()
    line = next(i for i, l in enumerate(broken.splitlines(), 1) if '"alpha": 1.4' in l)
    assert f'<span data-line="{line}" class="has-error" title="1.4 is out of range [0, 1]">' in body
    assert f"Line {line}</a>: <code>steps[0].alpha</code>: 1.4 is out of range [0, 1]" in body
    assert RecipeVersion.objects.filter(recipe=public_recipe).count() == 1

    fixed = text.replace('"alpha": 0.4', '"alpha": 0.45')
    response = client.post(f"/recipes/{public_recipe.pk}/edit/", {"document": fixed, "message": "a bit more"})
    assert response.status_code == 302
    assert public_recipe.versions.get(number=2).message == "a bit more"


def test_diff_page_compares_a_fork_with_its_parent(client, alice, bob, public_recipe, sd1_inputs):
    from merges.registry.services import recipe_version_create

    base, anime = sd1_inputs
    fork = recipe_fork(version=public_recipe.versions.get(), owner=bob)
    blocks = [round(0.1 * (i % 5), 1) for i in range(26)]
    blocks[5] = 0.9
    recipe_version_create(recipe=fork, author=bob, source=sd1_document(base.pk, anime.pk, blocks=blocks))
    page = client.get(f"/recipes/{fork.pk}/diff/?from=1&to=2").content.decode()
    assert "~ steps.tune.alpha[IN04]: 0.0 → 0.9" in page
    first = client.get(f"/recipes/{fork.pk}/diff/?to=1").content.decode()
    assert "No changes" in first  # a fork's first version equals the version it was forked from


def test_lineage_page_draws_the_graph(client, alice, public_recipe, sd1_inputs):
    base, anime = sd1_inputs
    version = public_recipe.versions.get()
    blob = _blob_of(base.files.get())  # any stored blob will do for the page
    inputs = {
        "base": {"sha256": base.files.get().sha256, "model_version": base.pk},
        "anime": {"sha256": anime.files.get().sha256, "model_version": anime.pk},
    }
    with transaction.atomic():
        output = merge_output_publish(
            recipe_version=version, requester=alice, blob=blob, merge_key="f" * 64, inputs=inputs, engine_version="t"
        )
    page = client.get(f"/model-versions/{output.pk}/lineage/").content.decode()
    assert '<svg class="lineage"' in page
    assert page.count('class="lineage-edge"') == 2
    assert "Soft Anime Mix v1" in page and "Tiny Base" in page and "Tiny Anime" in page
    assert f'href="/recipes/{public_recipe.pk}/?version=1"' in page
    model_page = client.get(f"/models/{output.model_id}/{output.model.slug}/").content.decode()
    assert f'href="/model-versions/{output.pk}/lineage/"' in model_page
    assert ModelVersion.objects.get(pk=output.pk).model.checkpoint_type == "Merge"


def test_new_recipe_page_creates_a_recipe_or_shows_errors(client, bob, sd1_inputs):
    import json

    from merges.registry.models import Recipe

    base, anime = sd1_inputs
    client.force_login(bob)
    assert client.get("/recipes/new/").status_code == 200
    bad = client.post("/recipes/new/", {"title": "Mine", "document": "format: nope\n"})
    assert bad.status_code == 400 and "expected &#x27;mergeworks/recipe@1&#x27;" in bad.content.decode()
    good = client.post(
        "/recipes/new/",
        {"title": "Mine", "document": json.dumps(sd1_document(base.pk, anime.pk)), "visibility": "unlisted"},
    )
    recipe = Recipe.objects.get(owner=bob)
    assert good.status_code == 302 and good["Location"] == f"/recipes/{recipe.pk}/"
    assert recipe.visibility == "unlisted" and recipe.versions.count() == 1


def test_lineage_of_our_own_output_links_its_recipe_and_import_is_for_other_tools(client, alice, bob, public_recipe,
                                                                                   sd1_inputs):
    import json

    from tests.support.builders import make_published_model, tiny_safetensors_bytes

    base, anime = sd1_inputs
    version = public_recipe.versions.get()
    webui = json.dumps({"type": "webui", "primary_model_hash": base.files.get().sha256,
                        "secondary_model_hash": anime.files.get().sha256, "interp_method": "Weighted sum",
                        "multiplier": 0.3})
    ours = {"mergeworks_merge_key": "e" * 64, "mergeworks_recipe_hash": version.recipe_hash,
            "sd_merge_recipe": json.dumps({"type": "mergeworks", "interp_method": "mergeworks recipe"})}
    merged = make_published_model(alice, "Our Output", data=tiny_safetensors_bytes(61, metadata=ours))
    blob = _blob_of(merged.versions.get().files.get())
    with transaction.atomic():
        output = merge_output_publish(recipe_version=version, requester=alice, blob=blob, merge_key="e" * 64,
                                      inputs={"base": {"sha256": base.files.get().sha256, "model_version": base.pk}},
                                      engine_version="t")
    client.force_login(bob)
    recipe_link = f'href="/recipes/{public_recipe.pk}/?version={version.number}"'
    page = client.get(f"/model-versions/{output.pk}/lineage/").content.decode()
    assert "Merged on Mergeworks by recipe" in page and recipe_link in page
    assert "Import it as a draft recipe" not in page

    # A downloaded output uploaded again is still ours: found by its merge key, never "imported".
    copy = make_published_model(bob, "Reupload", data=tiny_safetensors_bytes(62, metadata=ours)).versions.get()
    page = client.get(f"/model-versions/{copy.pk}/lineage/").content.decode()
    assert "Merged on Mergeworks by recipe" in page and recipe_link in page
    assert "Import it as a draft recipe" not in page
    imported = client.get(f"/recipes/import/?file={copy.files.get().pk}")
    assert imported.status_code == 302 and imported["Location"] == f"/recipes/{public_recipe.pk}/?version=1"

    # Metadata written by another tool (A1111's merger) is what the import is for.
    other = make_published_model(bob, "A1111 Mix", data=tiny_safetensors_bytes(63, metadata={"sd_merge_recipe": webui}))
    page = client.get(f"/model-versions/{other.versions.get().pk}/lineage/").content.decode()
    assert "Import it as a draft recipe" in page and "Merged on Mergeworks" not in page
    assert client.get(f"/recipes/import/?file={other.versions.get().files.get().pk}").status_code == 200
