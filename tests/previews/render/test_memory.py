"""Resource care: one cached pipeline per process, freed when memory is short; OOM halves the batch."""
from __future__ import annotations

import pytest

from hub.previews.renderer import pipeline as pipeline_module
from hub.previews.renderer import render as render_module
from hub.previews.renderer.errors import RenderError
from hub.previews.renderer.pipeline import PipelineCache, PipelineKey
from hub.previews.renderer.render import Cell, render_cells
from hub.previews.renderer.spec import parse_spec


class FakePipe:
    def __init__(self, name: str):
        self.name = name
        self.loras: list[str] = []

    def unload_lora_weights(self) -> None:
        self.loras.clear()


def test_one_pipeline_per_process_keyed_by_checkpoint_and_lora(monkeypatch) -> None:
    cache = PipelineCache()
    built: list[str] = []

    def build(name):
        def make():
            built.append(name)
            return FakePipe(name)
        return make

    a = PipelineKey(arch="sd1", checkpoint_sha256="a", config_dir="c", device="cpu")
    first = cache.get(a, build("a"))
    assert cache.get(a, build("a")) is first and built == ["a"]
    with_lora = PipelineKey(**{**a.__dict__, "lora_sha256": "l1"})
    assert cache.get(with_lora, build("a"), lora=lambda p: p.loras.append("l1")) is first and first.loras == ["l1"]
    other_lora = PipelineKey(**{**a.__dict__, "lora_sha256": "l2"})
    assert cache.get(other_lora, build("a"), lora=lambda p: p.loras.append("l2")) is first and first.loras == ["l2"]
    b = PipelineKey(arch="sd1", checkpoint_sha256="b", config_dir="c", device="cpu")
    second = cache.get(b, build("b"))
    assert second is not first and built == ["a", "b"] and cache.key == b

    # a LoRA that fails to load leaves no half-patched pipeline behind
    def broken(p):
        raise RuntimeError("bad lora")
    with pytest.raises(RuntimeError):
        cache.get(PipelineKey(**{**b.__dict__, "lora_sha256": "bad"}), build("b"), lora=broken)
    assert cache.pipe is None and cache.key is None

    cache.get(a, build("a"))
    monkeypatch.setattr(pipeline_module, "memory_free_bytes", lambda device: 10 * 1024**3)
    assert cache.trim() is False and cache.pipe is not None
    monkeypatch.setattr(pipeline_module, "memory_free_bytes", lambda device: 100 * 1024**2)
    assert cache.trim() is True and cache.pipe is None


def test_out_of_memory_switches_savers_on_and_halves_the_batch(monkeypatch) -> None:
    spec = parse_spec({"prompts": ["a", "b"], "seeds": [1, 2, 3], "size": [64, 64], "steps": 1})
    cells = [Cell(r, c, p, s) for r, p in enumerate(spec.prompts) for c, s in enumerate(spec.seeds)]
    calls: list[int] = []
    savers: list[object] = []

    class Pipe:
        class unet:
            device = "cuda:0"

    def fake_batch(pipe, spec, chunk, *, invariant):
        calls.append(len(chunk))
        if len(chunk) > 2:
            raise RuntimeError("CUDA out of memory. Tried to allocate 2.00 GiB")
        return [f"img{c.row}{c.col}" for c in chunk]

    monkeypatch.setattr(render_module, "render_batch", fake_batch)
    monkeypatch.setattr(render_module, "memory_savers_enable", savers.append)
    done: list[int] = []
    images = render_cells(Pipe(), spec, cells, batch_size=8, invariant=False, on_batch=done.append)
    assert images == [f"img{c.row}{c.col}" for c in cells]
    assert calls == [6, 4, 2, 2, 2] and len(savers) == 2 and sum(done) == 6

    monkeypatch.setattr(render_module, "render_batch", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("out of memory")))
    with pytest.raises(RenderError, match="not enough memory to render one 64x64 image"):
        render_cells(Pipe(), spec, cells, batch_size=2, invariant=False)
    monkeypatch.setattr(render_module, "render_batch", lambda *a, **k: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):
        render_cells(Pipe(), spec, cells, batch_size=2, invariant=False)
