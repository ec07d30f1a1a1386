"""Spec validation, A1111 infotext, PNG/WebP encoding and grid geometry (no rendering)."""
from __future__ import annotations

import io

import pytest
from PIL import Image

from hub.previews.renderer.errors import RenderSpecError
from hub.previews.renderer.grid import compose_grid, label_image
from hub.previews.renderer.infotext import GenerationParameters, parse_infotext, png_bytes, read_parameters, webp_thumbnail_bytes
from hub.previews.renderer.render import plan_grid
from hub.previews.renderer.spec import RenderSpec, parse_spec


def test_preview_block_of_a_recipe_parses_with_defaults() -> None:
    spec = parse_spec({"prompts": ["a cat"], "negative": "ugly", "seeds": [3, 4], "steps": 20, "cfg": 7.0, "size": [512, 768]})
    assert (spec.width, spec.height, spec.sampler, spec.image_count) == (512, 768, "Euler a", 2)
    assert parse_spec(spec.as_dict()) == spec
    assert spec.digest() == parse_spec(spec.as_dict()).digest()
    defaults = RenderSpec(prompts=("x",), seeds=(9,), steps=5, width=64, height=64)
    assert parse_spec({"seeds": [1]}, defaults=defaults) == RenderSpec(prompts=("x",), seeds=(1,), steps=5, width=64, height=64)


@pytest.mark.parametrize(
    ("data", "field"),
    [
        ({"prompts": []}, "prompts"),
        ({"prompts": [" "]}, "prompts[0]"),
        ({"prompts": ["a" * 2001]}, "prompts[0]"),
        ({"prompts": ["a"], "seeds": [1, 1]}, "seeds"),
        ({"prompts": ["a"], "seeds": [-1]}, "seeds[0]"),
        ({"prompts": ["a"], "steps": 0}, "steps"),
        ({"prompts": ["a"], "cfg": float("nan")}, "cfg"),
        ({"prompts": ["a"], "size": [64, 60]}, "size"),
        ({"prompts": ["a"], "size": [16, 16]}, "size[0]"),
        ({"prompts": ["a"], "sampler": "Magic"}, "sampler"),
        ({"prompts": ["a"], "alphas": [0.5]}, "alphas"),
        ({"prompts": ["a"], "alphas": [0.5, 1.5]}, "alphas[1]"),
        ({"prompts": ["a"], "colour": "red"}, "colour"),
        ({"prompts": ["a"] * 9, "seeds": list(range(8))}, "seeds"),  # 72 images > 64
    ],
)
def test_bad_specs_name_their_field(data: dict, field: str) -> None:
    with pytest.raises(RenderSpecError) as info:
        parse_spec(data)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}: ")


def test_infotext_reads_back_like_a1111() -> None:
    params = GenerationParameters(
        prompt="masterpiece, a cat\non two lines",
        negative="blurry, text",
        steps=20,
        sampler="DPM++ 2M Karras",
        cfg=7.5,
        seed=4294967295,
        width=512,
        height=768,
        model_hash="6ce0161689",
        model_name="v1-5: pruned",
        extra={"Lora hashes": "style: abcdef012345"},
    )
    text = params.infotext()
    assert text.splitlines()[-1] == (
        'Steps: 20, Sampler: DPM++ 2M Karras, CFG scale: 7.5, Seed: 4294967295, Size: 512x768, '
        'Model hash: 6ce0161689, Model: "v1-5: pruned", Lora hashes: "style: abcdef012345"'
    )
    parsed = parse_infotext(text)
    assert parsed["Prompt"] == "masterpiece, a cat\non two lines"
    assert parsed["Negative prompt"] == "blurry, text"
    assert parsed["Model"] == "v1-5: pruned" and parsed["Seed"] == "4294967295"


def test_png_and_webp_are_reencoded_files() -> None:
    img = Image.new("RGB", (300, 200), (10, 200, 30))
    data = png_bytes(img, "päräméters ☃\nSteps: 1, Sampler: Euler, Seed: 1")
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    assert read_parameters(data) == "päräméters ☃\nSteps: 1, Sampler: Euler, Seed: 1"
    thumb = webp_thumbnail_bytes(img, 128)
    assert thumb[:4] == b"RIFF" and thumb[8:12] == b"WEBP"
    with Image.open(io.BytesIO(thumb)) as t:
        assert t.size == (128, 85)
    assert png_bytes(img, "x") == png_bytes(img, "x")  # same pixels, same bytes


def test_grid_geometry_and_long_labels() -> None:
    cells = [[Image.new("RGB", (32, 48), (r * 80, c * 80, 0)) for c in range(3)] for r in range(2)]
    long = "an astronaut riding a horse on the moon, oil painting, " * 5
    grid, layout = compose_grid(cells, ["short", long], ["seed 1", "seed 2", "seed 3"])
    assert grid.size == layout.size == (layout.label_w + 3 * 32, layout.header_h + 2 * 48)
    for r in range(2):
        for c in range(3):
            assert grid.crop(layout.cell_box(r, c)).getpixel((5, 5)) == (r * 80, c * 80, 0)
    box = layout.row_label_box(1)
    assert grid.crop(box).tobytes() == label_image(long, box[2] - box[0], box[3] - box[1], layout.font_size).tobytes()
    with pytest.raises(ValueError):
        compose_grid(cells, ["one"], ["a", "b", "c"])


def test_sweep_plan_puts_alphas_in_columns() -> None:
    spec = parse_spec({"prompts": ["p", "q"], "seeds": [5], "alphas": [0, 0.5, 1], "size": [64, 64]})
    plan = plan_grid(spec)
    assert plan.shape == (2, 3) and spec.image_count == 6
    assert plan.col_labels == ("alpha 0", "alpha 0.5", "alpha 1")
    assert {(c.row, c.col, c.prompt, c.alpha) for c in plan.cells} == {
        (r, c, p, a) for r, p in enumerate("pq") for c, a in enumerate([0.0, 0.5, 1.0])
    }
