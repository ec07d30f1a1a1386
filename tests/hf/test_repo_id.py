"""A script goes from the REST API to huggingface_hub with the `hf.repoId` of each model."""
from __future__ import annotations

import hashlib

import pytest
import requests
from huggingface_hub import HfApi, hf_hub_download

from tests.support.builders import make_published_model, tiny_safetensors_bytes

pytestmark = pytest.mark.django_db(transaction=True)


def test_repo_id_from_the_models_list_works_with_huggingface_hub(alice, local_storage, hub_url, tmp_path):
    data = tiny_safetensors_bytes(7)
    make_published_model(alice, "Ümlaut & Friends: Mix", data=data, file_name="mix.safetensors")
    [item] = requests.get(f"{hub_url}/api/v1/models", params={"username": "alice"}, timeout=30).json()["items"]
    repo_id = item["hf"]["repoId"]
    assert repo_id.startswith("alice/")

    version_id = item["modelVersions"][0]["id"]
    by_version = requests.get(f"{hub_url}/api/v1/model-versions/{version_id}", timeout=30).json()
    assert by_version["model"]["hf"]["repoId"] == repo_id

    info = HfApi(endpoint=hub_url).model_info(repo_id, token=False)
    assert info.id == repo_id
    path = hf_hub_download(repo_id, "mix.safetensors", endpoint=hub_url, cache_dir=tmp_path, token=False)
    assert hashlib.sha256(open(path, "rb").read()).hexdigest() == hashlib.sha256(data).hexdigest()
