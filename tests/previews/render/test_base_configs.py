"""Base-model config folders written offline, their tokenizers, and the choice of a folder by tensor shapes."""
from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path

import numpy as np
import pytest

from hub.previews.renderer import base_configs
from hub.previews.renderer.base_configs import (
    NO_FITTING_CONFIG_REASON,
    base_config_write,
    config_choose,
    config_shapes,
)
from hub.previews.renderer.errors import RenderInputError
from tests.previews.tiny_files import tiny_checkpoint

# Token ids of OpenAI's CLIP ViT-L/14 tokenizer, as published in other projects' tests of
# that tokenizer (Swift, C++, Zig, Elixir/Bumblebee and TypeScript ports all list them).
CLIP_IDS = {
    "a photo of a cat": [49406, 320, 1125, 539, 320, 2368, 49407],
    "a photo of a dog": [49406, 320, 1125, 539, 320, 1929, 49407],
    "Hello, world!": [49406, 3306, 267, 1002, 256, 49407],
    "A PHOTO of  a Cat!": [49406, 320, 1125, 539, 320, 2368, 256, 49407],
    "don't stop 42 times": [49406, 847, 713, 1691, 275, 273, 1661, 49407],
    "": [49406, 49407],
}
BOS, EOS = 49406, 49407


@pytest.fixture(scope="module")
def published(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("published-configs")
    for name in ("sd15", "sd21", "sdxl"):
        base_config_write(name, root)
    return root


def _tokenizer(path: Path):
    from transformers import CLIPTokenizer

    return CLIPTokenizer.from_pretrained(str(path), local_files_only=True)


@pytest.mark.parametrize("folder", ["sd15/tokenizer", "sdxl/tokenizer"])
def test_openai_clip_tokenizer_gives_the_published_ids(published, folder):
    tokenizer = _tokenizer(published / folder)
    assert len(tokenizer) == 49408
    for prompt, ids in CLIP_IDS.items():
        assert tokenizer(prompt).input_ids == ids, prompt
    # SD 1.5 pads with <|endoftext|>.
    padded = tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert len(padded) == 77 and padded[7:] == [EOS] * 70


@pytest.mark.parametrize("folder", ["sd21/tokenizer", "sdxl/tokenizer_2"])
def test_openclip_tokenizer_shares_the_bpe_and_pads_with_bang(published, folder):
    tokenizer = _tokenizer(published / folder)
    for prompt in ("a photo of a cat", "a photo of a dog", "don't stop 42 times", ""):
        assert tokenizer(prompt).input_ids == CLIP_IDS[prompt], prompt
    assert tokenizer.pad_token == "!" and tokenizer.pad_token_id == 0
    padded = tokenizer("a photo of a cat", padding="max_length", max_length=77).input_ids
    assert padded[:7] == CLIP_IDS["a photo of a cat"] and padded[7:] == [0] * 70


def test_vocabulary_is_derived_from_the_merges_as_openai_does():
    merges = base_configs.clip_merges()
    vocab = base_configs.clip_vocab(merges)
    assert len(merges) == 48894 and len(vocab) == 49408
    assert vocab["!"] == 0 and vocab["!</w>"] == 256  # the byte symbols, then the same with </w>
    assert vocab["".join(merges[0])] == 512  # merged pairs follow in merge order
    assert vocab["<|startoftext|>"] == BOS and vocab["<|endoftext|>"] == EOS


def test_folders_hold_configs_and_tokenizers_but_no_weights(published):
    files = {p.relative_to(published / "sdxl").as_posix() for p in (published / "sdxl").rglob("*") if p.is_file()}
    assert {"model_index.json", "scheduler/scheduler_config.json", "unet/config.json", "vae/config.json",
            "text_encoder/config.json", "text_encoder_2/config.json", "tokenizer/vocab.json",
            "tokenizer/merges.txt", "tokenizer_2/tokenizer_config.json"} <= files
    assert not [f for f in files if f.endswith((".safetensors", ".bin", ".ckpt"))]
    index = json.loads((published / "sd15" / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None] and index["requires_safety_checker"] is False
    assert [p.name for p in published.iterdir() if p.name.startswith(".")] == []  # no partial folders


def _real_keys(name: str) -> dict[str, dict]:
    import importlib.util

    import yaml

    spec = importlib.util.find_spec("sd_mecha")
    if spec is None or spec.origin is None:
        pytest.skip("sd-mecha==1.1.8 is not installed (it ships the reference key lists)")
    path = Path(spec.origin).parent / "extensions" / "builtin" / "model_configs" / f"{name}.yaml"
    doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {k: m for c in doc["components"].values() for k, m in c.items()}


@pytest.mark.parametrize("folder,arch,reference", [("sd15", "sd1", "sd1-ldm"), ("sdxl", "sdxl", "sdxl-sgm")])
def test_published_configs_describe_real_checkpoints_exactly(published, folder, arch, reference):
    """The config expects every required tensor of a real checkpoint, nothing unknown, each with its real shape."""
    real = _real_keys(reference)
    required = {k for k, meta in real.items() if not meta.get("optional")}
    ours = config_shapes(published / folder, arch)
    assert required <= set(ours) <= set(real)
    squeezed = base_configs._squeezed
    assert [k for k, shape in ours.items() if squeezed(shape) != squeezed(real[k]["shape"])] == []


def test_a_tiny_checkpoint_gets_the_tiny_config_whatever_its_label(published, tmp_path):
    root = tmp_path / "configs"
    for name in ("sd15", "sdxl"):
        shutil.copytree(published / name, root / name)
    base_config_write("tiny-sd1", root)
    base_config_write("tiny-sdxl", root)
    # Labelled SD 1.5 (sd15 first), but its tensors are tiny SD1 ones.
    choice = config_choose(tiny_checkpoint("sd1", 0), root, preferred="sd15")
    assert (choice.config_dir.name, choice.arch) == ("tiny-sd1", "sd1")
    choice = config_choose(tiny_checkpoint("sdxl", 0), root, preferred="sd15")
    assert (choice.config_dir.name, choice.arch) == ("tiny-sdxl", "sdxl")

    (root / "tiny-sd1").rename(tmp_path / "moved")
    with pytest.raises(RenderInputError) as raised:
        config_choose(tiny_checkpoint("sd1", 0), root, preferred="sd15")
    assert "sd15: model.diffusion_model." in str(raised.value)  # the detail names what did not fit
    assert raised.value.reason == NO_FITTING_CONFIG_REASON and str(root) not in raised.value.reason


def test_offline_render_with_the_network_cut(tmp_path, monkeypatch):
    """Writing configs and loading a pipeline from them make no network connection at all."""
    from hub.previews.renderer.pipeline import load_pipeline
    from hub.previews.renderer.render import ModelInfo, render_grid
    from hub.previews.renderer.spec import parse_spec

    checkpoint = tiny_checkpoint("sd1", 0)

    def refuse(*args, **kwargs):
        raise OSError("network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    root = tmp_path / "configs"
    base_config_write("sd15", root)
    base_config_write("tiny-sd1", root)
    choice = config_choose(checkpoint, root, preferred="sd15")
    pipe = load_pipeline(choice.arch, checkpoint, choice.config_dir)
    spec = parse_spec({"prompts": ["a photo of a cat"], "seeds": [1], "steps": 1, "size": [64, 64]})
    grid = render_grid(pipe, spec, ModelInfo(hash="0123456789"))
    assert grid.cells[0].image.size == (64, 64) and np.asarray(grid.cells[0].image).std() > 0
