"""Base models previews can be rendered for: architecture, config folder, default prompt set.

``config`` names the folder under BASE_CONFIGS_DIR (written offline by
``manage.py hub_base_configs``, or fetched by ``infra/scripts/fetch-base-configs.sh``)
that a render tries first; the folder actually used is the one whose shapes fit
the checkpoint. Pony and Illustrious are SDXL fine-tunes and share SDXL's config.
"""
from __future__ import annotations

from dataclasses import dataclass

from hub.catalog.models import ModelVersion
from hub.previews.renderer.spec import RenderSpec

_PROMPTS = (
    "a photo of a cat sitting on a red chair, highly detailed",
    "portrait of a woman with long hair, digital painting, sharp focus",
    "landscape with mountains and a lake at sunset, cinematic lighting",
    "an astronaut riding a horse on the moon, oil painting",
)
_NEGATIVE = "low quality, worst quality, blurry, bad anatomy, deformed, text, watermark, signature"


@dataclass(frozen=True)
class BaseProfile:
    arch: str
    config: str
    defaults: RenderSpec


def _spec(side: int, steps: int, prompts: tuple[str, ...] = _PROMPTS, negative: str = _NEGATIVE) -> RenderSpec:
    return RenderSpec(prompts=prompts, seeds=(1, 2), negative=negative, steps=steps, cfg=7.0, width=side, height=side)


_PONY_PROMPTS = tuple(f"score_9, score_8_up, {p}" for p in _PROMPTS)

PROFILES: dict[str, BaseProfile] = {
    ModelVersion.BaseModel.SD_1_5: BaseProfile("sd1", "sd15", _spec(512, 20)),
    ModelVersion.BaseModel.SD_2_1: BaseProfile("sd2", "sd21", _spec(768, 20)),
    ModelVersion.BaseModel.SDXL_1_0: BaseProfile("sdxl", "sdxl", _spec(1024, 25)),
    ModelVersion.BaseModel.PONY: BaseProfile("sdxl", "sdxl", _spec(1024, 25, prompts=_PONY_PROMPTS)),
    ModelVersion.BaseModel.ILLUSTRIOUS: BaseProfile("sdxl", "sdxl", _spec(1024, 25)),
}


def profile_for(base_model: str) -> BaseProfile | None:
    return PROFILES.get(base_model)
