"""Response bodies of REST API v1, built from plain rows (see api_selectors).

Field names follow Civitai's public API (`modelVersions`, `files`, `hashes`,
`stats.downloadCount`, `trainedWords`, `baseModel`, `downloadUrl`, …) so its
clients port easily. Hash names and hex digits are uppercase as Civitai sends
them; the database stores them lowercase. Plain functions over dicts, not DRF
serializers: on a 100-model page they are the difference between a few
milliseconds and tens of them.
"""
from __future__ import annotations

from datetime import datetime
from typing import Any

from hub.catalog.api_selectors import ModelPage, Row
from hub.community.stats import stats_out

HASH_NAMES = (("AutoV1", "autov1"), ("AutoV2", "autov2"), ("SHA256", "sha256"), ("CRC32", "crc32"),
              ("BLAKE3", "blake3"), ("AutoV3", "autov3"))


def iso(value: datetime | None) -> str | None:
    """ISO 8601 in UTC with milliseconds and a Z, as Civitai writes dates."""
    if value is None:
        return None
    return value.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def hashes_out(row: Row) -> dict[str, str]:
    return {name: row[column].upper() for name, column in HASH_NAMES if row[column]}


def file_out(row: Row, download_base: str) -> dict[str, Any]:
    return {
        "id": row["id"],
        "name": row["name"],
        "sizeKB": row["size_bytes"] / 1024,
        "type": "Model",
        "metadata": {"fp": row["precision"] or None, "format": row["format"]},
        "pickleScanResult": row["pickle_scan_status"],
        "pickleScanMessage": row["pickle_scan_message"] or None,
        "virusScanResult": row["virus_scan_status"] or None,
        "hashes": hashes_out(row),
        "primary": row["primary"],
        "downloadUrl": f"{download_base}{row['version_id']}?fileId={row['id']}",
    }


def hf_out(username: str, slug: str) -> dict[str, str]:
    """The model as a repo of the Hugging Face-compatible routes, for `huggingface_hub` (see hub.hf)."""
    return {"repoId": f"{username}/{slug}"}


def _mode(model_status: str) -> str | None:
    return "Archived" if model_status == "archived" else None


def version_out(row: Row, files: list[Row], download_base: str, *, with_model: bool = False) -> dict[str, Any]:
    body: dict[str, Any] = {
        "id": row["id"],
        "modelId": row["model_id"],
        "name": row["name"],
        "description": row["description"],
        "baseModel": row["base_model"],
        "trainedWords": row["trained_words"],
        "status": row["status"].title(),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "publishedAt": iso(row["published_at"]),
        "stats": {"downloadCount": row["download_count"], **stats_out(row)},
        "files": [file_out(f, download_base) for f in files],
        "downloadUrl": f"{download_base}{row['id']}",
    }
    if with_model:
        body["model"] = {
            "name": row["model__name"],
            "type": row["model__type"],
            "nsfw": row["model__nsfw"],
            "mode": _mode(row["model__status"]),
            "visibility": row["model__visibility"],
            "creator": {"username": row["model__owner__username"]},
            "hf": hf_out(row["model__owner__username"], row["model__slug"]),
        }
    return body


def model_out(row: Row, page: ModelPage, download_base: str) -> dict[str, Any]:
    files = page.files_by_version
    return {
        "id": row["id"],
        "name": row["name"],
        "description": row["description"],
        "type": row["type"],
        "checkpointType": row["checkpoint_type"] or None,
        "nsfw": row["nsfw"],
        "nsfwLevel": row["nsfw_level"],
        "cover": cover_out(row.get("cover"), download_base),
        "allowNoCredit": row["allow_no_credit"],
        "allowCommercialUse": row["allow_commercial_use"],
        "allowDerivatives": row["allow_derivatives"],
        "allowDifferentLicense": row["allow_different_license"],
        "visibility": row["visibility"],
        "mode": _mode(row["status"]),
        "createdAt": iso(row["created_at"]),
        "updatedAt": iso(row["updated_at"]),
        "publishedAt": iso(row["published_at"]),
        "stats": {"downloadCount": row["download_count"], **stats_out(row)},
        "creator": {"username": row["owner__username"]},
        "hf": hf_out(row["owner__username"], row["slug"]),
        "tags": page.tags_by_model.get(row["id"], []),
        "modelVersions": [
            version_out(v, files.get(v["id"], []), download_base) for v in page.versions_by_model.get(row["id"], [])
        ],
    }


def cover_out(cover, download_base: str) -> dict[str, Any] | None:
    from hub.uploads.image_selectors import normalized_cover

    body = normalized_cover(cover)
    if body is not None:
        # download_base is the absolute …/api/download/models/; image URLs share its site root.
        body["url"] = download_base.split("/api/download/", 1)[0] + body["url"]
    return body


def models_out(page: ModelPage, download_base: str) -> list[dict[str, Any]]:
    return [model_out(row, page, download_base) for row in page.models]
