"""LoRA previews equal the render of the baked merge; alpha-sweep cells equal renders of merged files."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from tests.previews.tiny_files import CONFIG_NAMES, bake, tiny_checkpoint, tiny_lora
from hub.previews.renderer.errors import RenderInputError
from hub.previews.renderer.pipeline import PipelineCache, PipelineKey, load_pipeline, lora_apply
from hub.previews.renderer.render import ModelInfo, render_grid
from hub.previews.renderer.spec import parse_spec
from hub.previews.renderer.sweep import AlphaSweep

SPEC = {"prompts": ["a photo of a cat"], "seeds": [1, 2], "negative": "blurry", "steps": 2, "cfg": 5.0, "size": [64, 64]}


def floats(images) -> np.ndarray:
    return np.stack([np.asarray(i.convert("RGB"), dtype=np.float64) for i in images])


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_lora_preview_differs_from_base_and_equals_the_baked_merge(arch: str, base_configs: Path, tmp_path: Path) -> None:
    pytest.importorskip("peft")
    config = base_configs / CONFIG_NAMES[arch]
    ckpt, lora = tiny_checkpoint(arch, 0), tiny_lora(arch)
    spec = parse_spec({**SPEC, "lora_strength": 0.8})
    model = ModelInfo(hash="base", name="tiny", lora_name="style", lora_hash="abcdef012345")

    cache = PipelineCache()
    key = PipelineKey(arch=arch, checkpoint_sha256="base", config_dir=str(config), device="cpu")
    build = lambda: load_pipeline(arch, ckpt, config)  # noqa: E731
    base_pipe = cache.get(key, build)
    base_images = [c.image for c in render_grid(base_pipe, spec, model).cells]

    lora_key = PipelineKey(**{**key.__dict__, "lora_sha256": "style"})
    pipe = cache.get(lora_key, build, lora=lambda p: lora_apply(p, lora, spec.lora_strength))
    assert pipe is base_pipe  # same base: only the adapter was added
    result = render_grid(pipe, spec, model)
    lora_images = [c.image for c in result.cells]
    assert "<lora:style:0.8>" in result.cells[0].parameters
    assert 'Lora hashes: "style: abcdef012345"' in result.cells[0].parameters

    baked_path = bake(
        [{"id": "out", "op": "apply_lora", "inputs": ["base", "style"], "strength": 0.8}],
        {"base": ckpt, "style": lora},
        arch,
        tmp_path / "baked.safetensors",
    )
    baked_images = [c.image for c in render_grid(load_pipeline(arch, baked_path, config), spec, model).cells]

    base_f, lora_f, baked_f = floats(base_images), floats(lora_images), floats(baked_images)
    assert np.abs(lora_f - base_f).mean() > 5.0, "the LoRA changed (almost) nothing"
    # Run-time adapter (x@W + s*(x@A)@B) and baked weights (x@(W + s*B@A)) round differently in
    # float32: measured here at most 1 level of 255 on a few pixels; allow 2.
    diff = np.abs(lora_f - baked_f)
    print(f"{arch}: LoRA vs baked: max {diff.max():g} levels, {(diff > 0).mean():.4%} of values differ")
    assert diff.max() <= 2.0
    assert (diff > 0).mean() < 0.01

    # Removing the adapter restores the base bit for bit (the cache swaps LoRAs on a shared base).
    again = cache.get(key, build)
    assert again is base_pipe
    assert np.array_equal(floats([c.image for c in render_grid(again, spec, model).cells]), base_f)


def test_alpha_sweep_cells_equal_renders_of_the_merged_checkpoints(base_configs: Path, tmp_path: Path) -> None:
    arch = "sd1"
    config = base_configs / CONFIG_NAMES[arch]
    first, second = tiny_checkpoint(arch, 0), tiny_checkpoint(arch, 3)
    alphas = [0.0, 0.3, 1.0]
    spec = parse_spec({**SPEC, "alphas": alphas})
    pipe = load_pipeline(arch, first, config)
    sweep = AlphaSweep.prepare(pipe, arch, second, config, describe=lambda a: {"Merge": f"alpha {a:g}"})
    result = render_grid(pipe, spec, ModelInfo(hash="a"), sweep=sweep, batch_size=2)

    assert result.plan.col_labels == ("alpha 0", "alpha 0.3", "alpha 1")
    assert result.plan.row_labels == ("a photo of a cat (seed 1)", "a photo of a cat (seed 2)")
    assert result.layout.cols == 3 and result.layout.rows == 2
    assert "Merge: alpha 0.3" in next(c.parameters for c in result.cells if c.cell.alpha == 0.3)

    plain = parse_spec(SPEC)
    for alpha in alphas:
        merged = bake(
            [{"id": "mix", "op": "weighted_sum", "inputs": ["a", "b"], "alpha": alpha}],
            {"a": first, "b": second},
            arch,
            tmp_path / f"mix-{alpha}.safetensors",
        )
        expected = [c.image for c in render_grid(load_pipeline(arch, merged, config), plain, ModelInfo(hash="m")).cells]
        got = [c.image for c in result.cells if c.cell.alpha == alpha]
        assert np.array_equal(floats(got), floats(expected)), alpha
    # no merged checkpoint was written by the sweep itself
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"mix-{a}.safetensors" for a in alphas]


def test_corrupt_or_missing_inputs_raise_render_input_errors(base_configs: Path, tmp_path: Path) -> None:
    config = base_configs / "sd15"
    truncated = tmp_path / "truncated.safetensors"
    truncated.write_bytes(tiny_checkpoint("sd1", 0).read_bytes()[:100_000])
    with pytest.raises(RenderInputError, match="could not load the checkpoint"):
        load_pipeline("sd1", truncated, config)
    with pytest.raises(RenderInputError, match="no base-model config"):
        load_pipeline("sd1", tiny_checkpoint("sd1", 0), tmp_path / "nowhere")
    pickled = tmp_path / "model.ckpt"
    torch.save({"state_dict": {}}, pickled)
    with pytest.raises(RenderInputError, match="not a local .safetensors file"):
        load_pipeline("sd1", pickled, config)
    with pytest.raises(RenderInputError, match="not supported"):
        load_pipeline("flux", tiny_checkpoint("sd1", 0), config)
    pipe = load_pipeline("sd1", tiny_checkpoint("sd1", 0), config)
    not_a_lora = tmp_path / "junk.safetensors"
    not_a_lora.write_bytes(b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ")
    with pytest.raises(RenderInputError, match="could not apply the LoRA"):
        lora_apply(pipe, not_a_lora, 1.0)


def test_real_sd15_model_index_with_a_safety_checker_loads_offline(base_configs: Path, tmp_path: Path) -> None:
    import json
    import shutil

    config = tmp_path / "sd15"
    shutil.copytree(base_configs / "sd15", config)
    index = json.loads((config / "model_index.json").read_text())
    # as in stable-diffusion-v1-5/stable-diffusion-v1-5, whose checker weights are not fetched
    index.update(safety_checker=["stable_diffusion", "StableDiffusionSafetyChecker"],
                 feature_extractor=["transformers", "CLIPImageProcessor"], requires_safety_checker=True)
    (config / "model_index.json").write_text(json.dumps(index))
    pipe = load_pipeline("sd1", tiny_checkpoint("sd1", 0), config)
    assert pipe.safety_checker is None and pipe.feature_extractor is None
