"""Preview fixtures: tiny checkpoints and a LoRA in the catalogue, base configs, small default renders."""
from __future__ import annotations

import uuid
from pathlib import Path

import pytest
import torch

from tests.previews.tiny_files import tiny_checkpoint, tiny_lora, write_base_configs
from tests.support.builders import make_published_model

SMALL = {"prompts": ["a photo of a cat", "portrait of a woman"], "seeds": [1, 2], "steps": 2, "cfg": 5.0, "size": [64, 64]}


@pytest.fixture(scope="session")
def base_configs_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_base_configs(tmp_path_factory.mktemp("base-configs"))


@pytest.fixture
def preview_settings(settings, base_configs_root: Path, tmp_path: Path):
    settings.BASE_CONFIGS_DIR = str(base_configs_root)
    settings.PREVIEW_DEFAULT_SPEC = dict(SMALL)
    settings.RENDER_CACHE_DIR = str(tmp_path / "render-cache")
    settings.RENDER_DEVICE = "cpu"
    settings.RENDER_JOB_HEARTBEAT_SECONDS = 0.2
    return settings


@pytest.fixture
def enqueued(monkeypatch):
    """Job ids sent to the worker (nothing is sent): tests run jobs in process."""
    sent: list[int] = []
    monkeypatch.setattr("hub.previews.services._enqueue", sent.append)
    return sent


@pytest.fixture
def unique_spec():
    """SMALL with a fresh negative prompt: its render key (and storage keys) are this test's alone."""
    return {**SMALL, "negative": f"blurry {uuid.uuid4().hex[:8]}"}


def checkpoint_version(owner, name: str, seed: int = 0, base_model: str = "SD 1.5", arch: str = "sd1"):
    data = tiny_checkpoint(arch, seed, torch.float16).read_bytes()
    return make_published_model(owner, name, data=data, base_model=base_model).versions.get()


@pytest.fixture
def checkpoint(alice, preview_settings):
    return checkpoint_version(alice, "Tiny Checkpoint")


@pytest.fixture
def lora(alice, preview_settings):
    data = tiny_lora("sd1").read_bytes()
    return make_published_model(alice, "Tiny Style", data=data, type="LORA", file_name="tiny-style.safetensors").versions.get()


def stored(prefix: str) -> list[str]:
    """Keys under `prefix` in the media storage (S3 or local)."""
    from hub.previews.jobs import media_storage

    storage = media_storage()
    keys: list[str] = []

    def walk(path: str) -> None:
        try:
            dirs, files = storage.listdir(path)
        except (FileNotFoundError, OSError):
            return
        keys.extend(f"{path}/{f}" for f in files)
        for d in dirs:
            walk(f"{path}/{d}")

    walk(prefix.rstrip("/"))
    return sorted(keys)
