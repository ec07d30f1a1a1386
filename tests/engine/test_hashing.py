"""Civitai hashes from one pass, checked against direct computations."""

from __future__ import annotations

import hashlib
import random
import struct
import zlib

import blake3
import pytest
import torch

from merges.engine import hostile
from merges.engine.hashing import FileHasher, autov1_of_file, hash_file
from merges.engine.safetensors_io import save_tensors


def _expected(data: bytes, tensor_data_from: int | None) -> dict[str, str | None]:
    sha = hashlib.sha256(data).hexdigest()
    return {
        "sha256": sha,
        "autov1": hashlib.sha256(data[0x100000:0x110000]).hexdigest()[:8] if len(data) >= 2 << 20 else None,
        "autov2": sha[:10],
        "autov3": hashlib.sha256(data[tensor_data_from:]).hexdigest() if tensor_data_from is not None else None,
        "crc32": f"{zlib.crc32(data):08X}",
        "blake3": blake3.blake3(data).hexdigest(),
    }


@pytest.fixture(scope="module")
def big_safetensors(tmp_path_factory) -> tuple[str, bytes]:
    path = tmp_path_factory.mktemp("h") / "big.safetensors"
    g = torch.Generator().manual_seed(0)
    save_tensors(path, {"w": torch.randn(900_000, generator=g), "b": torch.randn(10, generator=g)}, {"note": "x"})
    return str(path), path.read_bytes()


def test_all_hashes_of_a_safetensors_file(big_safetensors) -> None:
    path, data = big_safetensors
    n = struct.unpack("<Q", data[:8])[0]
    assert len(data) > 2 << 20
    got = hash_file(path)
    assert got == _expected(data, 8 + n)
    assert got["crc32"] == got["crc32"].upper() and len(got["crc32"]) == 8
    assert autov1_of_file(path) == got["autov1"]


def test_autov3_survives_metadata_edits(tmp_path) -> None:
    t = {"w": torch.arange(100, dtype=torch.float32)}
    save_tensors(tmp_path / "a.safetensors", t, {"a": "1"})
    save_tensors(tmp_path / "b.safetensors", t, {"a": "a much longer value"})
    ha, hb = hash_file(tmp_path / "a.safetensors"), hash_file(tmp_path / "b.safetensors")
    assert ha["sha256"] != hb["sha256"]
    assert ha["autov3"] == hb["autov3"]


def test_small_and_non_safetensors_files(tmp_path) -> None:
    small = tmp_path / "small.bin"
    small.write_bytes(b"hello")
    got = hash_file(small)
    assert got == _expected(b"hello", None)
    assert got["autov1"] is None
    bomb = tmp_path / "bomb.safetensors"
    bomb.write_bytes(hostile.pickle_bomb())
    assert hash_file(bomb)["autov3"] is None
    # A file with a plausible header length but a broken header is not safetensors either.
    broken = tmp_path / "broken.safetensors"
    broken.write_bytes(hostile.overlapping_offsets())
    assert hash_file(broken)["autov3"] is None


def test_any_chunking_gives_the_same_digests(big_safetensors) -> None:
    _, data = big_safetensors
    expected = hash_file(big_safetensors[0])
    rnd = random.Random(1)
    view = memoryview(data)
    for _ in range(3):
        h = FileHasher()
        i = 0
        while i < len(data):
            k = rnd.choice([1, 3, 7, 64, 5000, 300_000, 2_000_000])
            chunk = view[i : i + k]
            if rnd.random() < 0.5:
                h.update(bytes(chunk))
            else:
                h.update(bytearray(chunk))  # copied by the hasher
            i += k
        assert h.hexdigests() == expected


def test_updates_after_copying_do_not_see_later_changes() -> None:
    buf = bytearray(b"a" * (1 << 20))
    h = FileHasher()
    h.update(buf)  # not owned: copied
    buf[:] = b"b" * len(buf)
    assert h.hexdigests()["sha256"] == hashlib.sha256(b"a" * (1 << 20)).hexdigest()


def test_kinds_subset() -> None:
    h = FileHasher(("sha256",))
    h.update(b"x" * 1000)
    got = h.hexdigests()
    assert got["sha256"] == hashlib.sha256(b"x" * 1000).hexdigest()
    assert got["blake3"] is None and got["crc32"] is None and got["autov3"] is None
    with pytest.raises(ValueError):
        FileHasher(("md5",))


def test_close_stops_threads_and_blocks_results() -> None:
    h = FileHasher()
    h.update(b"x" * 10)
    h.close()
    with pytest.raises(RuntimeError):
        h.hexdigests()
    with pytest.raises(RuntimeError):
        h.update(b"y")
