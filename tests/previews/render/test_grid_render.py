"""A 2x2 grid from tiny single-file SD1 and SDXL checkpoints on the CPU, loaded offline."""
from __future__ import annotations

import io
import socket

import numpy as np
import pytest
from PIL import Image

from hub.previews.renderer.grid import label_image
from hub.previews.renderer.infotext import parse_infotext, png_bytes, read_parameters
from hub.previews.renderer.render import ModelInfo, render_batch, render_grid
from hub.previews.renderer.spec import parse_spec

PROMPTS = ["a photo of a cat", "portrait of a woman, oil painting"]
SEEDS = [1, 2]


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"network access attempted: {args!r}")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def spec(**changes):
    data = {"prompts": PROMPTS, "seeds": SEEDS, "negative": "blurry", "steps": 2, "cfg": 5.0, "size": [64, 64]}
    return parse_spec({**data, **changes})


def pixels(img: Image.Image) -> np.ndarray:
    return np.asarray(img.convert("RGB"))


@pytest.mark.parametrize("arch", ["sd1", "sdxl"])
def test_two_by_two_grid(arch: str, pipelines, no_network) -> None:
    pipe = pipelines(arch)
    s = spec()
    model = ModelInfo(hash="0123456789", name="tiny")
    progress: list[tuple[int, int]] = []
    result = render_grid(pipe, s, model, batch_size=4, progress=lambda d, t: progress.append((d, t)))

    # size and layout: a header row and a label column around 2x2 cells of 64 px
    layout = result.layout
    assert (layout.rows, layout.cols, layout.cell_w, layout.cell_h) == (2, 2, 64, 64)
    assert result.grid.size == (layout.label_w + 2 * 64, layout.header_h + 2 * 64)
    assert progress == [(4, 4)]

    # labels: each label box holds exactly that label, drawn with the default font, and is not blank
    labels = [(layout.row_label_box(r), PROMPTS[r]) for r in range(2)]
    labels += [(layout.col_label_box(c), f"seed {SEEDS[c]}") for c in range(2)]
    for box, text in labels:
        tile = result.grid.crop(box)
        expected = label_image(text, box[2] - box[0], box[3] - box[1], layout.font_size)
        assert np.array_equal(pixels(tile), pixels(expected)), text
        assert pixels(tile).min() < 128, f"label {text!r} drew nothing"
    assert result.plan.row_labels == tuple(PROMPTS)
    assert result.plan.col_labels == ("seed 1", "seed 2")

    # every cell equals its single render (bit for bit), and sits in the grid where it belongs
    for rc in result.cells:
        single = render_batch(pipe, s, [rc.cell], invariant=True)[0]
        assert np.array_equal(pixels(single), pixels(rc.image)), rc.cell
        assert np.array_equal(pixels(result.grid.crop(layout.cell_box(rc.cell.row, rc.cell.col))), pixels(rc.image))
        assert (rc.cell.prompt, rc.cell.seed) == (PROMPTS[rc.cell.row], SEEDS[rc.cell.col])
    # different seeds and prompts give different images
    flat = [pixels(rc.image).tobytes() for rc in result.cells]
    assert len(set(flat)) == 4

    # a rerun (other batch size, too) is pixel-identical
    again = render_grid(pipe, s, model, batch_size=3)
    assert np.array_equal(pixels(again.grid), pixels(result.grid))

    # the PNG's parameters chunk holds prompt, negative, steps, sampler, cfg, seed, size and model hash
    cell = result.cells[1]
    data = png_bytes(cell.image, cell.parameters)
    text = read_parameters(data)
    assert text == cell.parameters
    assert text.splitlines()[0] == PROMPTS[0]
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == PROMPTS[0]
    assert parsed["Negative prompt"] == "blurry"
    assert parsed["Steps"] == "2" and parsed["Sampler"] == "Euler a" and parsed["CFG scale"] == "5"
    assert parsed["Seed"] == "2" and parsed["Size"] == "64x64"
    assert parsed["Model hash"] == "0123456789" and parsed["Model"] == "tiny"
    with Image.open(io.BytesIO(data)) as img:
        assert img.format == "PNG" and img.size == (64, 64)
        assert np.array_equal(pixels(img), pixels(cell.image))


def test_samplers_render_deterministically(pipelines) -> None:
    pipe = pipelines("sd1")
    for sampler in ("Euler", "DPM++ 2M Karras", "DDIM"):
        s = spec(sampler=sampler, prompts=PROMPTS[:1])
        a = render_grid(pipe, s, ModelInfo(hash="x"), batch_size=2)
        b = render_grid(pipe, s, ModelInfo(hash="x"), batch_size=1)
        assert np.array_equal(pixels(a.grid), pixels(b.grid)), sampler
        assert f"Sampler: {sampler}" in a.cells[0].parameters


def test_a_sixteen_image_batch_matches_single_renders(pipelines) -> None:
    # From batch 16 on, torch hands CPU convolutions to NNPACK unless the renderer stops it.
    pipe = pipelines("sd1")
    s = spec(prompts=[f"{p}, {style}" for p in PROMPTS for style in ("oil", "ink")], seeds=[1, 2, 3, 4], size=[32, 32])
    assert s.image_count == 16
    result = render_grid(pipe, s, ModelInfo(hash="x"), batch_size=16)
    for rc in (result.cells[0], result.cells[7], result.cells[15]):
        single = render_batch(pipe, s, [rc.cell], invariant=True)[0]
        assert np.array_equal(pixels(single), pixels(rc.image)), rc.cell
