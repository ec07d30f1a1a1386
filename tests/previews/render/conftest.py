"""Rendering tests need no Django, database or S3 (hub.previews.renderer imports no Django).

Overriding the root conftest's bucket fixture lets
``pytest -p no:django tests/previews/render`` run without PostgreSQL or moto.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from tests.previews.tiny_files import CONFIG_NAMES, tiny_checkpoint, write_base_configs


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket() -> None:
    return None


@pytest.fixture(scope="session")
def base_configs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_base_configs(tmp_path_factory.mktemp("base-configs"))


@pytest.fixture(scope="session")
def pipelines(base_configs: Path):
    """One loaded tiny pipeline per architecture, shared by the module's tests (loading takes seconds)."""
    from hub.previews.renderer.pipeline import load_pipeline

    loaded = {}

    def get(arch: str):
        if arch not in loaded:
            loaded[arch] = load_pipeline(arch, tiny_checkpoint(arch, 0), base_configs / CONFIG_NAMES[arch])
        return loaded[arch]

    return get
