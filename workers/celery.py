"""The Celery app. Queue routing and reliability options live in hub.settings (CELERY_*)."""
from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "hub.settings")

app = Celery("mergeworks")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.conf.include = [
    "workers.tasks.housekeeping",
    "workers.tasks.ingest",
    "workers.tasks.merge",
    "workers.tasks.render",
    "workers.tasks.community",
]
