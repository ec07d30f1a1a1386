"""Tiny, real-topology SD1 and SDXL pipelines built entirely in code.

Nothing can be downloaded in tests or CI, so every model, config and tokenizer used by
engine tests, preview tests and the demo content comes from here. The models keep the
*topology* of the real ones (block types, layers per block, attention placement, text
encoder layout) so that LDM key names line up with real checkpoints and every key we
emit exists in the real SD1 / SDXL key lists; only widths, depths and the vocabulary
are tiny. Everything is deterministic from ``seed``.

Offline single-file loading (used by the preview renderer, issue 6)
-------------------------------------------------------------------
``StableDiffusionPipeline.from_single_file(ckpt, config=DIR, local_files_only=True)``
(and the SDXL class) works with no network when:

* ``DIR`` is a local diffusers pipeline folder holding ``model_index.json``, each
  component's ``config.json`` (``unet/``, ``vae/``, ``text_encoder/``, ...), the
  scheduler config and the tokenizer files; no weights. diffusers treats a local
  directory as the config source directly; it only falls back to the hub when
  ``config`` is *not* given (it then guesses a hub repo from the checkpoint keys).
  :func:`write_pipeline_config_dir` writes such a folder.
* The UNet and VAE are rebuilt from their ``config.json`` and the checkpoint is
  converted with that config (``layers_per_block`` drives the block numbering), so
  the config must describe the checkpoint's topology exactly.
* Text encoders are recognised by marker keys, not by the config:
  ``cond_stage_model.transformer.text_model.embeddings.position_embedding.weight``
  (SD1), ``conditioner.embedders.0.transformer.text_model...position_embedding.weight``
  (SDXL CLIP-L) and ``conditioner.embedders.1.model.positional_embedding`` (SDXL
  OpenCLIP). For SDXL, diffusers tells the two encoders apart *only by the width of
  that position embedding* against ``hidden_size`` in the config, so te1 and te2 must
  have different hidden sizes (as the real 768/1280 do), otherwise
  ``text_encoder_2`` is silently loaded from te1's weights. te2's ``in_proj`` is split
  using ``text_projection.shape[0]``, i.e. te2's hidden size in SGM's transposed layout.
* The text encoder config's ``vocab_size`` and ``max_position_embeddings`` must match
  the checkpoint's embedding shapes (49408 / 77 for real SD1 and SDXL); the tokenizer
  must produce ids below ``vocab_size``.
* ``model_index.json`` lists ``safety_checker``/``feature_extractor`` as ``[null, null]``
  (and ``requires_safety_checker: false``) so no safety checker is looked for.
* The scheduler is created from ``DIR/scheduler`` with ``from_pretrained``; no
  ``original_config`` (the LDM yaml) is needed when ``config`` is given. Passing
  ``original_config`` switches diffusers to legacy loading instead.
* ``torch_dtype`` may be passed (fp16 on CUDA); components are loaded as float32 otherwise.
* SDXL: pass ``add_watermarker=False`` (it is forwarded to the pipeline). Left at
  ``None``, diffusers adds an invisible watermark whenever the optional
  ``invisible-watermark`` package happens to be installed, so renders would depend on
  the environment.

These facts are checked by ``tests/engine/test_tiny.py``.
"""

from __future__ import annotations

import json
import tempfile
from collections import Counter
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from merges.engine.ldm_convert import Arch, pipeline_to_ldm

if TYPE_CHECKING:  # heavy imports stay inside functions at run time
    from transformers import CLIPTokenizer

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
MAX_LENGTH = 77

# Text the tiny BPE vocabulary is learnt from: typical prompt words, so common prompt
# words become single tokens and tokenisation looks like CLIP's (words end in </w>).
_CORPUS = (
    "a photo of a cat sitting on a red chair, highly detailed, masterpiece, best quality "
    "portrait of a woman with long hair, digital painting, artstation, concept art, sharp focus "
    "landscape with mountains and a lake at sunset, cinematic lighting, 4k, 8k, trending "
    "an astronaut riding a horse on the moon, oil painting, watercolor, anime style, illustration "
    "low quality, worst quality, blurry, bad anatomy, deformed, ugly, text, watermark, signature "
    "the quick brown fox jumps over the lazy dog in a forest with green trees and blue sky"
)
_N_MERGES = 200


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable unicode map (the alphabet of byte-level BPE)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1))
    printable += list(range(ord("®"), ord("ÿ") + 1))
    codes = printable[:]
    extra = 0
    for b in range(256):
        if b not in printable:
            printable.append(b)
            codes.append(256 + extra)
            extra += 1
    return {b: chr(c) for b, c in zip(printable, codes)}


@lru_cache(maxsize=4)  # pure and deterministic; learning takes a noticeable fraction of a second
def _learn_bpe(corpus: str, n_merges: int) -> tuple[tuple[str, ...], tuple[tuple[str, str], ...]]:
    """Learn CLIP-style BPE merges (end-of-word ``</w>``) on ``corpus``; deterministic."""
    byte_map = _bytes_to_unicode()
    alphabet = [byte_map[b] for b in range(256)]
    vocab = alphabet + [c + "</w>" for c in alphabet]
    words: Counter[tuple[str, ...]] = Counter()
    for word in corpus.lower().replace(",", " , ").split():
        chars = [byte_map[b] for b in word.encode("utf-8")]
        words[tuple(chars[:-1] + [chars[-1] + "</w>"])] += 1
    merges: list[tuple[str, str]] = []
    for _ in range(n_merges):
        pairs: Counter[tuple[str, str]] = Counter()
        for symbols, count in words.items():
            for pair in zip(symbols, symbols[1:]):
                pairs[pair] += count
        if not pairs:
            break
        # Highest count wins; ties broken by the pair itself so the result never varies.
        best = min(pairs, key=lambda p: (-pairs[p], p))
        merges.append(best)
        vocab.append(best[0] + best[1])
        merged: Counter[tuple[str, ...]] = Counter()
        for symbols, count in words.items():
            out: list[str] = []
            i = 0
            while i < len(symbols):
                if i + 1 < len(symbols) and (symbols[i], symbols[i + 1]) == best:
                    out.append(symbols[i] + symbols[i + 1])
                    i += 2
                else:
                    out.append(symbols[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return (*vocab, BOS, EOS), tuple(merges)


def write_tokenizer_files(directory: str | Path) -> Path:
    """Write ``vocab.json`` and ``merges.txt`` of the tiny CLIP BPE into ``directory``."""
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    vocab, merges = _learn_bpe(_CORPUS, _N_MERGES)
    (path / "vocab.json").write_text(
        json.dumps({tok: i for i, tok in enumerate(vocab)}, ensure_ascii=False), encoding="utf-8"
    )
    lines = ["#version: 0.2"] + [f"{a} {b}" for a, b in merges]
    (path / "merges.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def tiny_tokenizer(dir: str | Path | None = None) -> CLIPTokenizer:
    """A ``CLIPTokenizer`` over a generated byte-level BPE vocabulary (714 tokens).

    ``vocab.json``/``merges.txt`` are written to ``dir``, or to a temporary directory
    that is removed again: the loaded tokenizer holds everything in memory.
    """
    from transformers import CLIPTokenizer

    def load(path: Path) -> CLIPTokenizer:
        write_tokenizer_files(path)
        return CLIPTokenizer.from_pretrained(
            str(path), model_max_length=MAX_LENGTH, bos_token=BOS, eos_token=EOS, pad_token=EOS, unk_token=EOS
        )

    if dir is not None:
        return load(Path(dir))
    with tempfile.TemporaryDirectory(prefix="tiny-clip-tok-") as tmp:
        return load(Path(tmp))


def _clip_config(tokenizer: CLIPTokenizer, hidden: int, layers: int, act: str, projection: int) -> Any:
    from transformers import CLIPTextConfig

    return CLIPTextConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden,
        intermediate_size=hidden * 4,
        num_hidden_layers=layers,
        num_attention_heads=4,
        max_position_embeddings=MAX_LENGTH,
        hidden_act=act,
        projection_dim=projection,
        # The pooled output is taken at the first EOS id, so the ids must be the tokenizer's.
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )


def _tiny_vae(scaling_factor: float) -> Any:
    from diffusers import AutoencoderKL

    # SD1/SDXL VAE layout: 4 levels, 2 resnets each, channel changes at levels 1 and 2
    # (like 128->256->512->512), so shortcut convs appear where real checkpoints have them.
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 16, 32, 32),
        layers_per_block=2,
        act_fn="silu",
        latent_channels=4,
        norm_num_groups=4,
        sample_size=64,
        scaling_factor=scaling_factor,
    )


def tiny_sd1_components(seed: int = 0) -> dict[str, Any]:
    """Components of a tiny SD1-topology ``StableDiffusionPipeline`` (64x64 default size)."""
    tokenizer = tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):  # seed locally; leave the caller's RNG alone
        torch.manual_seed(seed)
        return _sd1(tokenizer)


def _sd1(tokenizer: CLIPTokenizer) -> dict[str, Any]:
    from diffusers import PNDMScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel

    unet = UNet2DConditionModel(
        sample_size=8,  # latent size; x8 VAE factor -> 64x64 images
        in_channels=4,
        out_channels=4,
        down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
        up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3,
        block_out_channels=(32, 32, 64, 64),
        layers_per_block=2,
        norm_num_groups=8,
        cross_attention_dim=32,
        attention_head_dim=2,  # diffusers' historical name for the number of heads
        use_linear_projection=False,  # SD1 uses 1x1 conv proj_in/proj_out
    )
    vae = _tiny_vae(scaling_factor=0.18215)
    text_encoder = CLIPTextModel(_clip_config(tokenizer, hidden=32, layers=2, act="quick_gelu", projection=32))
    scheduler = PNDMScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        set_alpha_to_one=False,
        skip_prk_steps=True,
        steps_offset=1,
        prediction_type="epsilon",
    )
    for module in (unet, vae, text_encoder):
        module.eval()
    return {"unet": unet, "vae": vae, "text_encoder": text_encoder, "tokenizer": tokenizer, "scheduler": scheduler}


def tiny_sdxl_components(seed: int = 0) -> dict[str, Any]:
    """Components of a tiny SDXL-topology ``StableDiffusionXLPipeline`` (64x64 default size)."""
    tokenizer, tokenizer_2 = tiny_tokenizer(), tiny_tokenizer()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        return _sdxl(tokenizer, tokenizer_2)


def _sdxl(tokenizer: CLIPTokenizer, tokenizer_2: CLIPTokenizer) -> dict[str, Any]:
    from diffusers import EulerDiscreteScheduler, UNet2DConditionModel
    from transformers import CLIPTextModel, CLIPTextModelWithProjection

    te1_hidden, te2_hidden = 32, 64  # must differ: see the module docstring
    time_embed_dim = 8
    unet = UNet2DConditionModel(
        sample_size=8,
        in_channels=4,
        out_channels=4,
        down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
        up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"),
        block_out_channels=(32, 64, 64),
        layers_per_block=2,
        # SDXL has (1, 2, 10); any depth up to those keeps every key a real one.
        transformer_layers_per_block=(1, 2, 2),
        norm_num_groups=8,
        cross_attention_dim=te1_hidden + te2_hidden,
        attention_head_dim=(2, 4, 4),
        use_linear_projection=True,
        addition_embed_type="text_time",
        addition_time_embed_dim=time_embed_dim,
        # 6 micro-conditioning numbers (original size, crop, target size) + pooled te2.
        projection_class_embeddings_input_dim=6 * time_embed_dim + te2_hidden,
    )
    vae = _tiny_vae(scaling_factor=0.13025)
    text_encoder = CLIPTextModel(_clip_config(tokenizer, hidden=te1_hidden, layers=2, act="quick_gelu", projection=te1_hidden))
    # 10 layers (real: 32): diffusers and other tools recognise SDXL base by the key
    # conditioner.embedders.1.model.transformer.resblocks.9.mlp.c_proj.bias.
    text_encoder_2 = CLIPTextModelWithProjection(
        _clip_config(tokenizer_2, hidden=te2_hidden, layers=10, act="gelu", projection=te2_hidden)
    )
    scheduler = EulerDiscreteScheduler(
        beta_start=0.00085,
        beta_end=0.012,
        beta_schedule="scaled_linear",
        num_train_timesteps=1000,
        steps_offset=1,
        timestep_spacing="leading",
        prediction_type="epsilon",
        interpolation_type="linear",
        use_karras_sigmas=False,
    )
    for module in (unet, vae, text_encoder, text_encoder_2):
        module.eval()
    return {
        "unet": unet,
        "vae": vae,
        "text_encoder": text_encoder,
        "text_encoder_2": text_encoder_2,
        "tokenizer": tokenizer,
        "tokenizer_2": tokenizer_2,
        "scheduler": scheduler,
    }


def tiny_components(arch: Arch, seed: int = 0) -> dict[str, Any]:
    """``tiny_sd1_components`` or ``tiny_sdxl_components`` by architecture name."""
    if arch == "sd1":
        return tiny_sd1_components(seed)
    if arch == "sdxl":
        return tiny_sdxl_components(seed)
    raise ValueError(f"unknown arch {arch!r}")


def build_pipeline(components: dict[str, Any], arch: Arch) -> Any:
    """A ready ``StableDiffusionPipeline``/``StableDiffusionXLPipeline`` over ``components``."""
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if arch == "sd1":
        return StableDiffusionPipeline(
            **components, safety_checker=None, feature_extractor=None, requires_safety_checker=False
        )
    if arch == "sdxl":
        # No invisible watermark: it would make renders depend on an optional package.
        return StableDiffusionXLPipeline(**components, force_zeros_for_empty_prompt=True, add_watermarker=False)
    raise ValueError(f"unknown arch {arch!r}")


def write_pipeline_config_dir(components: dict[str, Any], dir: str | Path, arch: Arch) -> Path:
    """Write a weightless diffusers pipeline folder usable as ``from_single_file(config=dir)``.

    Holds ``model_index.json``, every model's and the scheduler's config and the
    tokenizer files, and nothing else.
    """
    root = Path(dir)
    root.mkdir(parents=True, exist_ok=True)
    build_pipeline(components, arch).save_config(str(root))
    for name, module in components.items():
        if module is None:  # optional components (image_encoder ...) have no config
            continue
        sub = root / name
        if name.startswith("tokenizer"):
            module.save_pretrained(str(sub))
        elif name.startswith("text_encoder"):
            module.config.save_pretrained(str(sub))
        else:  # diffusers models and schedulers share save_config
            module.save_config(str(sub))
    return root


def save_single_file(
    components: dict[str, Any],
    path: str | Path,
    arch: Arch,
    dtype: torch.dtype = torch.float32,
    metadata: dict[str, str] | None = None,
) -> Path:
    """Write ``components`` as an LDM single-file ``.safetensors`` checkpoint."""
    from safetensors.torch import save_file

    state = {k: v.to(dtype).contiguous() for k, v in pipeline_to_ldm(components, arch).items()}
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    save_file(state, str(target), metadata=metadata)
    return target


__all__ = [
    "build_pipeline",
    "save_single_file",
    "tiny_components",
    "tiny_sd1_components",
    "tiny_sdxl_components",
    "tiny_tokenizer",
    "write_pipeline_config_dir",
    "write_tokenizer_files",
]
