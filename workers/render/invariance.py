"""Batch-invariant numerics on the CPU: an image rendered in a batch is bit-identical to its single render.

Measured on torch 2.13's CPU kernels with the tiny SD1/SDXL pipelines, a cell
of a batched grid differed from the same prompt and seed rendered alone by up
to ~4e-6 (enough to flip some 8-bit pixel values), although every image has
its own generator and identical initial latents. The causes, found by
comparing module outputs batch-vs-single:

* ``linear`` with few rows (time embeddings, 1x1-token attention in the
  lowest UNet level) takes a different BLAS path for M=1 than for M=B;
* ``scaled_dot_product_attention`` splits its work over threads by batch size;
* ``group_norm`` and ``conv2d`` pick other kernels when their input is not in
  the default memory format (the VAE's attention and upsampler hand them
  permuted tensors whose layout is read differently for batch 1);
* oneDNN (mkldnn) convolutions use other algorithms for batch 1 than for
  batch >= 2; the native convolution loops over samples and is invariant.

Inside :class:`batch_invariant` those four functions run per sample on
contiguous inputs and oneDNN is off. Each sample then goes through exactly
the kernels a batch of one would use, so the result no longer depends on the
batch. The cost is a little dispatch overhead per call (the heavy
convolutions still run batched). On CUDA the renderer does not use this mode:
cuDNN/cuBLAS are not batch-invariant either, and there a cell matches its
single render only to within fp16 rounding (documented in docs and tests).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

_PER_SAMPLE = {F.linear, F.scaled_dot_product_attention, F.group_norm}
_CONTIGUOUS = {F.conv2d, F.group_norm}


class _BatchInvariantMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        if func not in _PER_SAMPLE and func not in _CONTIGUOUS:
            return func(*args, **kwargs)
        x = args[0]
        if func in _CONTIGUOUS:
            x = x.contiguous()
        if func not in _PER_SAMPLE or x.dim() < 2 or x.shape[0] <= 1:
            return func(x, *args[1:], **kwargs)
        if func is F.scaled_dot_product_attention:
            return _sdpa_per_sample(func, args, kwargs)
        return torch.cat([func(x[i : i + 1], *args[1:], **kwargs) for i in range(x.shape[0])])


def _sdpa_per_sample(func: Any, args: tuple, kwargs: dict) -> torch.Tensor:
    q, k, v, *rest = args
    mask = kwargs.pop("attn_mask", rest.pop(0) if rest else None)
    outs = []
    for i in range(q.shape[0]):
        m = mask
        if m is not None and m.dim() == q.dim() and m.shape[0] == q.shape[0]:
            m = m[i : i + 1]
        outs.append(func(q[i : i + 1], k[i : i + 1], v[i : i + 1], m, *rest, **kwargs))
    return torch.cat(outs)


class batch_invariant:
    """Context manager: batch-invariant CPU numerics (see the module docstring)."""

    def __enter__(self) -> "batch_invariant":
        self._mkldnn = torch.backends.mkldnn.flags(enabled=False)
        self._mkldnn.__enter__()
        self._mode = _BatchInvariantMode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)
        self._mkldnn.__exit__(*exc)
