"""Builders for catalogue rows backed by real files in real storage."""
from __future__ import annotations

import io

import pytest
import torch
from safetensors.torch import save

SD1_LORA_KEYS = [
    "lora_unet_down_blocks_0_attentions_0_transformer_blocks_0_attn1_to_q",
    "lora_te_text_model_encoder_layers_0_self_attn_q_proj",
]


def tiny_safetensors_bytes(seed: int = 0, *, metadata: dict[str, str] | None = None, kind: str = "checkpoint") -> bytes:
    """A small but valid safetensors file carrying real SD1 key names."""
    g = torch.Generator().manual_seed(seed)
    if kind == "lora":
        tensors = {}
        for name in SD1_LORA_KEYS:
            tensors[f"{name}.lora_down.weight"] = torch.randn(4, 32, generator=g, dtype=torch.float32).half()
            tensors[f"{name}.lora_up.weight"] = torch.randn(32, 4, generator=g, dtype=torch.float32).half()
            tensors[f"{name}.alpha"] = torch.tensor(4.0).half()
    else:
        tensors = {
            "model.diffusion_model.input_blocks.0.0.weight": torch.randn(32, 4, 3, 3, generator=g).half(),
            "model.diffusion_model.input_blocks.0.0.bias": torch.randn(32, generator=g).half(),
            "model.diffusion_model.out.2.weight": torch.randn(4, 32, 3, 3, generator=g).half(),
            "cond_stage_model.transformer.text_model.embeddings.token_embedding.weight": torch.randn(
                64, 32, generator=g
            ).half(),
            "first_stage_model.decoder.conv_out.weight": torch.randn(3, 32, 3, 3, generator=g).half(),
        }
    return save(tensors, metadata=metadata)


def make_published_model(
    owner,
    name: str = "Tiny Model",
    *,
    data: bytes | None = None,
    visibility: str = "public",
    type: str = "Checkpoint",
    base_model: str = "SD 1.5",
    version_name: str = "v1.0",
    tags=(),
    publish: bool = True,
    file_name: str | None = None,
    **model_fields,
):
    from hub.catalog.services import model_create, model_version_create, model_version_publish
    from hub.files.services import blob_ingest_stream, model_file_create

    data = data if data is not None else tiny_safetensors_bytes(hash(name) % 1000)
    model = model_create(owner=owner, name=name, type=type, visibility=visibility, tags=tags, **model_fields)
    version = model_version_create(model=model, name=version_name, base_model=base_model)
    blob = blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16], header_reader=io.BytesIO(data))
    model_file_create(version=version, blob=blob, name=file_name or f"{model.slug}.safetensors")
    if publish:
        model_version_publish(version=version)
    model.refresh_from_db()
    return model


@pytest.fixture
def published_model(alice):
    return make_published_model(alice)


def add_published_version(
    model,
    name: str,
    *,
    data: bytes,
    base_model: str = "SD 1.5",
    trained_words=(),
    file_name: str | None = None,
    publish: bool = True,
):
    """Another version (with one file) of an existing model; returns the version."""
    from hub.catalog.services import model_version_create, model_version_publish
    from hub.files.services import blob_ingest_stream, model_file_create

    version = model_version_create(model=model, name=name, base_model=base_model, trained_words=trained_words)
    blob = blob_ingest_stream(reader=io.BytesIO(data), size=len(data), head=data[:16], header_reader=io.BytesIO(data))
    model_file_create(version=version, blob=blob, name=file_name or f"{model.slug}-{version.name}.safetensors")
    if publish:
        version = model_version_publish(version=version)
    return version
