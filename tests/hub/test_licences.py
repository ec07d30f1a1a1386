"""A licence cannot be laundered by re-uploading another creator's file (hub.catalog.licences).

The attack: bob uploads the exact bytes of alice's model, whose licence
forbids derivatives, declares derivatives allowed, and runs a merge naming
the file by SHA-256 or by his own version. Publishing is refused unless bob
credits alice's version under her licence or a stricter one, and a run judges
the bytes by the strictest licence of every published copy.
"""
from __future__ import annotations

import hashlib

import pytest

from hub.accounts.services import api_key_create
from hub.catalog.licences import Licence, licence_of_bytes
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import model_version_publish
from merges.registry.models import MergeJob
from merges.registry.services import recipe_create
from tests.registry.conftest import sd1_document, tiny_checkpoint_bytes
from tests.support.builders import make_published_model, tiny_safetensors_bytes
from tests.uploads.conftest import ingest_now, send_file

ALICE_TERMS = dict(allow_derivatives=False, allow_no_credit=False, allow_commercial_use=["Image"],
                   allow_different_license=False)


def _licence(**kw) -> Licence:
    base = dict(allow_no_credit=True, allow_commercial_use=frozenset({"Image", "Rent"}), allow_derivatives=True,
                allow_different_license=True)
    return Licence(**{**base, **kw})


def test_the_strictness_order():
    loose = _licence()
    strict = _licence(allow_no_credit=False, allow_commercial_use=frozenset({"Image"}), allow_derivatives=False)
    assert strict.looser_than(loose) == []
    assert loose.looser_than(strict) == [
        "use without crediting the creator", "share merges (derivatives)", "commercial use: Rent",
    ]
    assert loose.looser_than(loose) == []
    combined = Licence.strictest([_licence(allow_derivatives=False), _licence(allow_commercial_use=frozenset({"Sell"}))])
    assert combined == _licence(allow_derivatives=False, allow_commercial_use=frozenset())


# --- publishing -----------------------------------------------------------------------------


@pytest.fixture
def alices_original(alice):
    data = tiny_safetensors_bytes(501, metadata={"creator": "alice"})
    return data, make_published_model(alice, "Alice Original", data=data, **ALICE_TERMS).versions.get()


@pytest.fixture
def bob_api(api_client, bob):
    key = api_key_create(user=bob, name="uploader", scopes=["read", "download", "upload", "run"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    return api_client


def _ready_upload(api, data: bytes) -> str:
    state = send_file(api, data, filename="mine.safetensors")
    assert api.post(f"/api/v1/uploads/{state['id']}/complete", {}, format="json").status_code == 202
    assert ingest_now(state["id"]).status == "ready"
    return state["id"]


@pytest.mark.parametrize("same", ["sha256", "autov3"])
def test_publishing_another_creators_file_is_refused_with_the_original_named(bob_api, alices_original, same):
    data, original = alices_original
    # The same bytes, or the same tensors under other metadata (AutoV3).
    mine = data if same == "sha256" else tiny_safetensors_bytes(501, metadata={"creator": "bob, honestly"})
    assert (hashlib.sha256(mine).hexdigest() == hashlib.sha256(data).hexdigest()) == (same == "sha256")
    upload_id = _ready_upload(bob_api, mine)
    url = f"/api/v1/uploads/{upload_id}/version"
    body = {"name": "Totally Mine", "publish": True, "allowDerivatives": True}

    refused = bob_api.post(url, body, format="json")
    assert refused.status_code == 409, refused.content
    error = refused.json()
    assert error["code"] == "reupload_of_published_file"
    assert "alice" in error["error"] and "Alice Original" in error["error"]
    (named,) = error["details"]["originals"]
    assert named["modelVersionId"] == original.pk and named["creator"] == "alice"
    assert named["url"] == f"/models/{original.model_id}/alice-original/?modelVersionId={original.pk}"
    assert named["licence"]["allowDerivatives"] is False
    assert not Model.objects.filter(name="Totally Mine").exists()  # nothing half-made; the upload stays ready

    # Crediting the original is not enough while the licence is looser than hers.
    loose = bob_api.post(url, {**body, "reuploadOf": original.pk}, format="json")
    assert loose.status_code == 409 and loose.json()["code"] == "reupload_licence_too_loose"
    assert "share merges (derivatives)" in loose.json()["error"]
    assert not Model.objects.filter(name="Totally Mine").exists()

    strict = {"allowDerivatives": False, "allowNoCredit": False, "allowCommercialUse": [], "allowDifferentLicense": False}
    ok = bob_api.post(url, {**body, **strict, "reuploadOf": original.pk}, format="json")
    assert ok.status_code == 201, ok.content
    version = ModelVersion.objects.get(pk=ok.json()["modelVersionId"])
    assert version.status == "published" and version.reupload_of_id == original.pk


def test_a_draft_is_published_only_as_a_credited_reupload(bob, alices_original):
    data, original = alices_original
    draft = make_published_model(bob, "Bob Draft", data=data, publish=False, **ALICE_TERMS).versions.get()
    from hub.catalog.licences import ReuploadConflict

    with pytest.raises(ReuploadConflict):
        model_version_publish(version=draft)
    model_version_publish(version=draft, reupload_of=original.pk)
    draft.refresh_from_db()
    assert draft.status == "published" and draft.reupload_of_id == original.pk


def test_own_files_and_private_originals_are_not_reuploads(alice, bob):
    data = tiny_safetensors_bytes(502)
    make_published_model(alice, "First", data=data)
    make_published_model(alice, "Second", data=data)  # her own file again: fine
    private = tiny_safetensors_bytes(503)
    make_published_model(alice, "Hidden", data=private, visibility="private", allow_derivatives=False)
    make_published_model(bob, "Not Named", data=private)  # a private original is not shown to bob
    assert licence_of_bytes([hashlib.sha256(private).hexdigest()])[hashlib.sha256(private).hexdigest()] \
        .forbids_derivatives_for(bob.pk)


def test_the_upload_page_shows_the_original_and_publishes_a_credited_reupload(client, bob, alices_original):
    data, original = alices_original
    client.force_login(bob)
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(bob)
    upload_id = _ready_upload(api, data)
    form = {"target": "new", "name": "Bob Page", "type": "Checkpoint", "version_name": "v1.0", "base_model": "SD 1.5",
            "visibility": "public", "allow_derivatives": "on", "action": "publish"}
    page = client.post(f"/upload/{upload_id}/", form)
    assert page.status_code == 200
    html = page.content.decode()
    assert 'id="reupload-notice"' in html and f'href="/models/{original.model_id}/alice-original/' in html
    assert not Model.objects.filter(name="Bob Page").exists()
    strict = {k: v for k, v in form.items() if not k.startswith("allow_")}
    done = client.post(f"/upload/{upload_id}/", {**strict, "reupload_of": str(original.pk)})
    assert done.status_code == 302
    version = ModelVersion.objects.get(model__name="Bob Page")
    assert version.reupload_of_id == original.pk
    shown = client.get(done["Location"]).content.decode()
    assert 'id="reupload-of"' in shown and "Alice Original" in shown


# --- running ------------------------------------------------------------------------------------


@pytest.fixture
def laundered(alice, bob, settings):
    """Alice's checkpoint forbids derivatives; bob's copy of the same bytes (published before this check existed) allows them."""
    data = tiny_checkpoint_bytes(11)
    alices = make_published_model(alice, "Alice Ckpt", data=data, allow_derivatives=False).versions.get()
    bobs = make_published_model(bob, "Bob Ckpt", data=data, publish=False).versions.get()
    ModelVersion.objects.filter(pk=bobs.pk).update(status="published")  # as legacy data would be
    Model.objects.filter(pk=bobs.model_id).update(status="published")
    other = make_published_model(bob, "Bob Other", data=tiny_checkpoint_bytes(12)).versions.get()
    return alices, bobs, other, hashlib.sha256(data).hexdigest()


def _run(api, recipe):
    return api.post(f"/api/v1/recipes/{recipe.pk}/run", {}, format="json")


@pytest.mark.parametrize("by", ["sha256", "model_version"])
def test_a_run_judges_the_bytes_by_the_strictest_published_copy(bob_api, bob, laundered, by):
    alices, bobs, other, sha = laundered
    document = sd1_document(bobs.pk, other.pk)
    if by == "sha256":
        document["inputs"]["base"] = {"sha256": sha}
    recipe = recipe_create(owner=bob, title=f"Laundered {by}", source=document)
    refused = _run(bob_api, recipe)
    assert refused.status_code == 403, refused.content
    assert refused.json()["details"]["reason"] == "licence_forbids_derivatives"
    assert not MergeJob.objects.exists()


def test_the_original_creator_may_still_merge_her_own_file(api_client, alice, laundered, monkeypatch):
    monkeypatch.setattr("merges.registry.services._enqueue", lambda job_id: None)
    alices, bobs, other, sha = laundered
    key = api_key_create(user=alice, name="runner", scopes=["run"]).plaintext
    api_client.credentials(HTTP_AUTHORIZATION=f"Bearer {key}")
    recipe = recipe_create(owner=alice, title="Hers", source=sd1_document(alices.pk, other.pk))
    assert _run(api_client, recipe).status_code == 202


def test_publishing_a_draft_from_the_page_credits_the_original_under_her_licence(client, bob, alices_original):
    data, original = alices_original
    from rest_framework.test import APIClient

    api = APIClient()
    api.force_authenticate(bob)
    upload_id = _ready_upload(api, data)
    saved = api.post(f"/api/v1/uploads/{upload_id}/version", {"name": "Bob Draft Page"}, format="json")
    assert saved.status_code == 201  # a draft is nobody else's business yet
    client.force_login(bob)
    refused = client.post(f"/upload/{upload_id}/publish/", follow=True)
    html = refused.content.decode()
    assert 'id="reupload-notice"' in html and "Alice Original" in html
    assert ModelVersion.objects.get(model__name="Bob Draft Page").status == "draft"

    client.post(f"/upload/{upload_id}/publish/", {"reupload_of": str(original.pk)})
    version = ModelVersion.objects.select_related("model").get(model__name="Bob Draft Page")
    assert version.status == "published" and version.reupload_of_id == original.pk
    assert Licence.of(version.model).looser_than(Licence.of(original.model)) == []
