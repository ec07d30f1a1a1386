"""Included from hub/api/urls.py under `api/` (namespace `api`)."""
from django.urls import path

from hub.moderation import api

urlpatterns = [
    path("v1/reports", api.ReportListView.as_view(), name="reports"),
    path("v1/moderation/queue", api.QueueView.as_view(), name="moderation-queue"),
    path("v1/moderation/actions", api.ActionListView.as_view(), name="moderation-actions"),
]
