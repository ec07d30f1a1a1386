"""Preview rendering with diffusers and grid composition: plain library code, no Django.

``hub.previews`` (services and jobs) decides what to render and stores the
results; this package only turns files and a ``RenderSpec`` into images, and
imports neither Django nor ``workers`` (``tests/test_layering.py`` checks):

* ``base_configs``: the weightless base-model config folders (written offline)
  and the choice of one by a checkpoint's tensor shapes;
* ``spec``: the prompt configuration (validated, normalised, A1111 sampler names);
* ``pipeline``: offline ``from_single_file`` loading, LoRA adapters, samplers,
  memory care and the per-process pipeline cache;
* ``render``: batched rendering with one generator per image, grid planning;
* ``invariance``: batch-invariant CPU numerics (a batched cell equals its single render);
* ``sweep``: alpha sweeps merged in memory;
* ``grid`` and ``infotext``: the labelled grid, PNG ``parameters`` chunks and WebP thumbnails.
"""
