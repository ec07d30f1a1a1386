"""Registry settings.

Each is read from Django settings when set there (tests override them with the
`settings` fixture), otherwise from the environment, so a worker process
started with e.g. `MERGE_JOB_STALE_SECONDS=5` picks it up without a settings
edit.
"""
from __future__ import annotations

from pathlib import Path

from django.conf import settings

from hub.env import env_bool, env_int, env_str


def _get(name: str, fallback):
    value = getattr(settings, name, None)
    return fallback() if value is None else value


def max_attempts() -> int:
    """Attempts a merge job gets (worker lost, transient storage errors) before it fails."""
    return int(_get("MERGE_JOB_MAX_ATTEMPTS", lambda: env_int("MERGE_JOB_MAX_ATTEMPTS", 3)))


def stale_seconds() -> float:
    """A running job whose heartbeat is older than this has lost its worker, and its claim may be taken over.

    Some twenty missed beats: long enough that a busy database or a slow
    beat does not hand a live merge to a second worker, short enough that the
    redelivered message of a killed worker starts the next attempt within
    seconds (see jobs._claim).
    """
    return float(_get("MERGE_JOB_STALE_SECONDS", lambda: float(env_str("MERGE_JOB_STALE_SECONDS", "10"))))


def requeue_seconds() -> int:
    """A queued job untouched for this long has its message sent again (a lost message is harmless to resend)."""
    return int(_get("MERGE_JOB_REQUEUE_SECONDS", lambda: env_int("MERGE_JOB_REQUEUE_SECONDS", 3600)))


def unsent_grace_seconds() -> int:
    """A queued job whose message was never sent is resent by the sweeper once it is this old."""
    return int(_get("MERGE_JOB_UNSENT_GRACE_SECONDS", lambda: env_int("MERGE_JOB_UNSENT_GRACE_SECONDS", 10)))


def heartbeat_seconds() -> float:
    """How often a running job writes its progress and heartbeat, and looks for a cancel request."""
    return float(_get("MERGE_JOB_HEARTBEAT_SECONDS", lambda: float(env_str("MERGE_JOB_HEARTBEAT_SECONDS", "0.5"))))


def cache_dir() -> Path:
    return Path(_get("MERGE_CACHE_DIR", lambda: env_str("MERGE_CACHE_DIR", str(settings.DATA_DIR / "merge-cache"))))


def cache_max_bytes() -> int:
    return int(_get("MERGE_CACHE_MAX_BYTES", lambda: env_int("MERGE_CACHE_MAX_BYTES", 50 * 1024**3)))


def device() -> str:
    configured = _get("MERGE_DEVICE", lambda: env_str("MERGE_DEVICE", ""))
    if configured:
        return configured
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def debug_tensor_delay() -> float:
    """Test-only: seconds to sleep after each tensor, so a test can kill a worker mid-merge."""
    return float(_get("MERGE_DEBUG_TENSOR_DELAY", lambda: float(env_str("MERGE_DEBUG_TENSOR_DELAY", "0"))))


def previews_enabled() -> bool:
    """Whether a published merge output asks for its preview grid (when preview rendering is deployed)."""
    return bool(_get("MERGE_PREVIEWS", lambda: env_bool("MERGE_PREVIEWS", True)))
