"""The real huggingface_hub client against the live server, on S3 and on local disk."""
from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path

import pytest
import requests
from huggingface_hub import HfApi, hf_hub_download, snapshot_download
from huggingface_hub.errors import (
    EntryNotFoundError,
    HfHubHTTPError,
    RepositoryNotFoundError,
    RevisionNotFoundError,
)

from hub.hf.selectors import version_commit_id
from hub.hf.services import catalog_import_folder
from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def write_fake_diffusers_folder(root: Path, seed: int = 0) -> dict[str, bytes]:
    """A folder with the layout of a diffusers pipeline (no real weights needed here)."""
    files = {
        "model_index.json": json.dumps({"_class_name": "StableDiffusionPipeline", "unet": ["diffusers", "UNet2DConditionModel"]}).encode(),
        "scheduler/scheduler_config.json": b'{"_class_name": "PNDMScheduler"}',
        "tokenizer/vocab.json": b'{"a</w>": 0}',
        "tokenizer/merges.txt": b"#version: 0.2\n",
        "unet/config.json": b'{"_class_name": "UNet2DConditionModel"}',
        "unet/diffusion_pytorch_model.safetensors": tiny_safetensors_bytes(seed),
    }
    for name, data in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(data)
    return files


def test_hf_hub_download_model_info_and_resolve_headers(storage_backend, alice, hub_url, tmp_path):
    data = tiny_safetensors_bytes(7)
    model = make_published_model(alice, "Tiny Model", data=data, tags=["anime"])
    version = model.versions.get()
    commit = version_commit_id(version)
    sha256 = hashlib.sha256(data).hexdigest()

    path = hf_hub_download(
        "alice/tiny-model", "tiny-model.safetensors", endpoint=hub_url, cache_dir=tmp_path / "cache", token=False
    )
    assert Path(path).read_bytes() == data
    # huggingface_hub names cache blobs by ETag, and snapshots by X-Repo-Commit.
    assert (tmp_path / "cache" / "models--alice--tiny-model" / "blobs" / sha256).is_file()
    assert Path(path).parent.name == commit
    assert (tmp_path / "cache" / "models--alice--tiny-model" / "refs" / "main").read_text() == commit

    api = HfApi(endpoint=hub_url, token=False)
    info = api.model_info("alice/tiny-model", files_metadata=True)
    assert info.id == "alice/tiny-model" and info.author == "alice" and info.sha == commit
    assert info.private is False and "anime" in info.tags and info.last_modified is not None
    assert [(s.rfilename, s.size, s.lfs.sha256) for s in info.siblings] == [("tiny-model.safetensors", len(data), sha256)]
    assert api.list_repo_files("alice/tiny-model") == ["tiny-model.safetensors"]

    url = f"{hub_url}/alice/tiny-model/resolve/main/tiny-model.safetensors"
    head = requests.head(url, allow_redirects=False)
    assert head.headers["X-Repo-Commit"] == commit
    assert head.headers["X-Linked-Etag"] == f'"{sha256}"' and head.headers["ETag"] == f'"{sha256}"'
    assert head.headers["X-Linked-Size"] == str(len(data))
    if storage_backend == "s3":
        assert head.status_code == 302
        location = head.headers["Location"]
        assert location.startswith("http://") and "Signature=" in location
        assert requests.get(location).content == data
    else:
        assert head.status_code == 200 and head.headers["Content-Length"] == str(len(data)) and not head.content
        part = requests.get(url, headers={"Range": "bytes=100-199"})
        assert part.status_code == 206 and part.content == data[100:200]
        assert part.headers["Content-Range"] == f"bytes 100-199/{len(data)}"
        assert part.headers["X-Repo-Commit"] == commit


def test_snapshot_download_then_second_run_from_cache(storage_backend, alice, hub_url, tmp_path, served):
    folder = tmp_path / "pipe"
    files = write_fake_diffusers_folder(folder)
    catalog_import_folder(path=folder, owner=alice, model_name="tiny-pipe")
    cache = tmp_path / "cache"

    first = Path(snapshot_download("alice/tiny-pipe", endpoint=hub_url, cache_dir=cache, token=False))
    assert {p.relative_to(first).as_posix(): p.read_bytes() for p in first.rglob("*") if p.is_file()} == files
    # On S3 the bytes come from the presigned URL; the hub answers the HEAD (and, locally, the GET).
    # snapshot_download resolves the revision once, then fetches every file by commit id.
    commit = HfApi(endpoint=hub_url).model_info("alice/tiny-pipe", token=False).sha
    resolve_prefix = f"/alice/tiny-pipe/resolve/{commit}/"
    resolved = {path.removeprefix(resolve_prefix) for _, path, _ in served if "/resolve/" in path}
    assert resolved == set(files)

    served.clear()
    second = Path(snapshot_download("alice/tiny-pipe", endpoint=hub_url, cache_dir=cache, token=False))
    assert second == first
    # Only the revision lookup goes out; every file comes from the cache.
    assert [(m, p) for m, p, _ in served] == [("GET", "/api/models/alice/tiny-pipe/revision/main")]


def test_revisions_by_version_name_commit_id_and_main(storage_backend, alice, hub_url, tmp_path):
    from hub.catalog.services import model_version_create, model_version_publish
    from hub.files.services import blob_ingest_stream, model_file_create

    old_data = tiny_safetensors_bytes(1)
    model = make_published_model(alice, "Evolving", data=old_data, file_name="model.safetensors")
    v1 = model.versions.get()
    old_commit = version_commit_id(v1)
    new_data = tiny_safetensors_bytes(2)
    v2 = model_version_create(model=model, name="v2.0")
    blob = blob_ingest_stream(
        reader=io.BytesIO(new_data), size=len(new_data), head=new_data[:16], header_reader=io.BytesIO(new_data)
    )
    model_file_create(version=v2, blob=blob, name="model.safetensors")
    model_version_publish(version=v2)
    new_commit = version_commit_id(v2)
    assert new_commit != old_commit

    def fetch(revision):
        return Path(
            hf_hub_download("alice/evolving", "model.safetensors", revision=revision, endpoint=hub_url,
                            cache_dir=tmp_path / "cache", token=False)
        ).read_bytes()

    assert fetch("main") == new_data
    assert fetch("v1.0") == old_data
    assert fetch(old_commit) == old_data
    assert fetch(new_commit) == new_data
    api = HfApi(endpoint=hub_url, token=False)
    assert api.model_info("alice/evolving", revision="v1.0").sha == old_commit
    assert api.model_info("alice/evolving").sha == new_commit
    with pytest.raises(RevisionNotFoundError):
        api.model_info("alice/evolving", revision="v9")
    with pytest.raises(RevisionNotFoundError):
        fetch("0" * 40)


def test_private_repo_with_and_without_a_key(storage_backend, alice, bob, hub_url, tmp_path, api_key_for):
    data = tiny_safetensors_bytes(3)
    make_published_model(alice, "Secret", data=data, visibility="private")
    cache = tmp_path / "cache"

    def download(token):
        return hf_hub_download("alice/secret", "secret.safetensors", endpoint=hub_url, cache_dir=cache, token=token)

    with pytest.raises(RepositoryNotFoundError) as anonymous:
        download(False)
    assert anonymous.value.response.status_code == 401
    with pytest.raises(RepositoryNotFoundError) as other_user:
        download(api_key_for(bob))
    assert other_user.value.response.status_code == 404
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=hub_url).model_info("alice/secret", token=False)
    with pytest.raises(RepositoryNotFoundError):
        snapshot_download("alice/secret", endpoint=hub_url, cache_dir=cache, token=False)

    key = api_key_for(alice)
    assert Path(download(key)).read_bytes() == data
    info = HfApi(endpoint=hub_url, token=key).model_info("alice/secret")
    assert info.private is True
    assert Path(snapshot_download("alice/secret", endpoint=hub_url, cache_dir=tmp_path / "c2", token=key)).is_dir()

    # A key without the download scope may read metadata but not bytes; a bad key is not "repo not found".
    read_only = api_key_for(alice, scopes=["read"])
    assert HfApi(endpoint=hub_url, token=read_only).model_info("alice/secret").sha
    # huggingface_hub reports a 403 on the HEAD as "not found locally", caused by the 403.
    with pytest.raises(EntryNotFoundError) as scoped:
        hf_hub_download("alice/secret", "secret.safetensors", endpoint=hub_url, cache_dir=tmp_path / "c3",
                        token=read_only)
    assert isinstance(scoped.value.__cause__, HfHubHTTPError) and scoped.value.__cause__.response.status_code == 403
    refused = requests.head(f"{hub_url}/alice/secret/resolve/main/secret.safetensors",
                            headers={"Authorization": f"Bearer {read_only}"})
    assert refused.status_code == 403 and refused.headers["X-Error-Message"] == "this API key lacks the 'download' scope"
    with pytest.raises(HfHubHTTPError) as bad_key:
        HfApi(endpoint=hub_url).model_info("alice/secret", token="mw_nothere_nothing")
    assert bad_key.value.response.status_code == 401 and not isinstance(bad_key.value, RepositoryNotFoundError)


def test_missing_repo_file_and_revision_errors(alice, hub_url, tmp_path):
    make_published_model(alice, "Present")
    with pytest.raises(EntryNotFoundError):
        hf_hub_download("alice/present", "nope.safetensors", endpoint=hub_url, cache_dir=tmp_path, token=False)
    response = requests.head(f"{hub_url}/alice/present/resolve/main/nope.safetensors")
    assert response.status_code == 404 and response.headers["X-Error-Code"] == "EntryNotFound"
    assert len(response.headers["X-Repo-Commit"]) == 40  # lets the client cache the absence
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("alice/absent", "x.safetensors", endpoint=hub_url, cache_dir=tmp_path, token=False)
    with pytest.raises(RepositoryNotFoundError):
        hf_hub_download("nobody/present", "x.safetensors", endpoint=hub_url, cache_dir=tmp_path, token=False)
    with pytest.raises(RevisionNotFoundError):
        hf_hub_download("alice/present", "present.safetensors", revision="v7", endpoint=hub_url,
                        cache_dir=tmp_path, token=False)
    errors = requests.get(f"{hub_url}/api/models/alice/absent")
    assert errors.status_code == 401 and errors.headers["X-Error-Code"] == "RepoNotFound"
    assert errors.json() == {"error": "Repository not found"}


def test_a_hugging_face_token_counts_as_no_token(alice, hub_url, tmp_path):
    # Users logged in to huggingface.co send that token to HF_ENDPOINT as well.
    data = tiny_safetensors_bytes(5)
    make_published_model(alice, "Open", data=data)
    make_published_model(alice, "Closed", visibility="private")
    path = hf_hub_download("alice/open", "open.safetensors", endpoint=hub_url, cache_dir=tmp_path, token="hf_notours")
    assert Path(path).read_bytes() == data
    with pytest.raises(RepositoryNotFoundError) as hidden:
        HfApi(endpoint=hub_url, token="hf_notours").model_info("alice/closed")
    assert hidden.value.response.status_code == 401


def test_drafts_are_hidden_from_others_and_reachable_by_owner(alice, bob, hub_url, api_key_for):
    make_published_model(alice, "Unreleased", publish=False)
    bob_api = HfApi(endpoint=hub_url, token=api_key_for(bob))
    with pytest.raises(RepositoryNotFoundError):
        bob_api.model_info("alice/unreleased")
    owner_api = HfApi(endpoint=hub_url, token=api_key_for(alice))
    # `main` follows published versions only; the owner names the draft.
    with pytest.raises(RevisionNotFoundError):
        owner_api.model_info("alice/unreleased")
    assert owner_api.model_info("alice/unreleased", revision="v1.0").siblings[0].rfilename == "unreleased.safetensors"


def test_tree_pagination_and_paths_info(alice, hub_url, tmp_path, settings):
    folder = tmp_path / "pipe"
    files = write_fake_diffusers_folder(folder)
    result = catalog_import_folder(path=folder, owner=alice, model_name="paged")
    commit = version_commit_id(result.version)
    settings.HF_TREE_PAGE_SIZE = 2
    api = HfApi(endpoint=hub_url, token=False)

    everything = list(api.list_repo_tree("alice/paged", recursive=True))
    file_paths = sorted(e.path for e in everything if hasattr(e, "blob_id"))
    folder_paths = sorted(e.path for e in everything if hasattr(e, "tree_id"))
    assert file_paths == sorted(files) and folder_paths == ["scheduler", "tokenizer", "unet"]
    top = sorted(e.path for e in api.list_repo_tree("alice/paged"))
    assert top == ["model_index.json", "scheduler", "tokenizer", "unet"]
    assert sorted(e.path for e in api.list_repo_tree("alice/paged", path_in_repo="unet")) == [
        "unet/config.json", "unet/diffusion_pytorch_model.safetensors"]
    assert sorted(api.list_repo_files("alice/paged")) == sorted(files)

    first_page = requests.get(f"{hub_url}/api/models/alice/paged/tree/main", params={"recursive": "true"})
    assert len(first_page.json()) == 2 and first_page.links["next"]["url"].startswith(hub_url)

    weights = "unet/diffusion_pytorch_model.safetensors"
    infos = api.get_paths_info("alice/paged", [weights, "unet", "missing.txt"], revision=commit)
    by_path = {i.path: i for i in infos}
    assert set(by_path) == {weights, "unet"}
    assert by_path[weights].lfs.sha256 == hashlib.sha256(files[weights]).hexdigest()
    assert by_path[weights].size == len(files[weights])

    with pytest.raises(EntryNotFoundError):
        list(api.list_repo_tree("alice/paged", path_in_repo="nowhere"))


def test_hf_routes_do_not_shadow_the_website(alice, client):
    make_published_model(alice, "Site Model")
    assert client.get("/models/").status_code == 200
    assert client.get("/users/alice/").status_code == 200
    # "models" is the website's, never a user namespace.
    assert client.get("/models/1/resolve/main/x.safetensors").status_code == 404
    assert "X-Error-Code" not in client.get("/models/1/resolve/main/x.safetensors").headers
