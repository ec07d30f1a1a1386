"""Civitai's `stats` fields for models and versions, from the denormalised counters.

No catalogue import here: hub.catalog.api_selectors reads these names to join
the counters into its `.values()` rows (a LEFT JOIN, never an extra query).
"""
from __future__ import annotations

from typing import Any

STAT_FIELDS = ("thumbs_up", "thumbs_down", "rating_score", "comment_count", "favorite_count")
STATS_VALUES = tuple(f"community_stats__{f}" for f in STAT_FIELDS)
RATING_KEY = "community_stats__rating_score"


def stats_out(row: dict[str, Any]) -> dict[str, Any]:
    """Missing or None counters (no review, comment or favourite yet) read as zero."""
    up = row.get("community_stats__thumbs_up") or 0
    down = row.get("community_stats__thumbs_down") or 0
    n = up + down
    return {
        "thumbsUpCount": up,
        "thumbsDownCount": down,
        # Civitai's 0–5 rating, from the recommend share.
        "rating": round(5 * up / n, 2) if n else 0,
        "ratingCount": n,
        "commentCount": row.get("community_stats__comment_count") or 0,
        "favoriteCount": row.get("community_stats__favorite_count") or 0,
    }


def stats_values(model_id: int | None = None, version_id: int | None = None) -> dict[str, Any]:
    """The STATS_VALUES of one model or version, for rows built from instances (detail pages): one query."""
    from hub.community.models import ModelStats, VersionStats

    qs = ModelStats.objects.filter(model_id=model_id) if model_id else VersionStats.objects.filter(pk=version_id)
    found = qs.values(*STAT_FIELDS).first() or {}
    return {f"community_stats__{k}": v for k, v in found.items()}
