"""Generators of hostile model files, for tests of every reader and validator.

Each function returns the bytes of one malformed or malicious file, small
enough to build in a test. ``SAFETENSORS_CASES`` maps the
``SafetensorsError.code`` a strict reader must answer to the generator, so a
validator's tests can loop over all of them.

``pickle_bomb`` and ``zip_checkpoint`` hold a pickle that runs a shell command
when unpickled. They exist so scanners and magic-byte checks can be tested;
nothing may ever unpickle them.
"""

from __future__ import annotations

import io
import json
import struct
import zipfile
from typing import Callable

from .safetensors_io import HEADER_CAP

__all__ = [
    "SAFETENSORS_CASES",
    "PICKLE_BOMB_MARKER",
    "bad_dtype",
    "bad_metadata",
    "duplicate_keys",
    "gap",
    "header_not_object",
    "header_over_cap",
    "non_utf8_header",
    "overlapping_offsets",
    "pickle_bomb",
    "safetensors_bytes",
    "size_mismatch",
    "trailing_bytes",
    "truncated",
    "truncated_header",
    "valid",
    "huge_shape",
    "zip_checkpoint",
]

PICKLE_BOMB_MARKER = "/tmp/mergeworks-pickle-bomb-ran"


def _pack(header_json: bytes, data: bytes) -> bytes:
    return struct.pack("<Q", len(header_json)) + header_json + data


def safetensors_bytes(entries: dict[str, dict] | None = None, data: bytes | None = None, metadata: dict | None = None) -> bytes:
    """A file from raw header entries (not validated: that is the point)."""
    if entries is None:
        entries = {
            "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
            "b": {"dtype": "F16", "shape": [4], "data_offsets": [16, 24]},
        }
        data = bytes(range(24))
    doc: dict = {}
    if metadata is not None:
        doc["__metadata__"] = metadata
    doc.update(entries)
    return _pack(json.dumps(doc).encode(), data or b"")


def valid() -> bytes:
    """A well-formed file, the base the other cases break."""
    return safetensors_bytes(metadata={"format": "pt"})


def truncated() -> bytes:
    """The data buffer stops before the last tensor ends."""
    return valid()[:-5]


def truncated_header() -> bytes:
    """The file ends inside the JSON header."""
    return valid()[:20]


def overlapping_offsets() -> bytes:
    """Two tensors share bytes: writing one would change the other."""
    return safetensors_bytes(
        {
            "a": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]},
            "b": {"dtype": "F32", "shape": [4], "data_offsets": [8, 24]},
        },
        bytes(24),
    )


def gap() -> bytes:
    """Unused bytes between tensors (room to hide a payload)."""
    return safetensors_bytes(
        {
            "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]},
            "b": {"dtype": "F32", "shape": [2], "data_offsets": [16, 24]},
        },
        bytes(24),
    )


def trailing_bytes() -> bytes:
    """Extra bytes after the last tensor."""
    return valid() + b"PAYLOAD"


def duplicate_keys() -> bytes:
    """The same tensor name twice: parsers disagree on which one wins."""
    text = (
        '{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},'
        '"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}}'
    ).encode()
    return _pack(text, bytes(16))


def header_over_cap(declared_only: bool = False) -> bytes:
    """A header longer than ``HEADER_CAP``: a cheap way to exhaust memory.

    By default the header really is that long (valid JSON padded with
    spaces), so the only thing wrong is its size; ``declared_only`` just
    claims the length without the bytes.
    """
    body = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    n = HEADER_CAP + 8
    if declared_only:
        return struct.pack("<Q", n) + body
    return struct.pack("<Q", n) + body + b" " * (n - len(body)) + bytes(4)


def header_not_object() -> bytes:
    """JSON that the reference parser accepts but that does not start with '{'."""
    text = b' {"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    return _pack(text, bytes(4))


def non_utf8_header() -> bytes:
    text = b'{"\xff\xfe":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}'
    return _pack(text, bytes(4))


def size_mismatch() -> bytes:
    """Offsets that do not match dtype x shape."""
    return safetensors_bytes({"a": {"dtype": "F32", "shape": [3], "data_offsets": [0, 16]}}, bytes(16))


def huge_shape() -> bytes:
    """A shape whose element count overflows 64 bits."""
    return safetensors_bytes({"a": {"dtype": "F32", "shape": [2**40, 2**40], "data_offsets": [0, 4]}}, bytes(4))


def bad_dtype() -> bytes:
    return safetensors_bytes({"a": {"dtype": "PY_OBJECT", "shape": [1], "data_offsets": [0, 4]}}, bytes(4))


def bad_metadata() -> bytes:
    """``__metadata__`` values must be strings."""
    return safetensors_bytes(
        {"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}, bytes(4), metadata={"ss_network_dim": 32}
    )


def pickle_bomb(command: str = f"touch {PICKLE_BOMB_MARKER}") -> bytes:
    """A protocol-2 pickle whose loading calls ``os.system(command)``.

    Hand-assembled from opcodes so building it runs nothing.
    """
    cmd = command.encode()
    return (
        b"\x80\x02"  # PROTO 2
        + b"cos\nsystem\n"  # GLOBAL os.system
        + b"X" + struct.pack("<I", len(cmd)) + cmd  # BINUNICODE command
        + b"\x85"  # TUPLE1
        + b"R"  # REDUCE: call it
        + b"."  # STOP
    )


def zip_checkpoint(command: str = f"touch {PICKLE_BOMB_MARKER}") -> bytes:
    """A torch.save-style zip whose ``data.pkl`` is ``pickle_bomb``."""
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", compression=zipfile.ZIP_STORED) as z:
        z.writestr("archive/data.pkl", pickle_bomb(command))
        z.writestr("archive/version", "3\n")
    return buf.getvalue()


# case name -> (SafetensorsError.code a strict reader must answer, generator)
SAFETENSORS_CASES: dict[str, tuple[str, Callable[[], bytes]]] = {
    "truncated": ("truncated", truncated),
    "truncated_header": ("truncated", truncated_header),
    "overlapping_offsets": ("overlap", overlapping_offsets),
    "gap": ("gap", gap),
    "trailing_bytes": ("trailing_bytes", trailing_bytes),
    "duplicate_keys": ("duplicate_key", duplicate_keys),
    "header_over_cap": ("header_too_large", header_over_cap),
    "header_over_cap_declared": ("header_too_large", lambda: header_over_cap(declared_only=True)),
    "header_not_object": ("header_not_object", header_not_object),
    "non_utf8_header": ("bad_header", non_utf8_header),
    "size_mismatch": ("size_mismatch", size_mismatch),
    "huge_shape": ("size_mismatch", huge_shape),
    "bad_dtype": ("bad_dtype", bad_dtype),
    "bad_metadata": ("bad_metadata", bad_metadata),
    "pickle_bomb": ("not_safetensors", pickle_bomb),
    "zip_checkpoint": ("not_safetensors", zip_checkpoint),
}
