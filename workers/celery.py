"""The Celery app (defined in hub.celery, so the web side sends tasks by name without importing workers/)."""
from __future__ import annotations

from hub.celery import app

__all__ = ["app"]
