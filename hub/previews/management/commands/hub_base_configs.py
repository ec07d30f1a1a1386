"""Write the weightless base-model config folders preview workers load checkpoints with; no network."""
from __future__ import annotations

import json
import os
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from hub.previews import conf

# Bumped when the facts written change, so a folder written by an older release is rewritten.
STAMP_FILE = "mergeworks-base-config.json"
STAMP_VERSION = 1


class Command(BaseCommand):
    help = (
        "Write weightless diffusers config folders (model_index.json, component configs, CLIP tokenizers) "
        "for from_single_file(config=…, local_files_only=True) into BASE_CONFIGS_DIR, offline. "
        "Folders already written by this version are kept unless --force."
    )

    def add_arguments(self, parser):
        from hub.previews.renderer.base_configs import BASE_CONFIGS

        parser.add_argument("names", nargs="*", metavar="NAME", help=f"default: all of {', '.join(BASE_CONFIGS)}")
        parser.add_argument("--dest", help="default: BASE_CONFIGS_DIR")
        parser.add_argument("--force", action="store_true", help="rewrite folders that are already there")

    def handle(self, *args, names, dest, force, **opts):
        os.environ["HF_HUB_OFFLINE"] = "1"  # everything below is local; make any slip fail fast
        from hub.previews.renderer.base_configs import BASE_CONFIGS, BaseConfigError, base_config_write

        unknown = [n for n in names if n not in BASE_CONFIGS]
        if unknown:
            raise CommandError(f"unknown base config(s): {', '.join(unknown)}; known: {', '.join(BASE_CONFIGS)}")
        root = Path(dest) if dest else conf.base_configs_dir()
        for name in names or list(BASE_CONFIGS):
            stamp = root / name / STAMP_FILE
            if not force and _stamp_ok(stamp):
                self.stdout.write(f"{name}: up to date in {root / name}")
                continue
            try:
                target = base_config_write(name, root)
            except BaseConfigError as exc:
                raise CommandError(f"{name}: {exc}") from exc
            stamp.write_text(json.dumps({"name": name, "version": STAMP_VERSION}) + "\n", encoding="utf-8")
            files = [p for p in target.rglob("*") if p.is_file()]
            size = sum(p.stat().st_size for p in files)
            self.stdout.write(
                f"{name}: {BASE_CONFIGS[name].description} -> {target} ({len(files)} files, {size // 1024} KiB)"
            )


def _stamp_ok(stamp: Path) -> bool:
    try:
        return json.loads(stamp.read_text(encoding="utf-8")).get("version") == STAMP_VERSION
    except (OSError, ValueError):
        return False
