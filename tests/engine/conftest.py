"""Engine tests need no Django, database or S3 (the engine imports no Django).

The root conftest makes every test depend on the S3 bucket fixture, which in turn
needs pytest-django's database setup; overriding it here lets
``pytest -p no:django tests/engine`` run without PostgreSQL, Redis or moto.
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session", autouse=True)
def _s3_bucket() -> None:
    return None


@pytest.fixture(autouse=True)
def _hash_cache_in_tmp(tmp_path, monkeypatch) -> None:
    """The CLI's input hash cache goes under the test's tmp dir, never the user's ~/.cache."""
    monkeypatch.setenv("MERGEWORKS_HASH_CACHE", str(tmp_path / "hash-cache.json"))
