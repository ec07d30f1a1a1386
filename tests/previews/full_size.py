"""A full-size SD 1.5 single-file checkpoint with random weights, real key names and shapes.

Keys and shapes come from sd-mecha's shipped SD1 key list (``sd1-ldm.yaml``,
its non-optional keys), so the file is laid out as a real SD 1.5 checkpoint
without being derived from our own configs. Values are a 16 MiB pool of
N(0, 0.02²) fp16 numbers repeated: writing 2 GB takes seconds, and the
weights stay small enough to render without overflow. Cached under the test
data dir (never committed).
"""
from __future__ import annotations

import importlib.util
import json
import os
import struct
from pathlib import Path

import pytest
import torch

from tests.previews.tiny_files import fixtures_dir

POOL_BYTES = 16 * 1024 * 1024


def sd1_real_keys() -> dict[str, list[int]]:
    spec = importlib.util.find_spec("sd_mecha")
    if spec is None or spec.origin is None:
        pytest.skip("sd-mecha==1.1.8 is not installed (it ships the reference key lists)")
    import yaml

    path = Path(spec.origin).parent / "extensions" / "builtin" / "model_configs" / "sd1-ldm.yaml"
    doc = yaml.load(path.read_text(), Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader))
    return {
        key: list(meta["shape"])
        for component in doc["components"].values()
        for key, meta in component.items()
        if not meta.get("optional") and meta.get("dtype", "float32") == "float32"
    }


def sd15_full_checkpoint() -> Path:
    target = fixtures_dir() / "sd15-full-random-fp16.safetensors"
    if target.exists():
        return target
    keys = sd1_real_keys()
    header: dict[str, dict] = {}
    offset = 0
    for key in sorted(keys):
        numel = 1
        for d in keys[key]:
            numel *= d
        header[key] = {"dtype": "F16", "shape": keys[key], "data_offsets": [offset, offset + 2 * numel]}
        offset += 2 * numel
    blob = json.dumps(header, separators=(",", ":")).encode()
    blob += b" " * (-len(blob) % 8)
    generator = torch.Generator().manual_seed(0)
    pool = (torch.randn(POOL_BYTES // 2, generator=generator) * 0.02).to(torch.float16).numpy().tobytes()
    partial = target.with_name(f".{target.name}.partial-{os.getpid()}")
    with open(partial, "wb") as f:
        f.write(struct.pack("<Q", len(blob)))
        f.write(blob)
        for key in sorted(keys):
            begin, end = header[key]["data_offsets"]
            left = end - begin
            while left:
                n = min(left, len(pool))
                f.write(pool[:n])
                left -= n
    os.replace(partial, target)
    return target
