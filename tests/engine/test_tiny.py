"""Tiny real-topology pipelines: single-file round trip through diffusers, offline."""
from __future__ import annotations

import json
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors import safe_open

from merges.engine.tiny import (
    build_pipeline,
    save_single_file,
    tiny_components,
    tiny_sd1_components,
    tiny_sdxl_components,
    tiny_tokenizer,
    write_pipeline_config_dir,
)

MODELS = {"sd1": ["unet", "vae", "text_encoder"], "sdxl": ["unet", "vae", "text_encoder", "text_encoder_2"]}


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any attempt to reach a hub fails loudly instead of silently downloading."""

    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


@pytest.fixture(scope="module", params=["sd1", "sdxl"])
def saved(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    arch = request.param
    components = tiny_components(arch, 0)
    root = tmp_path_factory.mktemp(arch)
    config_dir = write_pipeline_config_dir(components, root / "config", arch)
    ckpt = save_single_file(components, root / "model.safetensors", arch)
    return {"arch": arch, "components": components, "config": config_dir, "ckpt": ckpt}


def _load(saved: dict[str, Any], **kwargs: Any) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if saved["arch"] == "sdxl":
        kwargs.setdefault("add_watermarker", False)  # see merges.engine.tiny's docstring
    cls = StableDiffusionPipeline if saved["arch"] == "sd1" else StableDiffusionXLPipeline
    return cls.from_single_file(str(saved["ckpt"]), config=str(saved["config"]), local_files_only=True, **kwargs)


def _render(pipe: Any, seed: int) -> np.ndarray:
    pipe.set_progress_bar_config(disable=True)
    out = pipe(
        ["a photo of a cat"],
        negative_prompt=["blurry"],
        num_inference_steps=2,
        guidance_scale=5.0,
        height=64,
        width=64,
        generator=torch.Generator("cpu").manual_seed(seed),
        output_type="np",
    )
    return out.images[0]


def test_tokenizer(tmp_path: Path) -> None:
    tok = tiny_tokenizer(tmp_path)
    assert {p.name for p in tmp_path.iterdir()} >= {"vocab.json", "merges.txt"}
    vocab = json.loads((tmp_path / "vocab.json").read_text(encoding="utf-8"))
    assert len(tok) == len(vocab) == 714
    assert tok.model_max_length == 77
    assert tok.bos_token == "<|startoftext|>" and tok.eos_token == "<|endoftext|>"
    ids = tok("A photo of a CAT, masterpiece").input_ids
    assert ids[0] == tok.bos_token_id and ids[-1] == tok.eos_token_id
    # learnt merges make common prompt words single end-of-word tokens, as in CLIP
    assert tok.convert_ids_to_tokens(ids[1:-1])[:4] == ["a</w>", "photo</w>", "of</w>", "a</w>"]
    padded = tok("日本 ümlaut ☃", padding="max_length", max_length=77, truncation=True).input_ids
    assert len(padded) == 77 and max(padded) < len(tok)  # byte-level: nothing is unknown
    assert tiny_tokenizer().get_vocab() == tok.get_vocab()


def test_components_are_deterministic_and_leave_global_rng_alone() -> None:
    torch.manual_seed(123)
    before = torch.rand(1)
    torch.manual_seed(123)
    a, b, c = tiny_sd1_components(0), tiny_sd1_components(0), tiny_sd1_components(1)
    assert torch.equal(torch.rand(1), before)
    for name in MODELS["sd1"]:
        sa, sb, sc = (x[name].state_dict() for x in (a, b, c))
        assert all(torch.equal(sa[k], sb[k]) for k in sa), name
        assert any(not torch.equal(sa[k], sc[k]) for k in sa), name
    unet = a["unet"].config
    assert unet.down_block_types == ("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",)
    assert unet.up_block_types == ("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3
    assert tuple(unet.block_out_channels) == (32, 32, 64, 64) and unet.layers_per_block == 2
    assert unet.cross_attention_dim == a["text_encoder"].config.hidden_size == 32
    assert a["text_encoder"].config.vocab_size == len(a["tokenizer"])


def test_sdxl_topology() -> None:
    c = tiny_sdxl_components(0)
    unet = c["unet"].config
    assert unet.down_block_types == ("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D")
    assert unet.addition_embed_type == "text_time"
    te1, te2 = c["text_encoder"].config, c["text_encoder_2"].config
    assert unet.cross_attention_dim == te1.hidden_size + te2.hidden_size
    assert unet.projection_class_embeddings_input_dim == 6 * unet.addition_time_embed_dim + te2.projection_dim
    # diffusers tells te1 from te2 in a single file only by this width
    assert te1.hidden_size != te2.hidden_size


def test_config_dir_has_configs_and_tokenizers_only(saved: dict[str, Any]) -> None:
    root: Path = saved["config"]
    files = sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())
    assert all(f.endswith((".json", ".txt")) for f in files), files
    assert sum((root / f).stat().st_size for f in files) < 200_000
    index = json.loads((root / "model_index.json").read_text())
    for name in MODELS[saved["arch"]] + ["scheduler", "tokenizer"]:
        assert index[name][0] in {"diffusers", "transformers"}, name
        assert (root / name).is_dir()


def test_single_file_round_trip(saved: dict[str, Any], no_network: None) -> None:
    arch, components = saved["arch"], saved["components"]
    with safe_open(str(saved["ckpt"]), "pt") as f:
        keys = set(f.keys())
    assert any(k.startswith("model.diffusion_model.") for k in keys)
    assert any(k.startswith("first_stage_model.") for k in keys)
    te_prefix = "cond_stage_model.transformer.text_model." if arch == "sd1" else "conditioner.embedders.1.model."
    assert any(k.startswith(te_prefix) for k in keys)

    # diffusers' own architecture guess (used when no config is given) sees a real model
    from diffusers.loaders.single_file_utils import infer_diffusers_model_type

    with safe_open(str(saved["ckpt"]), "pt") as f:
        assert infer_diffusers_model_type({k: f.get_tensor(k) for k in keys}) == {"sd1": "v1", "sdxl": "xl_base"}[arch]

    pipe = _load(saved)
    for name in MODELS[arch]:
        want, got = components[name].state_dict(), getattr(pipe, name).state_dict()
        assert want.keys() == got.keys(), name
        unequal = [k for k in want if not torch.equal(want[k], got[k])]
        assert not unequal, (name, unequal[:5])

    image = _render(pipe, seed=7)
    assert image.shape == (64, 64, 3)
    assert np.array_equal(image, _render(pipe, seed=7))  # seeded generator: deterministic
    assert not np.array_equal(image, _render(pipe, seed=8))
    if arch == "sdxl":
        assert pipe.watermark is None
    # the loaded pipeline computes exactly what the in-memory original does
    assert np.array_equal(image, _render(build_pipeline(components, arch), seed=7))


def test_half_precision_file(tmp_path: Path, no_network: None) -> None:
    components = tiny_sd1_components(0)
    config = write_pipeline_config_dir(components, tmp_path / "config", "sd1")
    ckpt = save_single_file(components, tmp_path / "half.safetensors", "sd1", dtype=torch.float16)
    with safe_open(str(ckpt), "pt") as f:
        assert {f.get_slice(k).get_dtype() for k in f.keys()} == {"F16"}
    pipe = _load({"arch": "sd1", "ckpt": ckpt, "config": config}, torch_dtype=torch.float16)
    want, got = components["unet"].state_dict(), pipe.unet.state_dict()
    assert all(torch.equal(want[k].half(), got[k]) for k in want)
