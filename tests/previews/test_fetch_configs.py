"""infra/scripts/fetch-base-configs.sh against the hub's own Hugging Face-compatible endpoint.

The script runs as operators run it, with HF_ENDPOINT pointing at a live test
server that serves a tiny diffusers pipeline (weights included): only configs
and tokenizers may arrive, and previews must render from what arrived.
"""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from tests.previews.tiny_files import tiny_checkpoint

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[2]


def test_fetch_script_downloads_configs_only_and_previews_render_from_them(alice, live_server, tmp_path, settings):
    from hub.hf.services import catalog_import_folder
    from merges.engine.tiny import build_pipeline, tiny_sd1_components
    from hub.previews.renderer.pipeline import load_pipeline
    from hub.previews.renderer.render import ModelInfo, render_grid
    from hub.previews.renderer.spec import parse_spec

    settings.DOWNLOAD_RATE_LIMIT_PER_MINUTE = 0
    folder = tmp_path / "tiny-pipe"
    build_pipeline(tiny_sd1_components(0), "sd1").save_pretrained(folder)
    catalog_import_folder(path=folder, owner=alice, model_name="tiny-base")

    dest = tmp_path / "base-configs"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("HF_", "HUGGING"))}
    env.update(
        HF_ENDPOINT=live_server.url, HF_HOME=str(tmp_path / "hf-home"), HF_HUB_DISABLE_TELEMETRY="1",
        BASE_CONFIGS_DIR=str(dest), SD15_REPO="alice/tiny-base", PYTHON=sys.executable,
    )
    done = subprocess.run(["bash", "infra/scripts/fetch-base-configs.sh", "sd15"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-4000:]
    assert done.stdout.startswith("sd15: alice/tiny-base -> ")

    files = sorted(p.relative_to(dest / "sd15").as_posix() for p in (dest / "sd15").rglob("*") if p.is_file())
    assert not [f for f in files if f.endswith((".safetensors", ".bin"))]
    assert {"model_index.json", "unet/config.json", "vae/config.json", "text_encoder/config.json",
            "scheduler/scheduler_config.json", "tokenizer/tokenizer_config.json"} <= set(files)
    assert {f for f in files if f.startswith("tokenizer/")} == {f"tokenizer/{p.name}" for p in (folder / "tokenizer").iterdir()}
    assert sum((dest / "sd15" / f).stat().st_size for f in files) < 200_000
    assert [p.name for p in dest.iterdir()] == ["sd15"]  # no partial folders left

    spec = parse_spec({"prompts": ["a photo of a cat"], "seeds": [1], "steps": 2, "size": [64, 64]})
    fetched = render_grid(load_pipeline("sd1", tiny_checkpoint("sd1", 0), dest / "sd15"), spec, ModelInfo(hash="x"))
    from tests.previews.tiny_files import write_base_configs

    local = write_base_configs(tmp_path / "local", archs=("sd1",)) / "sd15"
    expected = render_grid(load_pipeline("sd1", tiny_checkpoint("sd1", 0), local), spec, ModelInfo(hash="x"))
    assert np.array_equal(np.asarray(fetched.grid), np.asarray(expected.grid))
