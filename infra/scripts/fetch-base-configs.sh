#!/usr/bin/env bash
# Fill BASE_CONFIGS_DIR with the weightless diffusers configs preview workers build
# pipelines from: model_index.json, each component's config, the scheduler config and
# the tokenizers (tens of KB per base model, no weights). Needs network access once;
# workers then load every checkpoint with from_single_file(config=DIR, local_files_only=True).
#
#   infra/scripts/fetch-base-configs.sh            # every base below
#   infra/scripts/fetch-base-configs.sh sd15 sdxl  # some of them
#
# Environment: BASE_CONFIGS_DIR (default $MERGEWORKS_DATA_DIR/base-configs), HF_TOKEN for
# gated repos, HF_ENDPOINT for a mirror, <NAME>_REPO / <NAME>_REVISION to override a
# base's repository or pin a commit (e.g. SDXL_REVISION=<commit sha>).
set -euo pipefail
cd "$(dirname "$0")/../.."
PYTHON="${PYTHON:-.venv/bin/python}"
DEST="${BASE_CONFIGS_DIR:-${MERGEWORKS_DATA_DIR:-$PWD/var}/base-configs}"

exec "$PYTHON" - "$DEST" "$@" <<'PY'
import os
import shutil
import sys
from pathlib import Path

from huggingface_hub import snapshot_download

# Folder name under BASE_CONFIGS_DIR (as hub/previews/bases.py names it) -> hub repository.
BASES = {
    "sd15": "stable-diffusion-v1-5/stable-diffusion-v1-5",
    "sd21": "stabilityai/stable-diffusion-2-1",
    "sdxl": "stabilityai/stable-diffusion-xl-base-1.0",
}
# Only configs and tokenizer files: snapshot_download matches these against repo paths
# (fnmatch), so no weight file is ever fetched.
PATTERNS = [
    "model_index.json",
    "scheduler/scheduler_config.json",
    "unet/config.json",
    "vae/config.json",
    "text_encoder/config.json",
    "text_encoder_2/config.json",
    "tokenizer/*.json",
    "tokenizer/*.txt",
    "tokenizer_2/*.json",
    "tokenizer_2/*.txt",
]
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".ckpt", ".pt", ".pth", ".onnx", ".msgpack", ".h5")

dest = Path(sys.argv[1])
wanted = sys.argv[2:] or list(BASES)
unknown = [name for name in wanted if name not in BASES]
if unknown:
    sys.exit(f"unknown base(s): {', '.join(unknown)}; known: {', '.join(BASES)}")
dest.mkdir(parents=True, exist_ok=True)
failed = []
for name in wanted:
    repo = os.environ.get(f"{name.upper()}_REPO", BASES[name])
    revision = os.environ.get(f"{name.upper()}_REVISION") or None
    partial = dest / f".{name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        snapshot_download(
            repo,
            revision=revision,
            local_dir=partial,
            allow_patterns=PATTERNS,
            token=os.environ.get("HF_TOKEN") or None,
        )
        shutil.rmtree(partial / ".cache", ignore_errors=True)  # huggingface_hub's download bookkeeping
        files = sorted(p.relative_to(partial).as_posix() for p in partial.rglob("*") if p.is_file())
        weights = [f for f in files if f.endswith(WEIGHT_SUFFIXES)]
        if weights:
            raise RuntimeError(f"weights were downloaded: {', '.join(weights)}")
        for required in ("model_index.json", "unet/config.json", "vae/config.json", "scheduler/scheduler_config.json"):
            if required not in files:
                raise RuntimeError(f"{required} is missing")
        target = dest / name
        old = dest / f".{name}.old"
        shutil.rmtree(old, ignore_errors=True)
        if target.exists():
            target.rename(old)
        partial.rename(target)  # the folder workers read appears whole or not at all
        shutil.rmtree(old, ignore_errors=True)
        size = sum((target / f).stat().st_size for f in files)
        print(f"{name}: {repo}{'@' + revision if revision else ''} -> {target} ({len(files)} files, {size // 1024} KiB)")
    except Exception as exc:  # one unreachable base must not stop the others
        shutil.rmtree(partial, ignore_errors=True)
        failed.append(name)
        print(f"{name}: FAILED ({repo}): {exc}", file=sys.stderr)
sys.exit(1 if failed else 0)
PY
