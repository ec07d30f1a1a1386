"""Importing a diffusers folder (`model_index.json` plus component subfolders) as one version.

Each member becomes a ModelFile of format Diffusers whose name is its path
relative to the folder (`unet/config.json`), which is what the Hugging Face
endpoints list and what `DiffusionPipeline.from_pretrained` asks for.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from hub.accounts.models import User
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import CatalogError, model_create, model_version_create, model_version_publish
from hub.files.models import ModelFile
from hub.files.services import BlobInfo, FileRejected, blob_ingest_path, blob_ingest_stream, model_file_create

MODEL_INDEX = "model_index.json"
# Pickled weights could run code when loaded; diffusers writes safetensors by default.
PICKLE_SUFFIXES = {".bin", ".ckpt", ".pt", ".pth", ".pkl", ".pickle"}
MAX_FOLDER_FILES = 1000


@dataclass
class FolderImportResult:
    model: Model
    version: ModelVersion
    files: list[ModelFile]
    created_model: bool


def diffusers_folder_members(root: Path) -> list[tuple[str, Path]]:
    """(relative name, path) of every file to import, model_index.json first.

    Hidden files and folders (`.git`, `.cache`, `.DS_Store`) are skipped.
    Symlinks are refused rather than followed: one could point anywhere on
    the importing machine.
    """
    if not root.is_dir():
        raise FileRejected("not_found", f"{root} is not a folder")
    if not (root / MODEL_INDEX).is_file():
        raise FileRejected("not_diffusers", f"{root} has no {MODEL_INDEX}; it is not a diffusers folder")
    members: list[tuple[str, Path]] = []
    pending = [root]
    while pending:
        folder = pending.pop()
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith("."):
                continue
            if entry.is_symlink():
                raise FileRejected("symlink", f"{entry} is a symlink; copy the file into the folder instead")
            if entry.is_dir():
                pending.append(entry)
                continue
            if entry.suffix.lower() in PICKLE_SUFFIXES:
                raise FileRejected(
                    "pickle_not_allowed",
                    f"{entry.relative_to(root)} holds pickled weights; save the pipeline with safe_serialization=True",
                )
            members.append((entry.relative_to(root).as_posix(), entry))
            if len(members) > MAX_FOLDER_FILES:
                raise FileRejected("too_many_files", f"a diffusers folder may hold at most {MAX_FOLDER_FILES} files")
    members.sort(key=lambda m: (m[0] != MODEL_INDEX, m[0]))
    return members


def _ingest_member(name: str, path: Path) -> BlobInfo:
    if name.endswith(".safetensors"):
        blob = blob_ingest_path(path=path)
        if blob.format != ModelFile.Format.SAFETENSOR:
            raise FileRejected("pickle_not_allowed", f"{name} is named .safetensors but holds a pickle")
        return dataclasses.replace(blob, format=ModelFile.Format.DIFFUSERS)
    size = path.stat().st_size
    with open(path, "rb") as reader:
        head = reader.read(16)
        reader.seek(0)
        return blob_ingest_stream(reader=reader, size=size, head=head, format=ModelFile.Format.DIFFUSERS)


def catalog_import_folder(
    *,
    path: Path,
    owner: User,
    model_name: str,
    version_name: str = "v1.0",
    type: str = Model.Type.CHECKPOINT,
    base_model: str = ModelVersion.BaseModel.SD_1_5,
    tags: list[str] | None = None,
    description: str = "",
    publish: bool = True,
) -> FolderImportResult:
    """Store a diffusers folder as a new version of `owner`'s model `model_name` (created if missing).

    Blobs are written first; the rows come in one transaction, so a failure
    leaves at most unreferenced content-addressed blobs, never half a folder.
    A version that already exists is refused: its commit id (a digest of its
    files) must not change under clients that cached it.
    """
    members = diffusers_folder_members(path)
    blobs = [(name, _ingest_member(name, member_path)) for name, member_path in members]
    with transaction.atomic():
        model = Model.objects.filter(owner=owner, name=model_name).first()
        created = model is None
        if model is None:
            model = model_create(owner=owner, name=model_name, type=type, tags=tags or [], description=description)
        elif model.type != type:
            raise CatalogError(f"model {model_name!r} exists with type {model.type}, not {type}", field="type")
        if ModelVersion.objects.filter(model=model, name=version_name).exists():
            raise CatalogError(f"version {version_name!r} already exists for this model", field="name")
        version = model_version_create(model=model, name=version_name, base_model=base_model)
        files = [
            model_file_create(version=version, blob=blob, name=name, primary=(name == MODEL_INDEX))
            for name, blob in blobs
        ]
        if publish:
            model_version_publish(version=version)
    return FolderImportResult(model=model, version=version, files=files, created_model=created)
