"""Registry fixtures: tiny real-topology SD1 checkpoints in the catalogue, and a recipe over them."""
from __future__ import annotations

import io
import os
from pathlib import Path

import pytest

from tests.support.builders import make_published_model

ROOT = Path(__file__).resolve().parents[2]


def tiny_checkpoint_bytes(seed: int) -> bytes:
    """A tiny SD1-topology LDM checkpoint (fp16, ~5 MB, 968 tensors), cached on disk between runs.

    Building the diffusers models takes seconds, so each seed is built once
    and kept under the test data dir.
    """
    cache = Path(os.environ.get("MERGEWORKS_DATA_DIR", ROOT / "var" / "test")) / "fixtures"
    path = cache / f"tiny-sd1-{seed}.safetensors"
    if not path.exists():
        import torch

        from merges.engine.tiny import save_single_file, tiny_sd1_components

        cache.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".partial-{os.getpid()}")
        save_single_file(tiny_sd1_components(seed), tmp, "sd1", dtype=torch.float16)
        os.replace(tmp, path)
    return path.read_bytes()


def sd1_document(base_version: int, other_version: int, *, alpha: float = 0.4, blocks: list[float] | None = None):
    blocks = blocks if blocks is not None else [round(0.1 * (i % 5), 1) for i in range(26)]
    return {
        "format": "mergeworks/recipe@1",
        "architecture": "sd1",
        "inputs": {"base": {"model_version": base_version}, "anime": {"model_version": other_version}},
        "steps": [
            {"id": "mix", "op": "weighted_sum", "inputs": ["base", "anime"], "alpha": alpha},
            {"id": "tune", "op": "weighted_sum", "inputs": ["mix", "base"], "alpha": {"blocks": blocks}},
        ],
        "output": {"step": "tune", "dtype": "fp16"},
    }


@pytest.fixture
def carol(db):
    from hub.accounts.services import user_create

    return user_create(username="carol", password="carol-password-1", email="carol@example.com")


@pytest.fixture
def sd1_inputs(carol):
    """Two public tiny SD1 checkpoints by carol whose licences allow derivatives."""
    base = make_published_model(
        carol, "Tiny Base", data=tiny_checkpoint_bytes(1), allow_commercial_use=["Image", "RentCivit", "Sell"]
    )
    anime = make_published_model(
        carol, "Tiny Anime", data=tiny_checkpoint_bytes(2), allow_commercial_use=["Image"], allow_no_credit=False
    )
    return base.versions.get(), anime.versions.get()


@pytest.fixture
def public_recipe(alice, sd1_inputs):
    from merges.registry.services import recipe_create

    base, anime = sd1_inputs
    return recipe_create(
        owner=alice, title="Soft Anime Mix", source=sd1_document(base.pk, anime.pk), description="A gentle blend."
    )


def blob_objects(prefix: str = "", *, since: float = 0.0) -> dict[str, int]:
    """Objects in the blob store under `prefix` (S3 or local) written at or after `since`, key -> size.

    The store may be shared with other suites running at the same time, so
    tests look for objects by their own sizes and keys, never at the total.
    """
    from hub.files.storage import blob_storage

    storage = blob_storage()
    if hasattr(storage, "bucket_name"):
        paginator = storage.client.get_paginator("list_objects_v2")
        found = {}
        for page in paginator.paginate(Bucket=storage.bucket_name, Prefix=prefix):
            found.update(
                {
                    obj["Key"]: obj["Size"]
                    for obj in page.get("Contents", [])
                    # S3 times have whole seconds.
                    if obj["LastModified"].timestamp() >= int(since)
                }
            )
        return found
    root = Path(storage.location)
    return {
        str(p.relative_to(root)): p.stat().st_size
        for p in root.rglob("*")
        if p.is_file() and str(p.relative_to(root)).startswith(prefix) and p.stat().st_mtime >= int(since)
    }


def put_blob(data: bytes):
    from hub.files.services import blob_ingest_stream

    return blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16], header_reader=io.BytesIO(data))
