from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hub.accounts.models import User
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import CatalogError
from hub.files.importing import catalog_import_file
from hub.files.services import FileRejected


class Command(BaseCommand):
    help = "Stream a local model file into storage, hash and validate it, and create its catalogue rows."

    def create_parser(self, prog_name, subcommand, **kwargs):
        # The interface is `--version NAME`; Django's own `--version`
        # (print Django's version) gives way to it.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path)
        parser.add_argument("--owner", required=True, help="username of the model's owner")
        parser.add_argument("--model", required=True, help="model name (created if it does not exist)")
        parser.add_argument("--version", default="v1.0", help="version name (default v1.0)")
        parser.add_argument("--type", default=Model.Type.CHECKPOINT, choices=Model.Type.values)
        parser.add_argument("--base-model", default=ModelVersion.BaseModel.SD_1_5, choices=ModelVersion.BaseModel.values)
        parser.add_argument("--trained-word", action="append", default=[], dest="trained_words")
        parser.add_argument("--tag", action="append", default=[], dest="tags")
        parser.add_argument("--draft", action="store_true", help="leave the version unpublished")

    def handle(self, *args, **opts):
        owner = User.objects.filter(username=opts["owner"]).first()
        if owner is None:
            raise CommandError(f"no user named {opts['owner']!r}; create it first (manage.py createsuperuser)")
        try:
            result = catalog_import_file(
                path=opts["path"],
                owner=owner,
                model_name=opts["model"],
                version_name=opts["version"],
                type=opts["type"],
                base_model=opts["base_model"],
                trained_words=opts["trained_words"],
                tags=opts["tags"],
                publish=not opts["draft"],
            )
        except (FileRejected, CatalogError) as exc:
            raise CommandError(str(exc)) from exc
        f = result.file
        self.stdout.write(
            f"imported {f.name} ({f.size_bytes} bytes) as model {result.model.pk} version {result.version.pk} "
            f"file {f.pk}\n  SHA256 {f.sha256}\n  AutoV2 {f.autov2}  CRC32 {f.crc32.upper()}  BLAKE3 {f.blake3[:16]}…"
        )
