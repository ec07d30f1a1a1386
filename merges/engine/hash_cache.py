"""Input SHA-256s remembered between runs, as A1111 keeps its ``cache.json``.

An entry is keyed by the file's real path and trusted only while the file's
size, modification time (ns) and inode are what they were when it was
hashed: a file rewritten in place, replaced by a rename or touched is hashed
again. The cache is a JSON file (``$MERGEWORKS_HASH_CACHE``, default
``$XDG_CACHE_HOME/mergeworks/hashes.json``); a missing or unreadable one is
an empty cache, never an error, and writes go through a temporary file and a
rename so a killed run leaves the old cache whole. Set
``MERGEWORKS_HASH_CACHE=off`` to disable it.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

__all__ = ["HashCache", "file_identity"]

_VERSION = 1
# Entries beyond this are dropped, oldest first (a cache of every file ever merged is not useful).
MAX_ENTRIES = 4096


def default_path() -> Path | None:
    configured = os.environ.get("MERGEWORKS_HASH_CACHE", "")
    if configured.lower() in ("off", "0", "false", "none"):
        return None
    if configured:
        return Path(configured)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "mergeworks" / "hashes.json"


def file_identity(path: str | os.PathLike[str]) -> tuple[str, dict[str, int]]:
    real = os.path.realpath(path)
    st = os.stat(real)
    return real, {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "inode": st.st_ino}


class HashCache:
    def __init__(self, path: Path | None = None, *, enabled: bool = True) -> None:
        self.path = default_path() if path is None and enabled else path
        self._entries: dict[str, dict] = self._load() if self.path else {}
        self._dirty: dict[str, dict] = {}

    def _load(self) -> dict[str, dict]:
        try:
            doc = json.loads(self.path.read_text())
        except (OSError, ValueError):
            return {}
        if not isinstance(doc, dict) or doc.get("version") != _VERSION or not isinstance(doc.get("entries"), dict):
            return {}
        return {k: v for k, v in doc["entries"].items() if isinstance(v, dict)}

    def get(self, path: str | os.PathLike[str]) -> str | None:
        """The remembered SHA-256 of ``path``, or None if unknown or the file changed since."""
        if not self.path:
            return None
        try:
            real, ident = file_identity(path)
        except OSError:
            return None
        entry = self._entries.get(real)
        if not entry or any(entry.get(k) != v for k, v in ident.items()):
            return None
        sha = entry.get("sha256")
        return sha if isinstance(sha, str) and len(sha) == 64 else None

    def put(self, path: str | os.PathLike[str], sha256: str, before: dict[str, int]) -> None:
        """Remember ``sha256`` for ``path`` if the file is still as it was (``before``) when hashing began."""
        if not self.path:
            return
        try:
            real, ident = file_identity(path)
        except OSError:
            return
        if ident != before:
            return  # changed while being hashed: the digest describes no single version of it
        entry = {**ident, "sha256": sha256.lower()}
        self._entries[real] = entry
        self._dirty[real] = entry

    def save(self) -> None:
        if not self.path or not self._dirty:
            return
        # Another run may have saved meanwhile: merge into what is on disk now.
        entries = self._load()
        entries.update(self._dirty)
        if len(entries) > MAX_ENTRIES:
            entries = dict(list(entries.items())[-MAX_ENTRIES:])
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=".hashes.", suffix=".part")
            with os.fdopen(fd, "w") as f:
                json.dump({"version": _VERSION, "entries": entries}, f, sort_keys=True)
            os.replace(tmp, self.path)
        except OSError:
            return  # a cache that cannot be written only costs the next run a hash
        self._dirty.clear()
