"""Reads behind the Hugging Face-compatible endpoints.

A repo is `{username}/{model-slug}`; a revision is one ModelVersion, named
either by its version name, by `main` (the latest published version) or by a
40-hex commit id. Git has nothing to do with it: the commit id is a digest of
the version's file set (sorted names and SHA-256s), so it is immutable for a
given set of files and clients may cache snapshots under it forever.

Every file is presented as a Git LFS object: its `oid` in listings is the git
blob id of its LFS pointer and its ETag is its SHA-256, which is what
huggingface_hub names cache blobs by. That keeps listings free of reads from
storage (a plain git blob id would need the file's bytes).
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as dt_timezone

from django.db.models import Prefetch

from hub.catalog.models import Model, ModelVersion
from hub.catalog.selectors import model_get_for
from hub.files.models import ModelFile

MAIN_REVISION = "main"
COMMIT_DOMAIN = b"mergeworks-tree-v1\n"


@dataclass(frozen=True)
class RepoRevision:
    model: Model
    version: ModelVersion
    commit: str
    files: tuple[ModelFile, ...]  # sorted by name; files hidden from this user are left out

    @property
    def repo_id(self) -> str:
        return repo_id_of(self.model)

    def file(self, name: str) -> ModelFile | None:
        for f in self.files:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True)
class TreeEntry:
    type: str  # "file" or "directory"
    path: str
    oid: str
    size: int = 0
    sha256: str = ""

    def as_json(self, *, last_commit: dict | None = None) -> dict:
        if self.type == "directory":
            body: dict = {"type": "directory", "oid": self.oid, "size": 0, "path": self.path}
        else:
            pointer = lfs_pointer(self.sha256, self.size)
            body = {
                "type": "file",
                "oid": self.oid,
                "size": self.size,
                "path": self.path,
                "lfs": {"oid": self.sha256, "size": self.size, "pointerSize": len(pointer)},
            }
        if last_commit is not None:
            body["lastCommit"] = last_commit
        return body


def repo_id_of(model: Model) -> str:
    return f"{model.owner.username}/{model.slug}"


def lfs_pointer(sha256: str, size: int) -> bytes:
    return f"version https://git-lfs.github.com/spec/v1\noid sha256:{sha256}\nsize {size}\n".encode()


def git_blob_id(data: bytes) -> str:
    return hashlib.sha1(b"blob %d\0" % len(data) + data).hexdigest()


def file_set_digest(files: list[tuple[str, str]]) -> str:
    """sha1 over sorted (name, sha256) pairs: the commit id of a version, or the oid of a folder."""
    h = hashlib.sha1(COMMIT_DOMAIN)
    for name, sha256 in sorted(files):
        h.update(f"{name}\0{sha256.lower()}\n".encode())
    return h.hexdigest()


def version_commit_id(version: ModelVersion) -> str:
    return file_set_digest([(f.name, f.sha256) for f in version.files.all()])


def hf_datetime(value: datetime | None) -> str | None:
    """The one timestamp format huggingface_hub parses: 2022-08-19T07:19:38.123Z."""
    if value is None:
        return None
    value = value.astimezone(dt_timezone.utc)
    return value.strftime("%Y-%m-%dT%H:%M:%S.") + f"{value.microsecond // 1000:03d}Z"


def is_owner(user, model: Model) -> bool:
    return user is not None and user.is_authenticated and model.owner_id == user.pk


def repo_get_for(user, namespace: str, name: str) -> Model | None:
    """The model behind `namespace/name` if `user` may see it (the detail rules of the catalogue)."""
    model_id = Model.objects.filter(owner__username=namespace, slug=name).values_list("pk", flat=True).first()
    if model_id is None:
        return None
    return model_get_for(user, model_id)


def _visible_versions(user, model: Model):
    versions = ModelVersion.objects.filter(model=model).prefetch_related(
        Prefetch("files", queryset=ModelFile.objects.order_by("name"))
    )
    if not is_owner(user, model):
        versions = versions.filter(status=ModelVersion.Status.PUBLISHED, moderation="")
    if model.moderation == "removed":
        return versions.none()
    # Taken down: never served, to the owner neither.
    return versions.exclude(moderation="removed")


def revision_resolve(user, model: Model, revision: str) -> RepoRevision | None:
    """The version a revision names, or None when there is no such revision for this user.

    `main` is the latest published version, for owners too: the branch a
    client follows must not move to a draft. Owners reach drafts by name or
    commit id.
    """
    versions = _visible_versions(user, model)
    version: ModelVersion | None
    if revision == MAIN_REVISION:
        version = (
            versions.filter(status=ModelVersion.Status.PUBLISHED, published_at__isnull=False)
            .order_by("-published_at", "-id")
            .first()
        )
    else:
        version = versions.filter(name=revision).first()
        if version is None and len(revision) == 40 and all(c in "0123456789abcdef" for c in revision):
            # Newest first, so two versions with identical files resolve to the newer one.
            for candidate in versions.order_by("-created_at", "-id"):
                if version_commit_id(candidate) == revision:
                    version = candidate
                    break
    if version is None:
        return None
    all_files = list(version.files.all())
    commit = file_set_digest([(f.name, f.sha256) for f in all_files])
    owner = is_owner(user, model)
    # Files that failed the pickle or virus scan are not served to others (as on the
    # download endpoint), so they are not listed to them either.
    shown = tuple(f for f in all_files if owner or ModelFile.ScanStatus.DANGER not in (
        f.pickle_scan_status, f.virus_scan_status))
    version.model = model
    return RepoRevision(model=model, version=version, commit=commit, files=shown)


def revision_folders(rev: RepoRevision) -> dict[str, list[ModelFile]]:
    """Each folder path (never the root) with the files below it at any depth."""
    folders: dict[str, list[ModelFile]] = {}
    for f in rev.files:
        parts = f.name.split("/")
        for i in range(1, len(parts)):
            folders.setdefault("/".join(parts[:i]), []).append(f)
    return folders


def tree_entries(rev: RepoRevision, path: str = "", *, recursive: bool = False) -> list[TreeEntry] | None:
    """Entries below folder `path` ("" is the root), sorted by path; None if `path` is not a folder."""
    folders = revision_folders(rev)
    path = path.strip("/")
    if path and path not in folders:
        return None
    prefix = f"{path}/" if path else ""
    entries: list[TreeEntry] = []
    for f in rev.files:
        if not f.name.startswith(prefix):
            continue
        rest = f.name[len(prefix):]
        if recursive or "/" not in rest:
            entries.append(_file_entry(f))
    for folder, members in folders.items():
        if not folder.startswith(prefix):
            continue
        rest = folder[len(prefix):]
        if recursive or "/" not in rest:
            entries.append(_folder_entry(folder, members))
    entries.sort(key=lambda e: e.path)
    return entries


def path_entry(rev: RepoRevision, path: str) -> TreeEntry | None:
    """The file or folder at `path`, for paths-info."""
    path = path.strip("/")
    f = rev.file(path)
    if f is not None:
        return _file_entry(f)
    members = revision_folders(rev).get(path)
    if members:
        return _folder_entry(path, members)
    return None


def _file_entry(f: ModelFile) -> TreeEntry:
    sha256 = f.sha256.lower()
    return TreeEntry(
        type="file", path=f.name, oid=git_blob_id(lfs_pointer(sha256, f.size_bytes)), size=f.size_bytes, sha256=sha256
    )


def _folder_entry(folder: str, members: list[ModelFile]) -> TreeEntry:
    prefix = f"{folder}/"
    oid = file_set_digest([(f.name[len(prefix):], f.sha256) for f in members])
    return TreeEntry(type="directory", path=folder, oid=oid)
