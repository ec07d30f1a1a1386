"""Preview settings: Django settings when set there (tests use the `settings` fixture), else the environment."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from django.conf import settings

from hub.env import env_int, env_str


def _get(name: str, fallback):
    value = getattr(settings, name, None)
    return fallback() if value is None else value


def base_configs_dir() -> Path:
    return Path(_get("BASE_CONFIGS_DIR", lambda: str(settings.DATA_DIR / "base-configs")))


def device() -> str:
    configured = _get("RENDER_DEVICE", lambda: env_str("RENDER_DEVICE", ""))
    if configured:
        return configured
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def batch_size(device_name: str) -> int:
    """Images per pipeline call; halved automatically on out-of-memory."""
    default = 8 if device_name.startswith("cuda") else 4
    return int(_get("RENDER_BATCH_SIZE", lambda: env_int("RENDER_BATCH_SIZE", default)))


def max_attempts() -> int:
    return int(_get("RENDER_JOB_MAX_ATTEMPTS", lambda: env_int("RENDER_JOB_MAX_ATTEMPTS", 3)))


def max_images() -> int:
    return int(_get("RENDER_MAX_IMAGES", lambda: env_int("RENDER_MAX_IMAGES", 64)))


def max_active_per_user() -> int:
    return int(_get("RENDER_MAX_ACTIVE_PER_USER", lambda: env_int("RENDER_MAX_ACTIVE_PER_USER", 4)))


def heartbeat_seconds() -> float:
    """How often a running job writes its heartbeat (from a thread, independent of batch length)."""
    return float(_get("RENDER_JOB_HEARTBEAT_SECONDS", lambda: float(env_str("RENDER_JOB_HEARTBEAT_SECONDS", "5"))))


def stale_seconds() -> int:
    """A running job whose heartbeat is older than this has lost its worker and may be claimed again."""
    return int(_get("RENDER_JOB_STALE_SECONDS", lambda: env_int("RENDER_JOB_STALE_SECONDS", 120)))


def cache_dir() -> Path:
    """Local copies of checkpoints; shared with merge workers on the same host (same bound, same LRU)."""
    from merges.registry import conf as registry_conf

    return Path(_get("RENDER_CACHE_DIR", lambda: env_str("RENDER_CACHE_DIR", "") or str(registry_conf.cache_dir())))


def cache_max_bytes() -> int:
    from merges.registry import conf as registry_conf

    return int(_get("RENDER_CACHE_MAX_BYTES", registry_conf.cache_max_bytes))


def min_free_bytes() -> int | None:
    """Free memory below which the worker drops its cached pipeline after a job (None: the renderer's default)."""
    value = _get("RENDER_MIN_FREE_BYTES", lambda: env_int("RENDER_MIN_FREE_BYTES", 0))
    return int(value) or None


def default_spec_overrides() -> dict[str, Any]:
    """Fields laid over every base model's default prompt set (tests shrink renders with it)."""
    return dict(_get("PREVIEW_DEFAULT_SPEC", dict))
