"""Hostile upload kinds the engine's `merges.engine.hostile` does not generate.

Those are about the upload rather than the file format: a zip archive that is
not a checkpoint, a pickle that holds no tensors, and a code-running pickle
hidden in a checkpoint's legacy (non-zip) stream after a harmless magic number.
"""
from __future__ import annotations

import io
import pickle
import struct
import zipfile

from merges.engine.hostile import PICKLE_BOMB_MARKER


def zip_without_checkpoint() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("readme.txt", "not a model")
    return buf.getvalue()


def pickle_without_tensors() -> bytes:
    # Plain data only: pickling it builds the bytes and runs nothing.
    return pickle.dumps({"epoch": 3, "note": "no weights here"}, protocol=2)


def legacy_stream_bomb(command: str = f"touch {PICKLE_BOMB_MARKER}") -> bytes:
    """torch's legacy layout (magic number pickle, then more pickles) with os.system in the second."""
    magic = b"\x80\x02\x8a\x0a" + (0x1950A86A20F9469CFC6C).to_bytes(10, "little") + b"."
    cmd = command.encode()
    bomb = b"\x80\x02cos\nsystem\nX" + struct.pack("<I", len(cmd)) + cmd + b"\x85R."
    return magic + bomb
