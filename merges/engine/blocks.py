"""Block-weight ("MBW") layout: which block each LDM checkpoint key belongs to.

Recipes give per-block alphas as a list in the order of ``BLOCK_NAMES[arch]``
(26 values for SD1/SD2, 20 for SDXL), the same order supermerger's MBW uses,
so its presets paste unchanged.

Assignment, following supermerger (``scripts/mergers/mergers.py``,
``blockfromkey``) as sd-mecha and sd-meh reproduce it:

* ``model.diffusion_model.input_blocks.N.*``  -> ``IN{N:02}``
* ``model.diffusion_model.middle_block.*``    -> ``M00``
* ``model.diffusion_model.output_blocks.N.*`` -> ``OUT{N:02}``
* ``model.diffusion_model.out.*`` (final norm and conv) -> the last OUT block
* ``model.diffusion_model.time_embed.*`` and (SDXL) ``label_emb.*`` -> ``BASE``
* everything else (text encoder(s), VAE, any other key) -> ``BASE``

supermerger versions differ on ``time_embed``: some skip it ("Not Merge",
i.e. model A's value is kept) and one maps it to OUT11 through a negative
index; we follow the published convention (BASE, as in sd-mecha), which is
what the DESIGN's "BASE = everything outside the UNet blocks" states too.
"""

from __future__ import annotations

import re

__all__ = ["BLOCK_NAMES", "block_index", "block_name", "UnknownArchitecture"]


def _names(n_in: int, n_out: int) -> list[str]:
    return (
        ["BASE"]
        + [f"IN{i:02d}" for i in range(n_in)]
        + ["M00"]
        + [f"OUT{i:02d}" for i in range(n_out)]
    )


BLOCK_NAMES: dict[str, list[str]] = {
    "sd1": _names(12, 12),
    # SD2 has SD1's UNet layout (12 input, 12 output blocks), only wider.
    "sd2": _names(12, 12),
    "sdxl": _names(9, 9),
}

_UNET = "model.diffusion_model."
_RE_IN = re.compile(r"^input_blocks\.(\d+)\.")
_RE_MID = re.compile(r"^middle_block\.")
_RE_OUT = re.compile(r"^output_blocks\.(\d+)\.")
# Keys before the first input block; both feed the timestep embedding.
_PRE_UNET = ("time_embed.", "label_emb.")


class UnknownArchitecture(ValueError):
    """Raised for an architecture that has no block layout (e.g. flux)."""


def _layout(arch: str) -> list[str]:
    try:
        return BLOCK_NAMES[arch]
    except KeyError:
        raise UnknownArchitecture(
            f"no block-weight layout for architecture {arch!r}; "
            f"known: {', '.join(sorted(BLOCK_NAMES))}"
        ) from None


def block_index(key: str, arch: str) -> int:
    """Index into ``BLOCK_NAMES[arch]`` of the block that ``key`` belongs to.

    Raises ``ValueError`` for a UNet block number the architecture does not
    have (a key from another architecture), as supermerger refuses an
    "illegal block index" rather than clamping it.
    """
    names = _layout(arch)
    n_blocks = (len(names) - 2) // 2  # input blocks == output blocks
    if not key.startswith(_UNET):
        return 0
    rest = key[len(_UNET):]
    if rest.startswith(_PRE_UNET):
        return 0
    if rest.startswith("out."):
        return len(names) - 1
    if m := _RE_IN.match(rest):
        n = int(m.group(1))
        if n >= n_blocks:
            raise ValueError(f"{key}: input block {n} does not exist in {arch}")
        return 1 + n
    if _RE_MID.match(rest):
        return 1 + n_blocks
    if m := _RE_OUT.match(rest):
        n = int(m.group(1))
        if n >= n_blocks:
            raise ValueError(f"{key}: output block {n} does not exist in {arch}")
        return 2 + n_blocks + n
    # Any other UNet-level key is outside the blocks: supermerger's default
    # index (-1) sends it to BASE.
    return 0


def block_name(key: str, arch: str) -> str:
    """Name (``BASE``, ``IN04``, ``M00``, ``OUT11`` …) of the block of ``key``."""
    return BLOCK_NAMES[arch][block_index(key, arch)]
