"""Serving model files: the Civitai-style download endpoint and anything else
that hands out file bytes (the Hugging Face `resolve` endpoint reuses
`file_download_response`).

Costs stay small and constant per request: on S3 the answer is a redirect to a
short-lived presigned GET, on local disk the file is streamed in 1 MiB chunks
(with single-range support), and a download is counted by appending one row,
never by updating a shared counter: once per client and file within
DOWNLOAD_COUNT_WINDOW, for any request that starts a transfer (a redirect to
the store, or bytes for a GET whatever its Range). Every such request counts
against the client's rate limit.

Every failure is a `DownloadError` rendered as a small JSON body with a 4xx
status, so a client that saves "whatever came back" never stores an error page
as a model file.
"""
from __future__ import annotations

import logging
import re
from dataclasses import dataclass, field
from datetime import datetime
from datetime import timezone as dt_timezone
from email.utils import format_datetime, parsedate_to_datetime
from functools import partial
from typing import Callable
from urllib.parse import urlsplit

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseBase, HttpResponseRedirect, StreamingHttpResponse
from django.utils.http import content_disposition_header

from hub.api.errors import json_error
from hub.catalog.api_prepared import PreparedValuesQuery
from hub.catalog.api_selectors import version_visible_q_for
from hub.catalog.download_events import download_event_record
from hub.catalog.models import Model
from hub.files.models import ModelFile
from hub.files.storage import blob_storage
from hub.limits import RateLimited, client_ident, mark_once, rate_limit_hit

logger = logging.getLogger(__name__)


@dataclass
class DownloadError(Exception):
    """A refused download; `response()` renders it as JSON."""

    status: int
    code: str
    message: str
    headers: dict[str, str] = field(default_factory=dict)

    def __str__(self) -> str:
        return self.message

    def response(self) -> HttpResponse:
        response = json_error(self.message, code=self.code, status_code=self.status, headers=self.headers)
        response["Cache-Control"] = "no-store"
        return response


# --- which file ---------------------------------------------------------------

_CANDIDATE_FILE_FIELDS = (
    "id", "version_id", "name", "storage_key", "size_bytes", "format", "precision", "primary", "sha256",
    "pickle_scan_status", "virus_scan_status", "created_at",
)


def _candidates_qs(version_id: int, viewer_id: int | None):
    return (
        ModelFile.objects.filter(version_id=version_id)
        .filter(version_visible_q_for(viewer_id, prefix="version__"))
        .order_by("-primary", "id")
        .values(*_CANDIDATE_FILE_FIELDS, "version__model__status", "version__model__owner_id")
    )


# Every download starts here, so it runs as a prepared statement (see api_prepared).
_CANDIDATES_ANONYMOUS = PreparedValuesQuery(
    "mw_download_files_anonymous", lambda version_id: _candidates_qs(version_id, None), (int,)
)
_CANDIDATES_VIEWER = PreparedValuesQuery(
    "mw_download_files_viewer", lambda version_id, viewer_id: _candidates_qs(version_id, viewer_id), (int, int)
)


@dataclass
class VersionFiles:
    files: list[ModelFile]  # primary first
    model_status: str
    model_owner_id: int


def download_candidates(user, version_id: int) -> VersionFiles | None:
    """The files of `version_id` if the version is visible to `user` (the rule of `version_get_for`).

    One query. None means the version does not exist, is not visible, or has
    no file, all of which a downloader sees as 404.
    """
    if user is not None and user.is_authenticated:
        rows = _CANDIDATES_VIEWER.rows(version_id, user.pk)
    else:
        rows = _CANDIDATES_ANONYMOUS.rows(version_id)
    if not rows:
        return None
    files = [ModelFile(**{name: row[name] for name in _CANDIDATE_FILE_FIELDS}) for row in rows]
    return VersionFiles(files=files, model_status=rows[0]["version__model__status"],
                        model_owner_id=rows[0]["version__model__owner_id"])


def download_file_select(
    files: list[ModelFile], *, file_id: int | None = None, format: str | None = None, fp: str | None = None
) -> ModelFile:
    """Pick the file a download request means among a version's files (primary first).

    `fileId` names one file of the version. Otherwise `format` and `fp` are
    filters (case-insensitive, Civitai's values: SafeTensor/PickleTensor,
    fp16/bf16/fp32/fp8): asking for fp16 and silently getting a 4x larger fp32
    file would be worse than a clear 404. Among the matches the primary file
    wins, then the oldest.
    """
    version_id = files[0].version_id
    if file_id is not None:
        for f in files:
            if f.id == file_id:
                return f
        raise DownloadError(404, "file_not_found", f"version {version_id} has no file {file_id}")
    if format:
        files = [f for f in files if f.format.lower() == format.lower()]
    if fp:
        files = [f for f in files if f.precision.lower() == fp.lower()]
    if not files:
        wanted = ", ".join(f"{k}={v}" for k, v in (("format", format), ("fp", fp)) if v)
        raise DownloadError(404, "file_not_found", f"version {version_id} has no file matching {wanted}")
    return files[0]


# --- rate limit and counting ------------------------------------------------------

def download_rate_limit(request: HttpRequest, *, scope: str = "download") -> None:
    """Fixed-window limit per user (or per client address when anonymous); raises a 429.

    Counted in Redis (or the embedded counter file), so every worker process
    shares one count; see hub.limits.
    """
    try:
        rate_limit_hit(scope=scope, ident=client_ident(request), limit=settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE,
                       what="downloads")
    except RateLimited as exc:
        raise DownloadError(429, "rate_limited", str(exc), headers=exc.headers) from None


def starts_transfer(request: HttpRequest, response: HttpResponseBase) -> bool:
    """Whether `response` hands the client file bytes, or a URL to fetch them from.

    Any GET that is answered with bytes counts, whatever its Range (a suffix
    or multi-range request reads as much as a plain one), and so does any
    redirect to the store, HEAD included: huggingface_hub reads the presigned
    URL from the 302 to a HEAD and fetches the bytes without asking again.
    """
    if response.status_code == 302:
        return True
    return request.method == "GET" and response.status_code in (200, 206)


def download_count(*, version_id: int, file_id: int | None, user) -> None:
    """Record one download; `downloads_rollup` folds them into the counters."""
    user_id = user.pk if user is not None and user.is_authenticated else None
    download_event_record(version_id=version_id, file_id=file_id, user_id=user_id)


def download_count_once(*, ident: str, version_id: int, file_id: int, user) -> bool:
    """Record a download unless this client was counted for this file within DOWNLOAD_COUNT_WINDOW.

    A resumed download, the HEAD and GET of one client fetch, or a retry is
    one download, however many requests it takes.
    """
    if not mark_once(f"dl:{ident}:{file_id}", ttl=max(1, settings.DOWNLOAD_COUNT_WINDOW)):
        return False
    download_count(version_id=version_id, file_id=file_id, user=user)
    return True


# --- responses ----------------------------------------------------------------

def file_etag(model_file: ModelFile) -> str:
    """Strong validator: the content hash, quoted (what Hugging Face sends for LFS files)."""
    return f'"{model_file.sha256.lower()}"'


def _etag_matches(header: str, etag: str, *, weak: bool) -> bool:
    header = header.strip()
    if header == "*":
        return True
    for candidate in header.split(","):
        candidate = candidate.strip()
        if weak and candidate.startswith("W/"):
            candidate = candidate[2:]
        if candidate == etag:
            return True
    return False


_RANGE_SPEC = re.compile(r"^(\d*)-(\d*)$")


def parse_range(header: str, size: int) -> tuple[int, int] | None:
    """The inclusive byte range a `Range` header asks for, or None to send the whole file.

    Raises DownloadError(416) for a malformed or unsatisfiable bytes range.
    Several ranges at once are not supported and, as RFC 9110 allows, ignored.
    """
    unit, sep, spec = header.partition("=")
    if not sep or unit.strip().lower() != "bytes":
        return None
    parts = [p.strip() for p in spec.split(",")]
    if len(parts) > 1:
        return None
    match = _RANGE_SPEC.match(parts[0])
    unsatisfiable = DownloadError(
        416, "range_not_satisfiable", f"cannot serve range {header!r} of a {size}-byte file",
        headers={"Content-Range": f"bytes */{size}"},
    )
    if not match or (not match.group(1) and not match.group(2)):
        raise unsatisfiable
    first, last = match.group(1), match.group(2)
    if not first:  # suffix range: the last N bytes
        length = int(last)
        if length == 0 or size == 0:
            raise unsatisfiable
        return max(0, size - length), size - 1
    start = int(first)
    end = int(last) if last else size - 1
    if start >= size or end < start:
        raise unsatisfiable
    return start, min(end, size - 1)


def _range_applies(request: HttpRequest, etag: str, last_modified: datetime) -> bool:
    """If-Range: resume only if the file is still the one the client has."""
    if_range = request.META.get("HTTP_IF_RANGE", "").strip()
    if not if_range:
        return True
    if if_range.startswith('"') or if_range.startswith("W/"):
        return if_range == etag  # strong comparison; weak tags never match
    try:
        when = parsedate_to_datetime(if_range)
    except (TypeError, ValueError):
        return False
    return when is not None and int(when.timestamp()) == int(last_modified.timestamp())


def _attachment_name(model_file: ModelFile) -> str:
    return model_file.name.replace("\r", "").replace("\n", "")


def _apply_headers(response: HttpResponseBase, headers: dict[str, str] | None) -> HttpResponseBase:
    for key, value in (headers or {}).items():
        response[key] = value
    return response


def file_download_response(
    request: HttpRequest,
    model_file: ModelFile,
    *,
    extra_headers: dict[str, str] | None = None,
    absolute_redirect: bool = True,
) -> HttpResponseBase:
    """The response that hands `model_file` to the client; no access checks here.

    - `If-None-Match` matching the sha256 ETag: 304 on either backend.
    - S3: 302 to a presigned GET whose response carries the attachment
      filename. With `absolute_redirect=False` a Location on this very host is
      made relative (huggingface_hub follows relative redirects on HEAD but
      stops at absolute ones, reading X-Linked-* from the 302).
    - Local disk: 200 or 206 streamed from `iter_range` with Accept-Ranges,
      Content-Range, Content-Length, ETag and Last-Modified; HEAD gets the
      headers only. A bad range is a 416 JSON error.

    `extra_headers` are set on every outcome (including 304 and 416); DownloadError
    is raised for 410/416 so callers render errors their own way.
    """
    etag = file_etag(model_file)
    last_modified = model_file.created_at
    if_none_match = request.META.get("HTTP_IF_NONE_MATCH")
    if if_none_match and _etag_matches(if_none_match, etag, weak=True):
        response = HttpResponse(status=304)
        response["ETag"] = etag
        return _apply_headers(response, extra_headers)

    storage = blob_storage()
    url = storage.download_url(model_file.storage_key, _attachment_name(model_file))
    if url is not None:
        if not absolute_redirect:
            parts = urlsplit(url)
            if parts.netloc == request.get_host() and parts.scheme == request.scheme:
                url = parts.path + (f"?{parts.query}" if parts.query else "")
        response = HttpResponseRedirect(url)
        response["Cache-Control"] = "no-store"  # the presigned URL expires
        response["ETag"] = etag
        return _apply_headers(response, extra_headers)

    size = model_file.size_bytes
    if not storage.exists(model_file.storage_key):
        logger.error("blob %s of file %s is missing from storage", model_file.storage_key, model_file.pk)
        raise DownloadError(410, "file_unavailable", "this file is no longer available from storage")

    byte_range = None
    range_header = request.META.get("HTTP_RANGE")
    if range_header and _range_applies(request, etag, last_modified):
        try:
            byte_range = parse_range(range_header, size)
        except DownloadError as exc:
            exc.headers = {**exc.headers, **(extra_headers or {})}
            raise
    start, end = byte_range if byte_range else (0, size - 1)
    length = end - start + 1 if size else 0

    if request.method == "HEAD" or length == 0:
        response: HttpResponseBase = HttpResponse(b"", content_type="application/octet-stream")
    else:
        response = StreamingHttpResponse(
            storage.iter_range(model_file.storage_key, start, end), content_type="application/octet-stream"
        )
    if byte_range:
        response.status_code = 206
        response["Content-Range"] = f"bytes {start}-{end}/{size}"
    response["Content-Length"] = str(length)
    response["Accept-Ranges"] = "bytes"
    response["ETag"] = etag
    response["Last-Modified"] = format_datetime(last_modified.astimezone(dt_timezone.utc), usegmt=True)
    response["Content-Disposition"] = content_disposition_header(True, _attachment_name(model_file))
    # Proxies must not recompress: that would break byte ranges and the hash.
    response["Cache-Control"] = "private, no-transform"
    return _apply_headers(response, extra_headers)


# --- the Civitai-style endpoint ---------------------------------------------------

def download_serve(
    request: HttpRequest,
    *,
    version_id: int,
    file_id: int | None = None,
    format: str | None = None,
    fp: str | None = None,
) -> HttpResponseBase:
    """`GET /api/download/models/{versionId}`: authentication already ran (DRF).

    Order matters: scope (403) and the rate limit (429) come before any lookup
    so that refused clients cannot probe which versions exist.
    """
    user = request.user
    key = getattr(request, "auth", None)
    if key is not None and hasattr(key, "has_scope") and not key.has_scope("download"):
        raise DownloadError(403, "permission_denied", "this API key lacks the 'download' scope")
    download_rate_limit(request)

    candidates = download_candidates(user, version_id)
    if candidates is None:
        raise DownloadError(404, "not_found", f"model version {version_id} not found")
    is_owner = user.is_authenticated and candidates.model_owner_id == user.pk
    if candidates.model_status == Model.Status.ARCHIVED and not is_owner:
        raise DownloadError(410, "archived", "this model has been archived and its files are no longer served")
    model_file = download_file_select(candidates.files, file_id=file_id, format=format, fp=fp)
    if model_file.pickle_scan_status == ModelFile.ScanStatus.DANGER and not is_owner:
        raise DownloadError(403, "unsafe_file", "this file failed the pickle scan and is not served")
    if model_file.virus_scan_status == ModelFile.ScanStatus.DANGER and not is_owner:
        raise DownloadError(403, "unsafe_file", "the virus scanner flagged this file and it is not served")

    response = file_download_response(request, model_file)
    if starts_transfer(request, response):
        count = partial(download_count_once, ident=client_ident(request), version_id=version_id,
                        file_id=model_file.id, user=user)
        run_when_closed(response, count)
    return response


def run_when_closed(response: HttpResponseBase, fn: Callable[[], None]) -> None:
    """Run `fn` once the server has sent `response` (WSGI servers call close() after the last byte).

    Counting a download is bookkeeping the client need not wait for: the
    redirect or the file goes out first, and a streamed file is counted once
    it has been served (or abandoned). `fn` runs before Django's own close,
    which fires request_finished and may close the database connection.
    """
    django_close = response.close
    pending = [fn]  # close() may be called more than once (test client, middleware); run fn once

    def close() -> None:
        try:
            if pending:
                pending.pop()()
        except Exception:  # the response is already out; never fail its close
            logger.exception("post-response task failed")
        finally:
            django_close()

    response.close = close
