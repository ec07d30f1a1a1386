"""Importing a local file into the catalogue (the `hub_import_file` command)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from django.db import transaction

from hub.accounts.models import User
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import CatalogError, model_create, model_version_create, model_version_publish
from hub.files.models import ModelFile
from hub.files.services import FileRejected, blob_ingest_path, model_file_create


@dataclass
class ImportResult:
    model: Model
    version: ModelVersion
    file: ModelFile
    created_model: bool


def catalog_import_file(
    *,
    path: Path,
    owner: User,
    model_name: str,
    version_name: str = "v1.0",
    type: str = Model.Type.CHECKPOINT,
    base_model: str = ModelVersion.BaseModel.SD_1_5,
    trained_words: list[str] | None = None,
    tags: list[str] | None = None,
    description: str = "",
    publish: bool = True,
    file_name: str | None = None,
) -> ImportResult:
    """Store `path` as a file of `owner`'s model `model_name` (created if missing).

    The blob is written before any row; if a later step fails the blob is only
    an unreferenced content-addressed object, never a visible half-import.
    """
    if not path.is_file():
        raise FileRejected("not_found", f"{path} is not a file")
    blob = blob_ingest_path(path=path)
    if blob.format != ModelFile.Format.SAFETENSOR:
        raise FileRejected(
            "pickle_not_allowed",
            f"{path.name} is a pickle checkpoint; upload it through the website or API, where it is scanned first",
        )
    with transaction.atomic():
        model = Model.objects.filter(owner=owner, name=model_name).first()
        created = model is None
        if created:
            model = model_create(
                owner=owner, name=model_name, type=type, tags=tags or [], description=description
            )
        elif model.type != type:
            raise CatalogError(f"model {model_name!r} exists with type {model.type}, not {type}", field="type")
        version = ModelVersion.objects.filter(model=model, name=version_name).first()
        if version is None:
            version = model_version_create(
                model=model, name=version_name, base_model=base_model, trained_words=trained_words or []
            )
        model_file = model_file_create(version=version, blob=blob, name=file_name or path.name)
        if publish:
            model_version_publish(version=version)
    return ImportResult(model=model, version=version, file=model_file, created_model=created)
