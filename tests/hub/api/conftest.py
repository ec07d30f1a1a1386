"""Fixtures for the v1 API tests: response snapshots and a small, fixed catalogue."""
from __future__ import annotations

import json
import os
import re
from pathlib import Path
from typing import Any

import pytest

SNAPSHOT_DIR = Path(__file__).parent / "snapshots"
ID_KEYS = {"id", "modelId"}
DATE_KEYS = {"createdAt", "updatedAt", "publishedAt", "lastUsedAt", "revokedAt"}
_URL_IDS = re.compile(r"(/models/|fileId=|/model-versions/)\d+")


def normalize(value: Any, key: str | None = None) -> Any:
    """Replace what changes between runs (ids, dates, cursors, key secrets) with placeholders."""
    if isinstance(value, dict):
        return {k: normalize(v, k) for k, v in value.items()}
    if isinstance(value, list):
        return [normalize(v, key) for v in value]
    if value is None:
        return None
    if key in ID_KEYS and isinstance(value, int):
        return "<id>"
    if key in DATE_KEYS:
        return "<date>"
    if key == "nextCursor":
        return "<cursor>"
    if key == "key" and isinstance(value, str) and value.startswith("mw_"):
        return "<api-key>"
    if key == "prefix" and isinstance(value, str) and value.startswith("mw_"):
        return "<prefix>"
    if isinstance(value, str):
        value = _URL_IDS.sub(lambda m: m.group(1) + "<id>", value)
        value = re.sub(r"cursor=[A-Za-z0-9_\-]+", "cursor=<cursor>", value)
    return value


@pytest.fixture
def snapshot():
    """`snapshot("name", body)` compares with snapshots/name.json; UPDATE_SNAPSHOTS=1 rewrites it."""

    def check(name: str, body: Any) -> None:
        path = SNAPSHOT_DIR / f"{name}.json"
        actual = normalize(body)
        if os.environ.get("UPDATE_SNAPSHOTS") == "1":
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(actual, indent=2, sort_keys=True, ensure_ascii=False) + "\n")
            return
        assert path.exists(), f"no snapshot {path.name}; run with UPDATE_SNAPSHOTS=1 to create it"
        expected = json.loads(path.read_text())
        assert actual == expected, f"response differs from snapshot {path.name} (UPDATE_SNAPSHOTS=1 to accept)"

    return check


@pytest.fixture
def catalogue(alice, bob):
    """Two public models by alice (a checkpoint with two versions, a tagged NSFW LoRA), one private by bob."""
    from hub.catalog.models import ModelVersion
    from tests.support.builders import add_published_version, make_published_model, tiny_safetensors_bytes

    checkpoint = make_published_model(
        alice, "Dream Mix", data=tiny_safetensors_bytes(101), tags=["anime", "Merge"], checkpoint_type="Merge",
        description="A *merge*.", allow_commercial_use=["Image"], version_name="v1",
    )
    add_published_version(checkpoint, "v2", data=tiny_safetensors_bytes(102), trained_words=["dreamy"])
    lora = make_published_model(
        alice, "Ink Style", data=tiny_safetensors_bytes(103, kind="lora"), type="LORA", tags=["style"],
        nsfw=True, base_model="SDXL 1.0", allow_no_credit=False,
    )
    ModelVersion.objects.filter(model=lora).update(trained_words=["inkstyle", "lineart"])
    secret = make_published_model(bob, "Bob Secret", data=tiny_safetensors_bytes(104), visibility="private",
                                  tags=["anime"])
    return {"checkpoint": checkpoint, "lora": lora, "secret": secret}
