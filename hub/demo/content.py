"""Demo content: tiny but real-topology SD1 files so a newcomer lands on a working site.

The checkpoint is a tiny SD1-topology pipeline (real LDM key names, tiny widths)
and the LoRA is kohya-format with the `ss_*` metadata real trainers write. Each
demo model asks for a small preview grid as it is seeded; the worker renders
it (with the ``tiny-sd1`` base config, chosen by the file's shapes) and its
first images become the model's example images.
"""
from __future__ import annotations

import json
import logging
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import torch
from django.conf import settings
from django.db import transaction

from hub.accounts.models import User
from hub.catalog.models import Model
from hub.files.importing import catalog_import_file

logger = logging.getLogger(__name__)

DEMO_USERNAME = "demo"
DEMO_PASSWORD = "demo-password"

CHECKPOINT_DESCRIPTION = """A **tiny** SD1-topology checkpoint generated in code.

It has every key name of a real Stable Diffusion 1.5 single-file checkpoint
(`model.diffusion_model.*`, `first_stage_model.*`, `cond_stage_model.transformer.*`)
but tiny widths, so it downloads in a blink. Use it to try the API:

```
curl -fL -H "Authorization: Bearer $KEY" {site_url}/api/download/models/{version_id} -o tiny.safetensors
```
"""


def checkpoint_description(version_id: int) -> str:
    # The example must work where this hub runs, not only on the default port.
    return CHECKPOINT_DESCRIPTION.format(site_url=settings.SITE_URL.rstrip("/"), version_id=version_id)

LORA_DESCRIPTION = """A kohya-format LoRA for the tiny checkpoint, with the `ss_*` training
metadata real trainers write. Trigger word: `mwstyle`."""


RECIPE_TITLE = "Tiny Watercolor Blend"
RECIPE_DESCRIPTION = (
    "Blends the two tiny checkpoints (more of the anime one in the middle and output blocks), "
    "then bakes in the watercolor LoRA. Fork it, move a block slider, and run it."
)


# Small and quick on a CPU: the demo's first grids are ready within a minute of the first start.
DEMO_PREVIEW_SPEC = {
    "prompts": [
        "a photo of a cat sitting on a red chair, highly detailed",
        "landscape with mountains and a lake at sunset, cinematic lighting",
    ],
    "seeds": [1, 2],
    "steps": 8,
    "cfg": 7.0,
    "size": [128, 128],
}


@dataclass
class DemoSummary:
    user: User
    created: list[Model]
    recipe: object = None
    render_jobs: list = field(default_factory=list)


def demo_recipe_document(base_version: int, anime_version: int, lora_version: int) -> dict:
    # 26 SD1 block weights: BASE, IN00-IN11, M00, OUT00-OUT11.
    blocks = [0.3] + [0.2] * 12 + [0.5] + [0.6] * 12
    return {
        "format": "mergeworks/recipe@1",
        "architecture": "sd1",
        "inputs": {
            "base": {"model_version": base_version},
            "anime": {"model_version": anime_version},
            "style": {"model_version": lora_version},
        },
        "steps": [
            {"id": "blend", "op": "weighted_sum", "inputs": ["base", "anime"], "alpha": {"blocks": blocks}},
            {"id": "styled", "op": "apply_lora", "inputs": ["blend", "style"], "strength": 0.7},
        ],
        "output": {"step": "styled", "dtype": "fp16"},
    }


def tiny_checkpoint(path: Path, seed: int) -> Path:
    from merges.engine.tiny import save_single_file, tiny_sd1_components

    return save_single_file(tiny_sd1_components(seed=seed), path, "sd1", dtype=torch.float16)


def tiny_lora(path: Path, seed: int, rank: int = 4) -> Path:
    """A kohya LoRA over the tiny UNet's attention projections and the text encoder's attention."""
    from safetensors.torch import save_file

    from merges.engine.tiny import tiny_sd1_components

    components = tiny_sd1_components(seed=0)
    g = torch.Generator().manual_seed(seed)
    tensors: dict[str, torch.Tensor] = {}
    targets = [("lora_unet", components["unet"]), ("lora_te", components["text_encoder"])]
    for prefix, module in targets:
        for name, layer in module.named_modules():
            wanted = name.endswith(("attn1.to_q", "attn1.to_k", "attn1.to_v", "attn2.to_q", "attn2.to_out.0")) or (
                # All four attention projections, as kohya trains them; diffusers also tells a
                # kohya text-encoder LoRA's layout by its out_proj keys.
                name.endswith(("self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.out_proj"))
            )
            if not wanted or not isinstance(layer, torch.nn.Linear):
                continue
            if prefix == "lora_te" and not name.startswith("text_model."):
                # kohya names follow the original CLIPTextModel tree (text_model.encoder…),
                # which newer transformers versions no longer nest under text_model.
                name = f"text_model.{name}"
            key = f"{prefix}_{name.replace('.', '_')}"
            tensors[f"{key}.lora_down.weight"] = torch.randn(rank, layer.in_features, generator=g) * 0.1
            tensors[f"{key}.lora_up.weight"] = torch.randn(layer.out_features, rank, generator=g) * 0.1
            tensors[f"{key}.alpha"] = torch.tensor(float(rank))
    tag_frequency = {"10_mwstyle": {"mwstyle": 40, "1girl": 31, "watercolor": 22, "outdoors": 9}}
    metadata = {
        "ss_base_model_version": "sd_v1",
        "ss_sd_model_name": "tiny-sd1.safetensors",
        "ss_network_module": "networks.lora",
        "ss_network_dim": str(rank),
        "ss_network_alpha": str(float(rank)),
        "ss_output_name": "mwstyle",
        "ss_tag_frequency": json.dumps(tag_frequency),
    }
    save_file({k: v.half().contiguous() for k, v in tensors.items()}, str(path), metadata=metadata)
    return path


def demo_seed() -> DemoSummary:
    """Create the demo user and models; safe to run on every start."""
    user = User.objects.filter(username=DEMO_USERNAME).first()
    if user is None:
        user = User.objects.create_user(username=DEMO_USERNAME, password=DEMO_PASSWORD, email="demo@example.com")
    created: list[Model] = []
    with tempfile.TemporaryDirectory() as tmp:
        tmpdir = Path(tmp)
        plan = [
            ("Tiny SD1 Base", "Checkpoint", ["base model", "tiny"], CHECKPOINT_DESCRIPTION, [],
             lambda p: tiny_checkpoint(p, seed=0), "tiny-sd1.safetensors"),
            ("Tiny SD1 Anime", "Checkpoint", ["anime", "tiny"], "A second tiny checkpoint, to merge with the first.",
             [], lambda p: tiny_checkpoint(p, seed=1), "tiny-sd1-anime.safetensors"),
            ("Watercolor Style LoRA", "LORA", ["style", "watercolor"], LORA_DESCRIPTION, ["mwstyle"],
             lambda p: tiny_lora(p, seed=2), "mwstyle.safetensors"),
        ]
        for name, type_, tags, description, words, build, filename in plan:
            if Model.objects.filter(owner=user, name=name).exists():
                continue
            path = build(tmpdir / filename)
            with transaction.atomic():  # the example's version id is known once the version exists
                result = catalog_import_file(
                    path=path, owner=user, model_name=name, type=type_, tags=tags, description=description,
                    trained_words=words,
                )
                if description is CHECKPOINT_DESCRIPTION:
                    Model.objects.filter(pk=result.model.pk).update(
                        description=checkpoint_description(result.version.pk))
            created.append(result.model)
    return DemoSummary(user=user, created=created, recipe=_demo_recipe(user), render_jobs=_demo_previews(user))


def _demo_recipe(user: User):
    from merges.registry.models import Recipe
    from merges.registry.services import recipe_create

    existing = Recipe.objects.filter(owner=user, title=RECIPE_TITLE).first()
    if existing is not None:
        return existing
    versions = {
        m.name: m.versions.order_by("id").first()
        for m in Model.objects.filter(owner=user, name__in=["Tiny SD1 Base", "Tiny SD1 Anime", "Watercolor Style LoRA"])
    }
    document = demo_recipe_document(
        versions["Tiny SD1 Base"].pk, versions["Tiny SD1 Anime"].pk, versions["Watercolor Style LoRA"].pk
    )
    return recipe_create(
        owner=user, title=RECIPE_TITLE, source=document, description=RECIPE_DESCRIPTION, message="demo recipe"
    )


def _demo_previews(user: User) -> list:
    """Ask for each demo model's first preview grid (rendered by the worker; idempotent).

    Its images also become the version's example images, so the home page shows
    pictures on the first run. Versions with a grid or an active job are left alone.
    """
    from django.apps import apps

    if not apps.is_installed("hub.previews"):
        return []
    from hub.previews.models import RenderJob
    from hub.previews.services import PreviewError, render_request_create

    versions = {
        m.name: m.versions.order_by("id").first()
        for m in Model.objects.filter(owner=user, name__in=["Tiny SD1 Base", "Tiny SD1 Anime", "Watercolor Style LoRA"])
    }
    plan = [("Tiny SD1 Base", None), ("Tiny SD1 Anime", None), ("Watercolor Style LoRA", "Tiny SD1 Base")]
    jobs = []
    for name, base in plan:
        version = versions.get(name)
        if version is None or (base is not None and versions.get(base) is None):
            continue
        if version.preview_grids.exists() or version.render_jobs.filter(status__in=RenderJob.ACTIVE).exists():
            continue
        try:
            jobs.append(
                render_request_create(
                    model_version=version,
                    requested_by=user,
                    spec=DEMO_PREVIEW_SPEC,
                    base_version=versions[base] if base else None,
                    trigger=RenderJob.Trigger.DEMO,
                    attach_examples=True,
                )
            )
        except PreviewError as exc:  # the demo still works without pictures
            logger.warning("demo: no preview requested for %s: %s", name, exc.message)
    return jobs
