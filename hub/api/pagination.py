"""Opaque keyset cursors and query-parameter parsing shared by the v1 list endpoints.

A cursor is base64url(JSON) of the list it belongs to and the last row's sort
key and id. Keyset pages stay stable while rows are inserted: a new row lands
before or after the cursor and never shifts what the next page holds, which
offset pagination cannot promise.
"""
from __future__ import annotations

import base64
import binascii
import json
from datetime import datetime
from typing import Any
from urllib.parse import urlencode

from rest_framework.exceptions import ValidationError

MAX_LIMIT = 100


def encode_cursor(kind: str, *parts: Any) -> str:
    encoded = [p.isoformat() if isinstance(p, datetime) else p for p in parts]
    raw = json.dumps([kind, *encoded], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(value: str, kind: str, arity: int) -> list[Any]:
    """The parts of a cursor made by `encode_cursor(kind, …)`; 400 for anything else."""
    try:
        raw = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
        decoded = json.loads(raw)
    except (binascii.Error, ValueError, UnicodeDecodeError):
        decoded = None
    if not isinstance(decoded, list) or len(decoded) != arity + 1 or decoded[0] != kind:
        raise ValidationError({"cursor": ["invalid cursor for this list and sort; start again without it"]})
    return decoded[1:]


def cursor_datetime(value: Any) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        raise ValidationError({"cursor": ["invalid cursor"]}) from None
    if parsed.tzinfo is None:
        raise ValidationError({"cursor": ["invalid cursor"]})
    return parsed


def cursor_int(value: Any) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise ValidationError({"cursor": ["invalid cursor"]})
    return value


def cursor_float(value: Any) -> float | None:
    """A float sort key (None: a row with no value, sorted last)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValidationError({"cursor": ["invalid cursor"]})
    return float(value)


def parse_limit(request, *, default: int, maximum: int = MAX_LIMIT) -> int:
    raw = request.query_params.get("limit")
    if raw in (None, ""):
        return default
    try:
        limit = int(raw)
    except ValueError:
        raise ValidationError({"limit": ["must be an integer"]}) from None
    if not 1 <= limit <= maximum:
        raise ValidationError({"limit": [f"must be between 1 and {maximum}"]})
    return limit


def multi_param(request, name: str) -> list[str]:
    """`?types=A&types=B` and `?types=A,B` alike (Civitai clients send both)."""
    values: list[str] = []
    for raw in request.query_params.getlist(name):
        values.extend(v.strip() for v in raw.split(",") if v.strip())
    return values


def parse_bool(request, name: str) -> bool | None:
    raw = request.query_params.get(name)
    if raw in (None, ""):
        return None
    lowered = raw.strip().lower()
    if lowered in ("true", "1", "yes"):
        return True
    if lowered in ("false", "0", "no"):
        return False
    raise ValidationError({name: ["must be true or false"]})


def page_metadata(request, next_cursor: str | None) -> dict[str, Any]:
    """Civitai's `metadata` block: `nextCursor` and an absolute `nextPage` (null on the last page)."""
    if next_cursor is None:
        return {"nextCursor": None, "nextPage": None}
    params = [(k, v) for k in request.query_params for v in request.query_params.getlist(k) if k != "cursor"]
    params.append(("cursor", next_cursor))
    return {"nextCursor": next_cursor, "nextPage": request.build_absolute_uri(f"{request.path}?{urlencode(params)}")}
