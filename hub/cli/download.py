"""`mergeworks download`: name a file, fetch it resumably, verify its SHA-256.

Bytes go to `<dest>.part` first. A rerun (or an automatic retry after a
dropped connection) asks for `Range: bytes=<part size>-` and appends; a 200
instead of a 206 means the server sent the whole file, so the part starts
over. Only a file whose size and SHA-256 match what the hub published is
renamed into place; a mismatch deletes the part, since resuming it could
never succeed. File ids are content-addressed on the hub, so the bytes behind
a file id never change between attempts.
"""
from __future__ import annotations

import hashlib
import os
import re
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import requests

from hub.cli.api import TIMEOUT, Api, CliError, EXIT_FAILURE, EXIT_NOT_FOUND, EXIT_USAGE, raise_for_response

CHUNK = 1024 * 1024
RETRIES = 4
_HEX = re.compile(r"^[0-9a-fA-F]+$")
HASH_LENGTHS = (8, 10, 64)


@dataclass(frozen=True)
class Target:
    version_id: int | None = None
    hash: str | None = None
    repo_id: str | None = None
    revision: str = "main"

    def describe(self) -> str:
        if self.version_id is not None:
            return f"model version {self.version_id}"
        if self.hash is not None:
            return f"hash {self.hash.upper()}"
        return f"{self.repo_id}@{self.revision}"


def parse_target(text: str) -> Target:
    """`user/model[@version]`, a version id (digits), or a hash (hex of 8, 10 or 64 digits).

    All-digit text is a version id; pass `--hash` for an all-digit CRC32 or AutoV1.
    """
    text = text.strip()
    if "/" in text:
        repo, _, revision = text.partition("@")
        namespace, _, name = repo.partition("/")
        if not namespace or not name or "/" in name:
            raise CliError(f"{text!r}: expected user/model or user/model@version", EXIT_USAGE)
        return Target(repo_id=repo, revision=revision or "main")
    if text.isdigit():
        return Target(version_id=int(text))
    if _HEX.match(text) and len(text) in HASH_LENGTHS:
        return Target(hash=text.lower())
    raise CliError(
        f"{text!r} is not a version id, a hash (hex of 8, 10 or 64 digits) or user/model[@version]", EXIT_USAGE
    )


def resolve(api: Api, target: Target, *, file_name: str | None = None) -> tuple[dict, dict]:
    """(version body, file body) from the REST API for what the user named."""
    if target.hash is not None:
        version = api.version_by_hash(target.hash)
    elif target.version_id is not None:
        version = api.version(target.version_id)
    else:
        info = api.repo_revision(target.repo_id or "", target.revision)
        version_id = (info.get("mergeworks") or {}).get("versionId")
        if not isinstance(version_id, int):
            raise CliError(f"{target.describe()}: the hub did not say which version this is")
        version = api.version(version_id)
    files = version.get("files") or []
    if not files:
        raise CliError(f"{target.describe()} has no files", EXIT_NOT_FOUND)
    if file_name is not None:
        chosen = next((f for f in files if f["name"] == file_name), None)
        if chosen is None:
            names = ", ".join(f["name"] for f in files)
            raise CliError(f"{target.describe()} has no file {file_name!r}; it has: {names}", EXIT_NOT_FOUND)
        return version, chosen
    if target.hash is not None:
        for f in files:
            if any(str(v).lower() == target.hash for v in (f.get("hashes") or {}).values()):
                return version, f
    return version, next((f for f in files if f.get("primary")), files[0])


def destination(file: dict, output: Path | None) -> Path:
    name = Path(file["name"]).name
    if not name or name.startswith("."):
        raise CliError(f"the hub named the file {file['name']!r}; pass -o to choose a file name")
    if output is None:
        return Path.cwd() / name
    if output.is_dir():
        return output / name
    return output


def expected_digest(file: dict) -> tuple[str, int]:
    sha256 = str((file.get("hashes") or {}).get("SHA256") or "").lower()
    if len(sha256) != 64:
        raise CliError(f"the hub published no SHA-256 for {file['name']}; refusing to download unverifiable bytes")
    return sha256, round(float(file["sizeKB"]) * 1024)


def sha256_of(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(8 * CHUNK):
            h.update(chunk)
    return h.hexdigest()


def _progress(total: int, initial: int, name: str, enabled: bool):
    from tqdm import tqdm

    return tqdm(
        total=total, initial=initial, unit="B", unit_scale=True, unit_divisor=1024, desc=name,
        file=sys.stderr, disable=not enabled, leave=False,
    )


def fetch(api: Api, url: str, part: Path, *, size: int, name: str, progress: bool) -> str:
    """Bring `part` to `size` bytes from `url`, resuming; returns the SHA-256 of what it holds."""
    last_error: Exception | None = None
    for attempt in range(RETRIES + 1):
        offset = part.stat().st_size if part.exists() else 0
        if offset > size:
            part.unlink()
            offset = 0
        hasher = hashlib.sha256()
        if offset:
            with open(part, "rb") as f:
                while chunk := f.read(8 * CHUNK):
                    hasher.update(chunk)
        if offset == size:
            return hasher.hexdigest()
        headers = {"Range": f"bytes={offset}-"} if offset else {}
        try:
            with api.session.get(url, headers=headers, stream=True, timeout=TIMEOUT) as response:
                if response.status_code == 416:
                    part.unlink(missing_ok=True)
                    continue
                raise_for_response(response, what="download")
                if response.status_code == 206:
                    got = re.match(r"bytes (\d+)-", response.headers.get("Content-Range", ""))
                    if not got or int(got.group(1)) != offset:
                        raise CliError(f"the server answered range {response.headers.get('Content-Range')!r} "
                                       f"for bytes={offset}-")
                    mode = "ab"
                else:
                    # A 200 carries the whole file: start the part over.
                    offset, hasher, mode = 0, hashlib.sha256(), "wb"
                with _progress(size, offset, name, progress) as bar, open(part, mode) as out:
                    for chunk in response.iter_content(CHUNK):
                        out.write(chunk)
                        hasher.update(chunk)
                        bar.update(len(chunk))
            if part.stat().st_size == size:
                return hasher.hexdigest()
            last_error = CliError(f"the connection closed at {part.stat().st_size} of {size} bytes")
        except (requests.ConnectionError, requests.Timeout, requests.exceptions.ChunkedEncodingError) as exc:
            last_error = exc
        if attempt < RETRIES:
            time.sleep(min(2**attempt, 10))
    raise CliError(f"download interrupted ({last_error}); run the same command again to resume from {part.name}")


def download(
    api: Api, target: Target, *, output: Path | None, file_name: str | None, force: bool, progress: bool
) -> tuple[Path, dict, dict]:
    version, file = resolve(api, target, file_name=file_name)
    sha256, size = expected_digest(file)
    dest = destination(file, output)
    if dest.exists() and not force:
        if dest.stat().st_size == size and sha256_of(dest) == sha256:
            return dest, version, file
        raise CliError(f"{dest} exists with other contents; pass --force to replace it")
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    url = f"/api/download/models/{version['id']}?fileId={file['id']}"
    got = fetch(api, api.url(url), part, size=size, name=dest.name, progress=progress)
    if got != sha256:
        part.unlink(missing_ok=True)
        raise CliError(f"SHA-256 mismatch for {dest.name}: expected {sha256.upper()}, got {got.upper()}; "
                       "the partial file was deleted", EXIT_FAILURE)
    os.replace(part, dest)
    return dest, version, file
