"""A full-size SD 1.5 checkpoint renders on the CPU from the offline base config.

The file (2.1 GB, fp16, random weights) has the real SD 1.5 key names and
shapes from sd-mecha's reference list; it is written once under the test data
dir. The render goes the way a render job does: the config is chosen by the
file's tensors, the pipeline is built with ``from_single_file(config=…,
local_files_only=True)`` in float32, and the grid and PNGs are encoded. About
7 GB of memory at its peak, a minute or two on two cores.
"""
from __future__ import annotations

import numpy as np
import pytest

from hub.previews.renderer.base_configs import base_config_write, config_choose
from hub.previews.renderer.infotext import parse_infotext, png_bytes, read_parameters
from hub.previews.renderer.pipeline import load_pipeline
from hub.previews.renderer.render import ModelInfo, render_grid
from hub.previews.renderer.spec import parse_spec
from tests.previews.full_size import sd15_full_checkpoint

pytestmark = pytest.mark.slow


def test_full_size_sd15_checkpoint_renders_at_64px_with_one_step(tmp_path):
    root = tmp_path / "configs"
    for name in ("sd15", "tiny-sd1"):
        base_config_write(name, root)
    checkpoint = sd15_full_checkpoint()
    # Labelled with the tiny config first: the shapes still pick sd15.
    choice = config_choose(checkpoint, root, preferred="tiny-sd1")
    assert (choice.config_dir.name, choice.arch) == ("sd15", "sd1")
    pipe = load_pipeline(choice.arch, checkpoint, choice.config_dir, device="cpu")
    assert list(pipe.unet.config.block_out_channels) == [320, 640, 1280, 1280]
    assert pipe.text_encoder.get_input_embeddings().weight.shape == (49408, 768)
    assert pipe.tokenizer("a photo of a cat").input_ids == [49406, 320, 1125, 539, 320, 2368, 49407]

    spec = parse_spec({"prompts": ["a photo of a cat"], "seeds": [1], "steps": 1, "size": [64, 64]})
    result = render_grid(pipe, spec, ModelInfo(hash="0123456789", name="sd15-random"))
    image = result.cells[0].image
    assert image.size == (64, 64) and np.isfinite(np.asarray(image, dtype=np.float32)).all()
    data = png_bytes(image, result.cells[0].parameters)
    parameters = parse_infotext(read_parameters(data))
    assert parameters["Prompt"] == "a photo of a cat" and parameters["Steps"] == "1" and parameters["Size"] == "64x64"
