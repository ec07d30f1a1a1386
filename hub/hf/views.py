"""Hugging Face Hub read endpoints, so `huggingface_hub` and diffusers work with HF_ENDPOINT.

Plain Django views rather than DRF: the client reads headers (X-Error-Code,
X-Repo-Commit, X-Linked-*) and status codes, not bodies, and HEAD must behave
exactly like the GET it stands for.

Error statuses follow the Hub, because huggingface_hub decides what to do from
them (see `huggingface_hub/utils/_http.py:hf_raise_for_status`): a missing or
hidden repo is `RepoNotFound` with 401 for anonymous callers and 404 for
authenticated ones, so a private repo and a missing one look the same;
`RevisionNotFound` and `EntryNotFound` are 404; an invalid key is a 401 with
the Hub's "Invalid credentials" message so it is not mistaken for a missing repo.
"""
from __future__ import annotations

import base64
import binascii
import functools
import json
import re
from dataclasses import dataclass, field
from urllib.parse import urlencode

from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.http import HttpRequest, HttpResponseBase, JsonResponse
from django.views.decorators.csrf import csrf_exempt
from django.views.decorators.http import require_http_methods

from hub.accounts.services import KEY_PREFIX, InvalidApiKey, api_key_authenticate
from hub.api.errors import safe_header_text
from hub.catalog.models import Model, ModelVersion
from hub.files.downloads import (
    DownloadError,
    download_count_once,
    download_rate_limit,
    file_download_response,
    run_when_closed,
    starts_transfer,
)
from hub.files.models import ModelFile
from hub.limits import client_ident
from hub.hf.selectors import (
    RepoRevision,
    git_blob_id,
    hf_datetime,
    is_owner,
    lfs_pointer,
    path_entry,
    repo_get_for,
    repo_id_of,
    revision_resolve,
    tree_entries,
)

INVALID_CREDENTIALS = "Invalid credentials in Authorization header"
TREE_PAGE_SIZE = 1000
TREE_PAGE_SIZE_EXPANDED = 50


@dataclass
class HfError(Exception):
    status: int
    message: str
    code: str | None = None
    headers: dict[str, str] = field(default_factory=dict)

    def response(self) -> JsonResponse:
        response = JsonResponse({"error": self.message}, status=self.status)
        if self.code:
            response["X-Error-Code"] = self.code
        # User-supplied parts of the message may hold any character; a header may not.
        response["X-Error-Message"] = safe_header_text(self.message)
        response["Cache-Control"] = "no-store"
        for key, value in self.headers.items():
            response[key] = value
        return response


@dataclass
class Caller:
    user: object
    key: object | None  # the ApiKey when the request carried one


def _caller(request: HttpRequest, *, scope: str, allow_session: bool = True) -> Caller:
    """Bearer API key, else the website session, else anonymous."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    scheme, _, token = header.partition(" ")
    # huggingface_hub sends whatever Hugging Face token its user is logged in
    # with to HF_ENDPOINT too; such a token is not ours to judge, so it counts
    # as no token and public repos stay downloadable. Only a Mergeworks key
    # that fails is an error.
    if header and scheme.lower() == "bearer" and token.strip().startswith(KEY_PREFIX):
        try:
            key = api_key_authenticate(token.strip())
        except InvalidApiKey:
            raise HfError(401, INVALID_CREDENTIALS) from None
        if not key.has_scope(scope):
            raise HfError(403, f"this API key lacks the '{scope}' scope")
        return Caller(user=key.user, key=key)
    user = getattr(request, "user", None) if allow_session else None
    if user is not None and user.is_authenticated:
        return Caller(user=user, key=None)
    return Caller(user=AnonymousUser(), key=None)


# No revision, file or folder name holds a control character, and PostgreSQL
# refuses NUL in a query, so such a name is simply not found.
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _check_name(kind: str, value: str, code: str, headers: dict[str, str] | None = None) -> None:
    if _CONTROL.search(value):
        raise HfError(404, f"{kind} not found: {value!r}", code=code, headers=headers or {})


def _repo_not_found(caller: Caller) -> HfError:
    status = 404 if caller.user.is_authenticated else 401
    return HfError(status, "Repository not found", code="RepoNotFound")


def _revision(caller: Caller, namespace: str, name: str, revision: str) -> RepoRevision:
    model = repo_get_for(caller.user, namespace, name)
    if model is None:
        raise _repo_not_found(caller)
    _check_name("Revision", revision, "RevisionNotFound")
    rev = revision_resolve(caller.user, model, revision)
    if rev is None:
        raise HfError(404, f"Invalid rev id: {revision}", code="RevisionNotFound")
    return rev


def _handles_errors(view):
    @functools.wraps(view)
    def wrapper(request, *args, **kwargs):
        try:
            return view(request, *args, **kwargs)
        except HfError as exc:
            return exc.response()

    return wrapper


# --- repo info ------------------------------------------------------------------

def _tags(rev: RepoRevision) -> list[str]:
    tags = [t.name for t in rev.model.tags.all()]
    tags.append(rev.model.type.lower())
    if any(f.format == ModelFile.Format.DIFFUSERS for f in rev.files):
        tags.append("diffusers")
    if any(f.name.endswith(".safetensors") for f in rev.files):
        tags.append("safetensors")
    tags.append(f"base_model:{rev.version.base_model}")
    return list(dict.fromkeys(tags))


def _sibling(f: ModelFile, *, blobs: bool) -> dict:
    sibling: dict = {"rfilename": f.name}
    if blobs:
        pointer = lfs_pointer(f.sha256.lower(), f.size_bytes)
        sibling.update(
            size=f.size_bytes,
            blobId=git_blob_id(pointer),
            lfs={"sha256": f.sha256.lower(), "size": f.size_bytes, "pointerSize": len(pointer)},
        )
    return sibling


def model_info_json(rev: RepoRevision, *, blobs: bool = False) -> dict:
    model, version = rev.model, rev.version
    is_diffusers = any(f.name == "model_index.json" for f in rev.files)
    info = {
        "_id": f"mergeworks-model-{model.pk}",
        "id": rev.repo_id,
        "modelId": rev.repo_id,
        "author": model.owner.username,
        "sha": rev.commit,
        "lastModified": hf_datetime(version.published_at or version.updated_at),
        "createdAt": hf_datetime(model.created_at),
        "private": model.visibility == Model.Visibility.PRIVATE,
        "gated": False,
        "disabled": False,
        "downloads": model.download_count,
        "likes": 0,
        "tags": _tags(rev),
        "pipeline_tag": "text-to-image" if model.type == Model.Type.CHECKPOINT else None,
        "library_name": "diffusers" if is_diffusers else None,
        "siblings": [_sibling(f, blobs=blobs) for f in rev.files],
        "usedStorage": sum(f.size_bytes for f in rev.files),
        # Catalogue ids, so a client holding a repo id can use the REST API too
        # (the mergeworks CLI resolves `user/model@version` this way).
        "mergeworks": {
            "modelId": model.pk,
            "versionId": version.pk,
            "versionName": version.name,
            "type": model.type,
            "baseModel": version.base_model,
            "published": version.status == ModelVersion.Status.PUBLISHED,
        },
    }
    return info


@require_http_methods(["GET"])
@_handles_errors
def model_info(request: HttpRequest, namespace: str, name: str, revision: str = "main") -> JsonResponse:
    """`GET /api/models/{repo_id}` and `/api/models/{repo_id}/revision/{rev}`."""
    caller = _caller(request, scope="read")
    rev = _revision(caller, namespace, name, revision)
    blobs = request.GET.get("blobs", "").lower() in {"1", "true"}
    return JsonResponse(model_info_json(rev, blobs=blobs))


# --- tree and paths-info -----------------------------------------------------------

def _last_commit(rev: RepoRevision) -> dict:
    return {
        "id": rev.commit,
        "title": f"{rev.model.name} {rev.version.name}",
        "date": hf_datetime(rev.version.published_at or rev.version.created_at),
    }


def _encode_cursor(path: str) -> str:
    return base64.urlsafe_b64encode(path.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> str:
    try:
        return base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (binascii.Error, UnicodeDecodeError):
        raise HfError(400, "invalid cursor") from None


@require_http_methods(["GET"])
@_handles_errors
def tree(request: HttpRequest, namespace: str, name: str, revision: str, path: str = "") -> JsonResponse:
    """`GET /api/models/{repo_id}/tree/{rev}[/{path}]`, paginated by cursor with a `Link: rel="next"` header."""
    caller = _caller(request, scope="read")
    rev = _revision(caller, namespace, name, revision)
    _check_name("Entry", path, "EntryNotFound", {"X-Repo-Commit": rev.commit})
    recursive = request.GET.get("recursive", "").lower() in {"1", "true"}
    expand = request.GET.get("expand", "").lower() in {"1", "true"}
    entries = tree_entries(rev, path, recursive=recursive)
    if entries is None:
        raise HfError(404, f"{path} does not exist on {revision}", code="EntryNotFound", headers={"X-Repo-Commit": rev.commit})
    if cursor := request.GET.get("cursor"):
        after = _decode_cursor(cursor)
        entries = [e for e in entries if e.path > after]
    default_size = TREE_PAGE_SIZE_EXPANDED if expand else TREE_PAGE_SIZE
    page_size = max(1, int(getattr(settings, "HF_TREE_PAGE_SIZE", default_size)))
    page, more = entries[:page_size], len(entries) > page_size
    last_commit = _last_commit(rev) if expand else None
    response = JsonResponse([e.as_json(last_commit=last_commit) for e in page], safe=False)
    response["X-Repo-Commit"] = rev.commit
    if more:
        params = {k: v for k, v in request.GET.items() if k != "cursor"}
        params["cursor"] = _encode_cursor(page[-1].path)
        response["Link"] = f'<{request.build_absolute_uri(request.path)}?{urlencode(params)}>; rel="next"'
    return response


def _requested_paths(request: HttpRequest) -> tuple[list[str], bool]:
    """huggingface_hub posts a form (`paths` repeated); other clients may post JSON."""
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except ValueError:
            raise HfError(400, "body is not valid JSON") from None
        paths = body.get("paths", []) if isinstance(body, dict) else []
        if isinstance(paths, str):
            paths = [paths]
        expand = bool(body.get("expand")) if isinstance(body, dict) else False
    else:
        paths = request.POST.getlist("paths")
        expand = request.POST.get("expand", "").lower() in {"1", "true"}
    if not isinstance(paths, list) or not all(isinstance(p, str) for p in paths):
        raise HfError(400, "paths must be a list of strings")
    if len(paths) > 1000:
        raise HfError(400, "at most 1000 paths per request")
    return paths, expand


# No CSRF token: huggingface_hub posts without one. The view only reads, and
# it ignores the session cookie, so a cross-site form post learns nothing.
@csrf_exempt
@require_http_methods(["POST"])
@_handles_errors
def paths_info(request: HttpRequest, namespace: str, name: str, revision: str) -> JsonResponse:
    """`POST /api/models/{repo_id}/paths-info/{rev}`: the entries that exist among `paths`."""
    caller = _caller(request, scope="read", allow_session=False)
    rev = _revision(caller, namespace, name, revision)
    paths, expand = _requested_paths(request)
    last_commit = _last_commit(rev) if expand else None
    found = [entry for p in dict.fromkeys(paths) if (entry := path_entry(rev, p)) is not None]
    response = JsonResponse([e.as_json(last_commit=last_commit) for e in found], safe=False)
    response["X-Repo-Commit"] = rev.commit
    return response


# --- resolve ------------------------------------------------------------------------

@require_http_methods(["GET", "HEAD"])
@_handles_errors
def resolve(request: HttpRequest, namespace: str, name: str, revision: str, filename: str) -> HttpResponseBase:
    """`HEAD`/`GET /{repo_id}/resolve/{rev}/{filename}`.

    The bytes come from `hub.files.downloads.file_download_response`: a 302 to
    a presigned URL on S3 (absolute, so huggingface_hub reads the X-Linked-*
    headers from the redirect itself and drops its Authorization header before
    following it), Range/206 streaming on local disk.
    """
    caller = _caller(request, scope="download")
    rev = _revision(caller, namespace, name, revision)
    commit_header = {"X-Repo-Commit": rev.commit}
    _check_name("Entry", filename, "EntryNotFound", commit_header)
    model_file = rev.file(filename)
    if model_file is None:
        # X-Repo-Commit on the 404 lets the client cache that the file is absent at this commit.
        raise HfError(404, f"Entry not found: {filename}", code="EntryNotFound", headers=commit_header)
    if rev.model.status == Model.Status.ARCHIVED and not is_owner(caller.user, rev.model):
        raise HfError(410, "this model has been archived and its files are no longer served", headers=commit_header)
    sha256 = model_file.sha256.lower()
    headers = {
        **commit_header,
        "X-Linked-Etag": f'"{sha256}"',
        "X-Linked-Size": str(model_file.size_bytes),
    }
    # The rate limit and the download count key on request.user; a bearer key
    # is not seen by Django's session middleware.
    request.user = caller.user
    try:
        response = file_download_response(request, model_file, extra_headers=headers, absolute_redirect=True)
        transfer = starts_transfer(request, response)
        if transfer:
            # Decided on the answer, not the request: a HEAD on S3 gets the
            # presigned URL (the client never asks again), a HEAD on local disk
            # gets headers only; a GET with any Range gets bytes. A refused
            # response is dropped before its (lazy) stream has opened anything.
            download_rate_limit(request)
    except DownloadError as exc:
        raise HfError(exc.status, exc.message, headers={**headers, **exc.headers}) from None
    # One repo download is one fetch of its primary file (the checkpoint, or
    # model_index.json of a diffusers folder), not one per config file.
    if transfer and model_file.primary:
        count = functools.partial(download_count_once, ident=client_ident(request), version_id=rev.version.pk,
                                  file_id=model_file.pk, user=caller.user)
        run_when_closed(response, count)
    return response
