"""diffusers' DiffusionPipeline.from_pretrained loads a tiny pipeline from the hub through HF_ENDPOINT."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from huggingface_hub import HfApi
from huggingface_hub.errors import RepositoryNotFoundError

from hub.hf.services import catalog_import_folder

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
PROMPT = "a photo of a cat"

# Runs in a fresh interpreter: huggingface_hub reads HF_ENDPOINT once, at import.
LOAD_AND_RENDER = """
import sys
import numpy as np
import torch
from diffusers import DiffusionPipeline

token = sys.argv[3] if len(sys.argv) > 3 else None
pipe = DiffusionPipeline.from_pretrained(sys.argv[1], token=token)
pipe.set_progress_bar_config(disable=True)
image = pipe([%r], num_inference_steps=2, guidance_scale=5.0, height=64, width=64,
             generator=torch.Generator("cpu").manual_seed(0), output_type="np").images[0]
np.save(sys.argv[2], image)
print(type(pipe).__name__)
""" % PROMPT


def render(pipe) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    return pipe([PROMPT], num_inference_steps=2, guidance_scale=5.0, height=64, width=64,
                generator=torch.Generator("cpu").manual_seed(0), output_type="np").images[0]


def load_in_subprocess(repo_id: str, endpoint: str, tmp_path: Path, token: str | None = None):
    out = tmp_path / f"image-{len(list(tmp_path.glob('image-*')))}.npy"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(HF_ENDPOINT=endpoint, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1")
    args = [sys.executable, "-c", LOAD_AND_RENDER, repo_id, str(out)] + ([token] if token else [])
    done = subprocess.run(args, capture_output=True, text=True, env=env, cwd=ROOT, timeout=300)
    return done, out


@pytest.fixture(scope="module")
def tiny_pipe_folder(tmp_path_factory):
    from merges.engine.tiny import build_pipeline, tiny_sd1_components

    pipe = build_pipeline(tiny_sd1_components(0), "sd1")
    folder = tmp_path_factory.mktemp("tiny-pipe")
    pipe.save_pretrained(folder)  # safetensors weights, configs, tokenizer files
    return folder, render(pipe)


def test_from_pretrained_loads_and_renders_through_hf_endpoint(alice, live_server, tmp_path, tiny_pipe_folder):
    # On S3: every file is a 302 to a presigned URL that diffusers follows.
    folder, expected = tiny_pipe_folder
    result = catalog_import_folder(path=folder, owner=alice, model_name="tiny-pipe")
    names = {f.name for f in result.files}
    assert {"model_index.json", "unet/config.json", "unet/diffusion_pytorch_model.safetensors",
            "tokenizer/tokenizer_config.json", "scheduler/scheduler_config.json"} <= names
    assert {f.format for f in result.files} == {"Diffusers"}

    done, image = load_in_subprocess("alice/tiny-pipe", live_server.url, tmp_path)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.strip().splitlines()[-1] == "StableDiffusionPipeline"
    np.testing.assert_allclose(np.load(image), expected, atol=1e-5)


def test_private_pipeline_needs_its_owners_key(alice, local_storage, live_server, tmp_path, tiny_pipe_folder):
    # On local disk: the hub streams every file itself.
    from hub.accounts.services import api_key_create
    from hub.catalog.models import Model

    folder, expected = tiny_pipe_folder
    result = catalog_import_folder(path=folder, owner=alice, model_name="secret-pipe")
    Model.objects.filter(pk=result.model.pk).update(visibility=Model.Visibility.PRIVATE)

    # Without a key the repo does not exist (test_hub_client covers that for the
    # calls diffusers makes); with the owner's key diffusers loads it.
    with pytest.raises(RepositoryNotFoundError):
        HfApi(endpoint=live_server.url, token=False).model_info("alice/secret-pipe")
    key = api_key_create(user=alice, name="diffusers").plaintext
    done, image = load_in_subprocess("alice/secret-pipe", live_server.url, tmp_path, token=key)
    assert done.returncode == 0, done.stderr[-4000:]
    np.testing.assert_allclose(np.load(image), expected, atol=1e-5)
