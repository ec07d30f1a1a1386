"""A small REST client for the hub, and the exit codes scripts rely on."""
from __future__ import annotations

from typing import Any
from urllib.parse import quote, urljoin

import requests

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
EXIT_NOT_FOUND = 3
EXIT_AUTH = 4

NOT_FOUND_CODES = {"RepoNotFound", "RevisionNotFound", "EntryNotFound"}
TIMEOUT = (10, 120)  # connect, read
USER_AGENT = "mergeworks-cli/0.1"


class CliError(Exception):
    """A failure to report in one line; `exit_code` is one of the EXIT_* codes."""

    def __init__(self, message: str, exit_code: int = EXIT_FAILURE):
        super().__init__(message)
        self.exit_code = exit_code


def exit_code_for_status(status: int) -> int:
    if status in (401, 403):
        return EXIT_AUTH
    if status in (404, 410):
        return EXIT_NOT_FOUND
    return EXIT_FAILURE


def error_message(response: requests.Response) -> str:
    """The hub's JSON `error` (or the Hugging Face routes' X-Error-Message), else the status line."""
    try:
        body = response.json()
    except ValueError:
        body = None
    message = None
    if isinstance(body, dict):
        message = body.get("error") or body.get("detail")
        details = body.get("details")
        if isinstance(details, dict) and details:
            parts = [f"{field}: {'; '.join(map(str, errs)) if isinstance(errs, list) else errs}"
                     for field, errs in details.items()]
            message = f"{message} ({', '.join(parts)})" if message else ", ".join(parts)
    message = message or response.headers.get("X-Error-Message") or response.reason or "request failed"
    if response.status_code == 429 and (retry := response.headers.get("Retry-After")):
        message = f"{message} (retry after {retry}s)"
    return f"{message} [HTTP {response.status_code}]"


def raise_for_response(response: requests.Response, *, what: str = "") -> None:
    if response.status_code < 400:
        return
    prefix = f"{what}: " if what else ""
    # The Hugging Face routes answer 401 for a repo that is missing *or* private
    # (as the Hub does); the error code says which kind of "not found" it is.
    if response.headers.get("X-Error-Code") in NOT_FOUND_CODES:
        hint = " (if it is private, log in as its owner)" if response.status_code == 401 else ""
        raise CliError(f"{prefix}{error_message(response)}{hint}", EXIT_NOT_FOUND)
    hint = " (run `mergeworks login` with a valid API key)" if response.status_code == 401 else ""
    raise CliError(f"{prefix}{error_message(response)}{hint}", exit_code_for_status(response.status_code))


class Api:
    def __init__(self, endpoint: str, token: str | None = None):
        self.endpoint = endpoint.rstrip("/")
        self.token = token
        self.session = requests.Session()
        self.session.headers["User-Agent"] = USER_AGENT
        self.session.headers["Accept"] = "application/json"
        if token:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def url(self, path: str) -> str:
        return urljoin(self.endpoint + "/", path.lstrip("/"))

    def request(self, method: str, path: str, *, what: str = "", **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        try:
            response = self.session.request(method, self.url(path), **kwargs)
        except requests.ConnectionError as exc:
            raise CliError(f"cannot reach {self.endpoint}: {exc.__class__.__name__}") from exc
        except requests.Timeout as exc:
            raise CliError(f"{self.endpoint} did not answer in time") from exc
        raise_for_response(response, what=what)
        return response

    def get_json(self, path: str, *, what: str = "", **kwargs: Any) -> Any:
        return _json(self.request("GET", path, what=what, **kwargs))

    def post_json(self, path: str, body: Any = None, *, what: str = "", **kwargs: Any) -> Any:
        return _json(self.request("POST", path, what=what, json=body if body is not None else {}, **kwargs))

    # --- lookups shared by several commands -------------------------------------------

    def version(self, version_id: int) -> dict:
        return self.get_json(f"/api/v1/model-versions/{version_id}", what=f"model version {version_id}")

    def version_by_hash(self, hash: str) -> dict:
        return self.get_json(f"/api/v1/model-versions/by-hash/{quote(hash, safe='')}", what=f"hash {hash}")

    def repo_revision(self, repo_id: str, revision: str = "main") -> dict:
        """The Hugging Face-style info of `user/model` at a version name (or `main`)."""
        namespace, _, name = repo_id.partition("/")
        path = f"/api/models/{quote(namespace, safe='')}/{quote(name, safe='')}/revision/{quote(revision, safe='')}"
        return self.get_json(path, what=f"{repo_id}@{revision}")


def _json(response: requests.Response) -> Any:
    try:
        return response.json()
    except ValueError as exc:
        raise CliError(f"{response.url} answered {response.status_code} with a body that is not JSON") from exc
