from __future__ import annotations

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hub.accounts.models import User
from hub.catalog.models import Model, ModelVersion
from hub.catalog.services import CatalogError
from hub.files.services import FileRejected
from hub.hf.selectors import repo_id_of, version_commit_id
from hub.hf.services import catalog_import_folder


class Command(BaseCommand):
    help = (
        "Import a diffusers folder (model_index.json plus component subfolders) as one model version, "
        "served to huggingface_hub and DiffusionPipeline.from_pretrained as a repo."
    )

    def create_parser(self, prog_name, subcommand, **kwargs):
        # `--version NAME` as in hub_import_file; Django's own `--version` gives way.
        kwargs.setdefault("conflict_handler", "resolve")
        return super().create_parser(prog_name, subcommand, **kwargs)

    def add_arguments(self, parser):
        parser.add_argument("path", type=Path, help="the folder, e.g. one written by pipe.save_pretrained()")
        parser.add_argument("--owner", required=True, help="username of the model's owner")
        parser.add_argument("--model", required=True, help="model name (created if it does not exist)")
        parser.add_argument("--version", "--version-name", dest="version_name", default="v1.0",
                            help="version name (default v1.0)")
        parser.add_argument("--type", default=Model.Type.CHECKPOINT, choices=Model.Type.values)
        parser.add_argument("--base-model", default=ModelVersion.BaseModel.SD_1_5, choices=ModelVersion.BaseModel.values)
        parser.add_argument("--tag", action="append", default=[], dest="tags")
        parser.add_argument("--draft", action="store_true", help="leave the version unpublished")

    def handle(self, *args, **opts):
        owner = User.objects.filter(username=opts["owner"]).first()
        if owner is None:
            raise CommandError(f"no user named {opts['owner']!r}; create it first (manage.py createsuperuser)")
        try:
            result = catalog_import_folder(
                path=opts["path"],
                owner=owner,
                model_name=opts["model"],
                version_name=opts["version_name"],
                type=opts["type"],
                base_model=opts["base_model"],
                tags=opts["tags"],
                publish=not opts["draft"],
            )
        except (FileRejected, CatalogError) as exc:
            raise CommandError(str(exc)) from exc
        total = sum(f.size_bytes for f in result.files)
        self.stdout.write(
            f"imported {len(result.files)} files ({total} bytes) as model {result.model.pk} "
            f"version {result.version.pk}\n  repo {repo_id_of(result.model)}  "
            f"revision {result.version.name}  commit {version_commit_id(result.version)}"
        )
