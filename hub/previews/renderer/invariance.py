"""Batch-invariant numerics on the CPU: an image rendered in a batch is bit-identical to its single render.

Measured on torch 2.13's CPU kernels with the tiny SD1/SDXL pipelines, a cell
of a batched grid differed from the same prompt and seed rendered alone by up
to ~4e-6 (enough to flip some 8-bit pixel values), although every image has
its own generator and identical initial latents. The causes, found by
comparing module outputs batch-vs-single:

* ``linear`` over few rows per sample (time embeddings, the 1x1 and 2x2
  latents of the lowest UNet levels) takes other BLAS paths for M=1 than for
  M=B; with many rows per sample each row came out the same here (the tests
  check batched against single renders bit for bit);
* ``scaled_dot_product_attention`` with short queries splits its work over
  threads by batch size;
* ``group_norm`` and ``conv2d`` pick other kernels when their input is not in
  the default memory format (the VAE's attention and upsampler hand them
  permuted tensors whose layout is read differently for batch 1);
* oneDNN (mkldnn) convolutions use other algorithms for batch 1 than for
  batch >= 2, and NNPACK takes over convolutions from batch 16; the native
  convolution loops over samples and is invariant.

Inside :class:`batch_invariant`, linear and attention with fewer than
``ROWS_PER_SAMPLE`` rows (queries) per sample run one sample at a time,
group_norm and conv2d get contiguous inputs, and oneDNN and NNPACK are off.
Each sample then goes through the kernels a batch of one would use. The big
matrix products and every convolution still run batched. On CUDA the
renderer does not use this mode (it would cost GPU throughput, and
cuDNN/cuBLAS kernels vary with batch size in ways these switches do not
cover), so there a cell may differ from its single render by rounding.
"""
from __future__ import annotations

import warnings

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

# Below this many rows (linear) or queries (attention) per sample, run per sample.
ROWS_PER_SAMPLE = 64


def _per_sample(func, args: tuple, kwargs: dict, n: int) -> torch.Tensor:
    # Tensors with the batch as their first dimension are sliced; weights and biases are not.
    def part(value, i: int):
        if isinstance(value, torch.Tensor) and value.dim() >= 2 and value.shape[0] == n:
            return value[i : i + 1]
        return value

    return torch.cat(
        [func(*(part(a, i) for a in args), **{k: part(v, i) for k, v in kwargs.items()}) for i in range(n)]
    )


class _BatchInvariantMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):  # noqa: ANN001 - torch's protocol
        kwargs = kwargs or {}
        if func is F.linear:
            x = args[0]
            n = x.shape[0] if x.dim() >= 2 else 1
            if n > 1 and x.numel() // (n * x.shape[-1]) < ROWS_PER_SAMPLE:
                return torch.cat([func(x[i : i + 1], *args[1:], **kwargs) for i in range(n)])
        elif func is F.scaled_dot_product_attention:
            q = args[0]
            if q.dim() >= 3 and q.shape[0] > 1 and q.shape[-2] < ROWS_PER_SAMPLE:
                return _per_sample(func, args, kwargs, q.shape[0])
        elif func is F.group_norm or func is F.conv2d:
            return func(args[0].contiguous(), *args[1:], **kwargs)
        return func(*args, **kwargs)


class batch_invariant:
    """Context manager: batch-invariant CPU numerics (see the module docstring)."""

    def __enter__(self) -> "batch_invariant":
        self._flags = [torch.backends.mkldnn.flags(enabled=False), torch.backends.nnpack.flags(enabled=False)]
        with warnings.catch_warnings():  # mkldnn.flags also sets oneDNN's TF32 switch, and warns about Intel GPUs
            warnings.simplefilter("ignore", UserWarning)
            for flag in self._flags:
                flag.__enter__()
        self._mode = _BatchInvariantMode()
        self._mode.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        self._mode.__exit__(*exc)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            for flag in reversed(self._flags):
                flag.__exit__(*exc)
