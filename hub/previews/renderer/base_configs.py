"""Weightless base-model config folders, written offline, and the choice of one for a checkpoint.

``from_single_file(ckpt, config=DIR, local_files_only=True)`` needs a diffusers
pipeline folder with no weights: ``model_index.json``, the scheduler, UNet, VAE
and text-encoder configs, and the tokenizer files (see ``merges.engine.tiny``).

1. **Facts in code.** The config values of the published pipelines
   (stable-diffusion-v1-5, stable-diffusion-2-1, stable-diffusion-xl-base-1.0)
   are written below; ``model_index.json`` lists no safety checker, whose
   weights a preview worker never has.
2. **The tokenizer from a data file a package ships.** CLIP's byte-level BPE
   merges (``bpe_simple_vocab_16e6.txt.gz``) come inside the ``open_clip_torch``
   wheel (installed without its dependencies). The vocabulary is derived from
   the merges exactly as OpenAI's tokenizer derives it: the 256 byte symbols,
   the same with ``</w>``, every merged pair in merge order, then
   ``<|startoftext|>`` and ``<|endoftext|>`` (49408 tokens). SD 1.5 and SDXL's
   first encoder use OpenAI's CLIP ViT-L/14 tokenizer (padding with
   ``<|endoftext|>``); SD 2.x and SDXL's second encoder use OpenCLIP's, the same
   BPE padding with ``!`` (id 0).
3. **Tiny folders** (``tiny-sd1``, ``tiny-sdxl``) describe the demo's tiny
   real-topology checkpoints (``merges.engine.tiny``).
4. **Choosing a folder for a checkpoint** is done by its tensors, not by the
   base model it is labelled with: each folder's components are built on the
   ``meta`` device (no memory), converted to single-file key names with the
   engine's converter, and the first folder whose every key exists in the
   checkpoint with the same shape is used, the labelled one first.

Nothing here downloads anything or imports Django.
"""
from __future__ import annotations

import gzip
import importlib.util
import json
import os
import shutil
import threading
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

from hub.previews.renderer.errors import RenderInputError

BOS = "<|startoftext|>"
EOS = "<|endoftext|>"
CLIP_VOCAB_SIZE = 49408
# OpenAI's tokenizer keeps this many merges: 49152 BPE symbols less the 256 bytes and the 2 specials.
CLIP_MERGES = CLIP_VOCAB_SIZE - 512 - 2
BPE_FILE = "bpe_simple_vocab_16e6.txt.gz"
# Python packages that ship BPE_FILE at their top level, tried in order.
BPE_PACKAGES = ("open_clip", "clip")
DIFFUSERS_VERSION = "0.30.0"


class BaseConfigError(RuntimeError):
    """A base config folder cannot be written (the BPE data file is missing, an unknown name)."""


# --- the tokenizer -------------------------------------------------------------------------------


def bytes_to_unicode() -> dict[int, str]:
    """GPT-2/CLIP byte -> printable character map, in the order OpenAI's tokenizer builds it."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


def bpe_path() -> Path:
    """CLIP's BPE merges file from an installed package (found without importing the package)."""
    override = os.environ.get("CLIP_BPE_PATH")
    if override:
        return Path(override)
    for package in BPE_PACKAGES:
        try:
            spec = importlib.util.find_spec(package)
        except (ImportError, ValueError):
            continue
        for location in (spec.submodule_search_locations or []) if spec else []:
            candidate = Path(location) / BPE_FILE
            if candidate.is_file():
                return candidate
    raise BaseConfigError(
        f"CLIP's BPE file ({BPE_FILE}) was not found: install it with "
        "`pip install --no-deps open_clip_torch` (or set CLIP_BPE_PATH to the file)"
    )


@lru_cache(maxsize=2)
def clip_merges(path: str | None = None) -> tuple[tuple[str, str], ...]:
    text = gzip.decompress(Path(path or bpe_path()).read_bytes()).decode("utf-8")
    lines = text.split("\n")[1 : CLIP_MERGES + 1]  # line 0 is the version header
    merges = tuple(tuple(line.split()) for line in lines)
    if len(merges) != CLIP_MERGES or any(len(m) != 2 for m in merges):
        raise BaseConfigError(f"{path or bpe_path()} is not CLIP's BPE merges file")
    return merges  # type: ignore[return-value]


def clip_vocab(merges: Iterable[tuple[str, str]]) -> dict[str, int]:
    symbols = list(bytes_to_unicode().values())
    vocab = symbols + [s + "</w>" for s in symbols]
    vocab += ["".join(pair) for pair in merges]
    vocab += [BOS, EOS]
    return {token: i for i, token in enumerate(vocab)}


def write_clip_tokenizer(directory: Path, *, pad_token: str, name: str) -> None:
    merges = clip_merges()
    vocab = clip_vocab(merges)
    if len(vocab) != CLIP_VOCAB_SIZE:
        raise BaseConfigError(f"the CLIP vocabulary has {len(vocab)} tokens, expected {CLIP_VOCAB_SIZE}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "vocab.json").write_text(json.dumps(vocab, ensure_ascii=False), encoding="utf-8")
    (directory / "merges.txt").write_text(
        "#version: 0.2\n" + "".join(f"{a} {b}\n" for a, b in merges), encoding="utf-8"
    )
    special = {"bos_token": BOS, "eos_token": EOS, "unk_token": EOS, "pad_token": pad_token}
    (directory / "special_tokens_map.json").write_text(json.dumps(special, indent=2), encoding="utf-8")
    config = {
        **special,
        "add_prefix_space": False,
        "do_lower_case": True,
        "errors": "replace",
        "model_max_length": 77,
        "name_or_path": name,
        "tokenizer_class": "CLIPTokenizer",
    }
    (directory / "tokenizer_config.json").write_text(json.dumps(config, indent=2), encoding="utf-8")


# --- published configs ----------------------------------------------------------------------------

_BETAS = {"beta_start": 0.00085, "beta_end": 0.012, "beta_schedule": "scaled_linear", "num_train_timesteps": 1000}
_SCHEDULER_COMMON = {**_BETAS, "clip_sample": False, "set_alpha_to_one": False, "skip_prk_steps": True,
                     "steps_offset": 1, "trained_betas": None}
_UNET_COMMON = {
    "act_fn": "silu", "center_input_sample": False, "downsample_padding": 1, "flip_sin_to_cos": True,
    "freq_shift": 0, "in_channels": 4, "out_channels": 4, "layers_per_block": 2, "mid_block_scale_factor": 1,
    "norm_eps": 1e-05, "norm_num_groups": 32,
}
_SD_BLOCKS = {
    "block_out_channels": [320, 640, 1280, 1280],
    "down_block_types": ["CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"],
    "up_block_types": ["UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"],
}


def _vae(sample_size: int, **extra: Any) -> dict[str, Any]:
    return {
        "_class_name": "AutoencoderKL", "act_fn": "silu", "block_out_channels": [128, 256, 512, 512],
        "down_block_types": ["DownEncoderBlock2D"] * 4, "up_block_types": ["UpDecoderBlock2D"] * 4,
        "in_channels": 3, "out_channels": 3, "latent_channels": 4, "layers_per_block": 2, "norm_num_groups": 32,
        "sample_size": sample_size, **extra,
    }


def _clip_text(cls: str, *, hidden: int, layers: int, heads: int, act: str, projection: int) -> dict[str, Any]:
    # bos/eos/pad ids as published (0/2/1): transformers then pools at the highest id, <|endoftext|>.
    return {
        "architectures": [cls], "model_type": "clip_text_model", "attention_dropout": 0.0, "dropout": 0.0,
        "bos_token_id": 0, "eos_token_id": 2, "pad_token_id": 1, "hidden_act": act, "hidden_size": hidden,
        "initializer_factor": 1.0, "initializer_range": 0.02, "intermediate_size": hidden * 4,
        "layer_norm_eps": 1e-05, "max_position_embeddings": 77, "num_attention_heads": heads,
        "num_hidden_layers": layers, "projection_dim": projection, "torch_dtype": "float32",
        "vocab_size": CLIP_VOCAB_SIZE,
    }


_CLIP_L = {"hidden": 768, "layers": 12, "heads": 12, "act": "quick_gelu", "projection": 768}
_OPENAI_TOKENIZER = "openai/clip-vit-large-patch14"
_OPENCLIP_TOKENIZER = "laion/CLIP-ViT-bigG-14-laion2B-39B-b160k"


def _sd_index(scheduler: str) -> dict[str, Any]:
    return {
        "_class_name": "StableDiffusionPipeline", "_diffusers_version": DIFFUSERS_VERSION,
        "feature_extractor": [None, None], "safety_checker": [None, None], "requires_safety_checker": False,
        "scheduler": ["diffusers", scheduler], "text_encoder": ["transformers", "CLIPTextModel"],
        "tokenizer": ["transformers", "CLIPTokenizer"], "unet": ["diffusers", "UNet2DConditionModel"],
        "vae": ["diffusers", "AutoencoderKL"],
    }


def _sd15() -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    files = {
        "model_index.json": _sd_index("PNDMScheduler"),
        "scheduler/scheduler_config.json": {"_class_name": "PNDMScheduler", **_SCHEDULER_COMMON},
        "unet/config.json": {
            "_class_name": "UNet2DConditionModel", **_UNET_COMMON, **_SD_BLOCKS,
            "attention_head_dim": 8, "cross_attention_dim": 768, "sample_size": 64,
        },
        "vae/config.json": _vae(512),
        "text_encoder/config.json": _clip_text("CLIPTextModel", **_CLIP_L),
    }
    return files, {"tokenizer": (EOS, _OPENAI_TOKENIZER)}


def _sd21() -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    files = {
        "model_index.json": _sd_index("DDIMScheduler"),
        "scheduler/scheduler_config.json": {
            "_class_name": "DDIMScheduler", **_SCHEDULER_COMMON, "prediction_type": "v_prediction",
        },
        "unet/config.json": {
            "_class_name": "UNet2DConditionModel", **_UNET_COMMON, **_SD_BLOCKS,
            "attention_head_dim": [5, 10, 20, 20], "cross_attention_dim": 1024, "dual_cross_attention": False,
            "sample_size": 96, "upcast_attention": True, "use_linear_projection": True,
        },
        "vae/config.json": _vae(768),
        # OpenCLIP ViT-H/14 run to its penultimate layer: 23 of its 24 blocks.
        "text_encoder/config.json": _clip_text(
            "CLIPTextModel", hidden=1024, layers=23, heads=16, act="gelu", projection=512
        ),
    }
    return files, {"tokenizer": ("!", "stabilityai/stable-diffusion-2-1")}


def _sdxl() -> tuple[dict[str, dict[str, Any]], dict[str, tuple[str, str]]]:
    files = {
        "model_index.json": {
            "_class_name": "StableDiffusionXLPipeline", "_diffusers_version": DIFFUSERS_VERSION,
            "force_zeros_for_empty_prompt": True, "scheduler": ["diffusers", "EulerDiscreteScheduler"],
            "text_encoder": ["transformers", "CLIPTextModel"],
            "text_encoder_2": ["transformers", "CLIPTextModelWithProjection"],
            "tokenizer": ["transformers", "CLIPTokenizer"], "tokenizer_2": ["transformers", "CLIPTokenizer"],
            "unet": ["diffusers", "UNet2DConditionModel"], "vae": ["diffusers", "AutoencoderKL"],
        },
        "scheduler/scheduler_config.json": {
            "_class_name": "EulerDiscreteScheduler", **_SCHEDULER_COMMON, "interpolation_type": "linear",
            "prediction_type": "epsilon", "sample_max_value": 1.0, "timestep_spacing": "leading",
            "use_karras_sigmas": False,
        },
        "unet/config.json": {
            "_class_name": "UNet2DConditionModel", **_UNET_COMMON,
            "addition_embed_type": "text_time", "addition_embed_type_num_heads": 64, "addition_time_embed_dim": 256,
            "attention_head_dim": [5, 10, 20], "block_out_channels": [320, 640, 1280],
            "cross_attention_dim": 2048, "down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"],
            "up_block_types": ["CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"],
            "projection_class_embeddings_input_dim": 2816, "sample_size": 128,
            "transformer_layers_per_block": [1, 2, 10], "use_linear_projection": True,
        },
        "vae/config.json": _vae(1024, scaling_factor=0.13025, force_upcast=True),
        "text_encoder/config.json": _clip_text("CLIPTextModel", **_CLIP_L),
        "text_encoder_2/config.json": _clip_text(
            "CLIPTextModelWithProjection", hidden=1280, layers=32, heads=20, act="gelu", projection=1280
        ),
    }
    return files, {"tokenizer": (EOS, _OPENAI_TOKENIZER), "tokenizer_2": ("!", _OPENCLIP_TOKENIZER)}


def _published(facts: Callable[[], tuple[dict, dict]]) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        files, tokenizers = facts()
        for rel, document in files.items():
            path = root / rel
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps(document, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        for sub, (pad, name) in tokenizers.items():
            write_clip_tokenizer(root / sub, pad_token=pad, name=name)

    return write


def _tiny(arch: str) -> Callable[[Path], None]:
    def write(root: Path) -> None:
        from merges.engine.tiny import tiny_components, write_pipeline_config_dir

        write_pipeline_config_dir(tiny_components(arch, 0), root, arch)

    return write


@dataclass(frozen=True)
class BaseConfig:
    name: str
    description: str
    write: Callable[[Path], None]


BASE_CONFIGS: dict[str, BaseConfig] = {
    c.name: c
    for c in (
        BaseConfig("sd15", "Stable Diffusion 1.5", _published(_sd15)),
        BaseConfig("sd21", "Stable Diffusion 2.1 (768, v-prediction)", _published(_sd21)),
        BaseConfig("sdxl", "Stable Diffusion XL 1.0 base (also Pony, Illustrious)", _published(_sdxl)),
        BaseConfig("tiny-sd1", "the demo's tiny SD1-topology checkpoints", _tiny("sd1")),
        BaseConfig("tiny-sdxl", "tiny SDXL-topology checkpoints", _tiny("sdxl")),
    )
}


def base_config_write(name: str, root: Path) -> Path:
    """Write ``root/name`` whole or not at all (a partial folder is renamed into place)."""
    if name not in BASE_CONFIGS:
        raise BaseConfigError(f"unknown base config {name!r}; known: {', '.join(BASE_CONFIGS)}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    partial = root / f".{name}.partial-{os.getpid()}"
    shutil.rmtree(partial, ignore_errors=True)
    try:
        BASE_CONFIGS[name].write(partial)
        target, old = root / name, root / f".{name}.old-{os.getpid()}"
        if target.exists():
            target.rename(old)
        partial.rename(target)
        shutil.rmtree(old, ignore_errors=True)
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    return root / name


# --- choosing a folder for a checkpoint ----------------------------------------------------------

Shapes = dict[str, tuple[int, ...]]


def checkpoint_arch(keys: Iterable[str]) -> str:
    """sd1, sd2 or sdxl from a single-file checkpoint's key layout."""
    keys = set(keys)
    if any(k.startswith("conditioner.embedders.") for k in keys):
        return "sdxl"
    if any(k.startswith("cond_stage_model.model.") for k in keys):
        return "sd2"
    if any(k.startswith("cond_stage_model.transformer.") for k in keys):
        return "sd1"
    raise RenderInputError("the file is not a Stable Diffusion 1, 2 or XL checkpoint")


def checkpoint_shapes(path: Path) -> Shapes:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return {k: tuple(f.get_slice(k).get_shape()) for k in f.keys()}
    except Exception as exc:  # a damaged header: the loader would fail the same way
        raise RenderInputError(f"could not read the checkpoint's header: {exc}") from exc


def _is_xl(config_dir: Path) -> bool:
    index = json.loads((config_dir / "model_index.json").read_text(encoding="utf-8"))
    return "XL" in str(index.get("_class_name", ""))


def _squeezed(shape: Iterable[int]) -> tuple[int, ...]:
    # Some files keep the VAE's attention projections as 1x1 convs, others as matrices.
    shape = tuple(shape)
    while len(shape) > 2 and shape[-1] == 1:
        shape = shape[:-1]
    return shape


_shapes_lock = threading.Lock()
_shapes_cache: dict[tuple[str, float, str], Shapes] = {}


def config_shapes(config_dir: Path, arch: str) -> Shapes:
    """Single-file key -> shape that a checkpoint must have to load with ``config_dir`` (no weights made)."""
    import torch

    config_dir = Path(config_dir)
    stamp = max(p.stat().st_mtime for p in config_dir.rglob("*.json"))
    cache_key = (str(config_dir.resolve()), stamp, arch)
    with _shapes_lock:
        if cache_key in _shapes_cache:
            return _shapes_cache[cache_key]
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection

    from merges.engine import ldm_convert

    def text_encoder(sub: str, cls):
        return cls(CLIPTextConfig.from_pretrained(str(config_dir / sub)))

    with torch.device("meta"):
        unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(str(config_dir / "unet")))
        vae = AutoencoderKL.from_config(AutoencoderKL.load_config(str(config_dir / "vae")))
        state = {}
        state.update(ldm_convert.unet_to_ldm(unet.state_dict(), "sdxl" if arch == "sdxl" else "sd1"))
        state.update(ldm_convert.vae_to_ldm(vae.state_dict()))
        if arch == "sdxl":
            state.update(ldm_convert.clip_to_ldm(text_encoder("text_encoder", CLIPTextModel).state_dict(), "sdxl", 0))
            te2 = text_encoder("text_encoder_2", CLIPTextModelWithProjection)
            state.update(ldm_convert.clip_to_ldm(te2.state_dict(), "sdxl", 1))
        elif arch == "sd2":
            hf = ldm_convert._hf_clip_keys(text_encoder("text_encoder", CLIPTextModel).state_dict())
            state.update({f"cond_stage_model.model.{k}": v for k, v in ldm_convert._openclip_from_hf(hf).items()})
        else:
            state.update(ldm_convert.clip_to_ldm(text_encoder("text_encoder", CLIPTextModel).state_dict(), "sd1", 0))
    shapes = {k: tuple(v.shape) for k, v in state.items()}
    with _shapes_lock:
        _shapes_cache[cache_key] = shapes
    return shapes


def _mismatch(expected: Mapping[str, tuple[int, ...]], actual: Mapping[str, tuple[int, ...]]) -> str | None:
    for key, shape in expected.items():
        have = actual.get(key)
        if have is None:
            return f"{key} is missing"
        if _squeezed(have) != _squeezed(shape):
            return f"{key} has shape {list(have)}, the config needs {list(shape)}"
    return None


@dataclass(frozen=True)
class ConfigChoice:
    config_dir: Path
    arch: str


def config_choose(checkpoint: Path, root: Path, *, preferred: str = "") -> ConfigChoice:
    """The config folder under ``root`` that fits ``checkpoint``'s tensors (``preferred`` tried first)."""
    root = Path(root)
    actual = checkpoint_shapes(Path(checkpoint))
    arch = checkpoint_arch(actual)
    folders = sorted(p for p in root.iterdir() if (p / "model_index.json").is_file()) if root.is_dir() else []
    folders.sort(key=lambda p: p.name != preferred)
    if not folders:
        raise RenderInputError(f"no base-model configs under {root}", reason=NO_CONFIGS_REASON)
    tried = []
    for folder in folders:
        if _is_xl(folder) != (arch == "sdxl"):
            continue
        try:
            why = _mismatch(config_shapes(folder, arch), actual)
        except Exception as exc:  # a broken folder is skipped, and named in the error below
            why = f"unreadable ({type(exc).__name__}: {exc})"
        if why is None:
            return ConfigChoice(folder, arch)
        tried.append(f"{folder.name}: {why}")
    raise RenderInputError(
        f"no base-model config under {root} fits this {arch} checkpoint ({'; '.join(tried) or 'none of that architecture'})",
        reason=NO_FITTING_CONFIG_REASON,
    )


NO_CONFIGS_REASON = (
    "Previews cannot be rendered yet because this hub has no base-model settings installed. "
    "Ask the site's administrator to install them, then render again."
)
NO_FITTING_CONFIG_REASON = (
    "This checkpoint's layers do not match any base model this hub can render "
    "(SD 1.5, SD 2.1, SDXL). Check that the file is a complete checkpoint of a supported base model."
)
