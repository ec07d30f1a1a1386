"""Building diffusers pipelines offline from single-file checkpoints, and keeping one per worker.

``from_single_file(ckpt, config=DIR, local_files_only=True)`` builds the
pipeline from a local diffusers config folder (``BASE_CONFIGS_DIR/<base>``,
see ``merges.engine.tiny``'s docstring for what it must hold), never from a
hub. Checkpoints are loaded from ``.safetensors`` paths only, so diffusers
never falls back to unpickling. LoRAs are applied with diffusers'
``load_lora_weights`` (kohya names are converted by diffusers) as a PEFT
adapter, so switching LoRAs on a cached base restores the base exactly.
"""
from __future__ import annotations

import contextlib
import gc
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from hub.previews.renderer.base_configs import NO_CONFIGS_REASON
from hub.previews.renderer.errors import RenderInputError
from hub.previews.renderer.spec import SAMPLERS

logger = logging.getLogger(__name__)

ADAPTER = "preview"
# Below this much free memory (GPU, or RAM on the CPU) the cached pipeline is
# dropped after a job, and attention slicing + VAE tiling are switched on.
DEFAULT_MIN_FREE_BYTES = {"cuda": 2 * 1024**3, "cpu": 2 * 1024**3}


def pipeline_class(arch: str) -> Any:
    from diffusers import StableDiffusionPipeline, StableDiffusionXLPipeline

    if arch in ("sd1", "sd2"):
        return StableDiffusionPipeline
    if arch == "sdxl":
        return StableDiffusionXLPipeline
    raise RenderInputError(
        f"previews are not supported for the {arch!r} architecture",
        reason="Previews are rendered for SD 1.5, SD 2.1 and SDXL checkpoints only.",
    )


def torch_dtype_for(device: str) -> torch.dtype:
    return torch.float16 if device.startswith("cuda") else torch.float32


@contextlib.contextmanager
def hub_offline() -> Iterator[None]:
    """No Hugging Face Hub request while loading: the offline switch on, as if HF_HUB_OFFLINE=1 were set.

    ``local_files_only=True`` already keeps diffusers to the config folder;
    this also covers code paths that would otherwise ask the hub (a missing
    file then fails at once instead of waiting on the network).
    """
    import huggingface_hub.constants as hf_constants

    saved_env, saved_flag = os.environ.get("HF_HUB_OFFLINE"), hf_constants.HF_HUB_OFFLINE
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        hf_constants.HF_HUB_OFFLINE = saved_flag
        if saved_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = saved_env


def load_pipeline(arch: str, checkpoint: Path, config_dir: Path, *, device: str = "cpu") -> Any:
    """A ready pipeline on ``device`` (fp16 on CUDA), or RenderInputError naming what is wrong."""
    cls = pipeline_class(arch)
    checkpoint, config_dir = Path(checkpoint), Path(config_dir)
    if checkpoint.suffix != ".safetensors" or not checkpoint.is_file():
        raise RenderInputError(f"checkpoint {checkpoint.name!r} is not a local .safetensors file")
    if not (config_dir / "model_index.json").is_file():
        raise RenderInputError(
            f"no base-model config at {config_dir} (fill BASE_CONFIGS_DIR with manage.py hub_base_configs)",
            reason=NO_CONFIGS_REASON,
        )
    kwargs: dict[str, Any] = {"config": str(config_dir), "local_files_only": True}
    if torch_dtype_for(device) != torch.float32:  # float32 is diffusers' default; naming it only adds a warning
        kwargs["torch_dtype"] = torch_dtype_for(device)
    if arch == "sdxl":
        kwargs["add_watermarker"] = False  # renders must not depend on an optional package
    else:
        # The real SD1/SD2 model_index.json lists a safety checker and its image processor,
        # whose weights are not in BASE_CONFIGS_DIR: previews of a model are shown unfiltered.
        kwargs.update(safety_checker=None, feature_extractor=None, requires_safety_checker=False)
    try:
        with hub_offline():
            pipe = cls.from_single_file(str(checkpoint), **kwargs)
        _own_storage(pipe)
        pipe.to(device)
    except Exception as exc:  # diffusers raises many types for a bad file: all mean "cannot load"
        raise RenderInputError(f"could not load the checkpoint: {type(exc).__name__}: {str(exc)[:300]}") from exc
    pipe.set_progress_bar_config(disable=True)
    pipe._mw_scheduler_config = dict(pipe.scheduler.config)
    return pipe


def _own_storage(pipe: Any) -> None:
    """Give every weight its own freshly allocated (aligned) storage.

    Loaded weights can be views into the memory-mapped file at offsets that
    differ from file to file. Some CPU kernels take other vector paths for
    other alignments, which changed renders of identical weights by one
    8-bit level. Own copies make a render depend on the weights' values
    only, and keep the pipeline valid when the cache evicts the file.
    """
    with torch.no_grad():
        for component in pipe.components.values():
            if isinstance(component, torch.nn.Module):
                for tensor in (*component.parameters(), *component.buffers()):
                    tensor.data = tensor.data.clone(memory_format=torch.contiguous_format)


def lora_apply(pipe: Any, lora: Path, strength: float) -> None:
    """Load a kohya/diffusers LoRA file onto ``pipe`` as the one preview adapter."""
    from safetensors.torch import load_file

    try:
        state = load_file(str(lora))
        if not state:
            raise ValueError("the file holds no tensors")
        pipe.load_lora_weights(state, adapter_name=ADAPTER)
        if not any(ADAPTER in names for names in pipe.get_list_adapters().values()):
            raise ValueError("no layer of this checkpoint matched the LoRA")
        lora_strength_set(pipe, strength)
    except Exception as exc:
        raise RenderInputError(
            f"could not apply the LoRA: {type(exc).__name__}: {str(exc)[:300]}",
            reason="The LoRA could not be applied to the base checkpoint. Choose a base checkpoint of the "
            "LoRA's own base model and render again, or check the LoRA file.",
        ) from exc


def lora_strength_set(pipe: Any, strength: float) -> None:
    pipe.set_adapters([ADAPTER], adapter_weights=[strength])


def lora_remove(pipe: Any) -> None:
    pipe.unload_lora_weights()


def sampler_set(pipe: Any, sampler: str) -> None:
    """Switch to an A1111-named sampler, built from the base model's own scheduler config."""
    import diffusers

    class_name, overrides = SAMPLERS[sampler]
    base = getattr(pipe, "_mw_scheduler_config", None) or dict(pipe.scheduler.config)
    pipe.scheduler = getattr(diffusers, class_name).from_config(base, **overrides)


def memory_free_bytes(device: str) -> int:
    if device.startswith("cuda"):
        free, _total = torch.cuda.mem_get_info(torch.device(device))
        return int(free)
    import psutil

    return int(psutil.virtual_memory().available)


def memory_short(device: str, min_free: int | None = None) -> bool:
    floor = min_free if min_free is not None else DEFAULT_MIN_FREE_BYTES["cuda" if device.startswith("cuda") else "cpu"]
    return memory_free_bytes(device) < floor


def memory_savers_enable(pipe: Any) -> None:
    """Attention slicing and VAE tiling: slower, but fit big grids into little memory."""
    pipe.enable_attention_slicing()
    pipe.vae.enable_tiling()


@dataclass(frozen=True)
class PipelineKey:
    """What a cached pipeline holds. ``base`` identifies the weights; ``lora`` the adapter on them."""

    arch: str
    checkpoint_sha256: str
    config_dir: str
    device: str
    lora_sha256: str | None = None
    # An alpha sweep overwrites the weights; its pipeline is never shared with plain renders.
    sweep_with: str | None = None

    @property
    def base(self) -> tuple[str, str, str, str, str | None]:
        return self.arch, self.checkpoint_sha256, self.config_dir, self.device, self.sweep_with


class PipelineCache:
    """One pipeline per worker process, keyed by checkpoint (and LoRA) hash.

    A request for another checkpoint frees the old pipeline first, so a worker
    never holds two. A request for the same base with another LoRA swaps only
    the adapter.
    """

    def __init__(self) -> None:
        self.key: PipelineKey | None = None
        self.pipe: Any = None

    def get(
        self,
        key: PipelineKey,
        build: Callable[[], Any],
        *,
        lora: Callable[[Any], None] | None = None,
    ) -> Any:
        if self.key is not None and self.key.base != key.base:
            self.drop()
        if self.pipe is None:
            self.pipe = build()
            self.key = PipelineKey(**{**key.__dict__, "lora_sha256": None})
        if self.key.lora_sha256 != key.lora_sha256:
            if self.key.lora_sha256 is not None:
                lora_remove(self.pipe)
                self.key = PipelineKey(**{**self.key.__dict__, "lora_sha256": None})
            if key.lora_sha256 is not None:
                if lora is None:
                    raise ValueError("a LoRA key needs a loader")
                try:
                    lora(self.pipe)
                except Exception:
                    # A half-loaded adapter would leak into the next render: start clean instead.
                    self.drop()
                    raise
                self.key = key
        return self.pipe

    def drop(self) -> None:
        device = self.key.device if self.key else "cpu"
        self.pipe = None
        self.key = None
        gc.collect()
        if device.startswith("cuda") and torch.cuda.is_available():
            torch.cuda.empty_cache()

    def trim(self, min_free: int | None = None) -> bool:
        """Free the cached pipeline when memory is short; True when it was dropped."""
        if self.key is None or not memory_short(self.key.device, min_free):
            return False
        logger.info("render: memory short on %s, freeing the cached pipeline", self.key.device)
        self.drop()
        return True


PIPELINES = PipelineCache()
