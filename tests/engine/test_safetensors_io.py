"""Strict safetensors reading, streaming writing, interop with the reference library."""

from __future__ import annotations

import io
import json
import os
import struct

import pytest
import torch
from safetensors.torch import load_file, save_file

from merges.engine import hostile
from merges.engine.safetensors_io import (
    HEADER_CAP,
    SafetensorsError,
    SafetensorsReader,
    SafetensorsWriter,
    TensorSpec,
    read_header,
    read_header_path,
    save_tensors,
)


def _header(data: bytes):
    return read_header(io.BytesIO(data), len(data))


def _sample() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "z.weight": torch.randn(3, 5, generator=g).half(),
        "a.bias": torch.randn(7, generator=g),
        "m.scalar": torch.tensor(2.5, dtype=torch.bfloat16),
        "ids": torch.arange(11, dtype=torch.int64).reshape(1, 11),
        "flags": torch.tensor([True, False, True]),
        "empty": torch.zeros(0, 4),
    }


@pytest.mark.parametrize("case", sorted(hostile.SAFETENSORS_CASES))
def test_every_hostile_file_is_rejected_with_its_code(case: str) -> None:
    code, make = hostile.SAFETENSORS_CASES[case]
    with pytest.raises(SafetensorsError) as info:
        _header(make())
    assert info.value.code == code
    assert str(info.value)  # a human message too


def test_valid_fixture_passes() -> None:
    h = _header(hostile.valid())
    assert list(h.tensors) == ["a", "b"]
    assert h.metadata == {"format": "pt"}
    assert h.tensors["b"].begin == 16 and h.tensors["b"].end == 24


def test_pickle_message_names_the_danger() -> None:
    with pytest.raises(SafetensorsError) as info:
        _header(hostile.pickle_bomb())
    assert "pickle" in str(info.value)
    assert not os.path.exists(hostile.PICKLE_BOMB_MARKER)


def test_small_length_that_starts_like_a_pickle_is_still_safetensors() -> None:
    # 0x0280 = 640: a valid length whose first bytes read "\x80\x02".
    body = json.dumps({"a": {"dtype": "U8", "shape": [1], "data_offsets": [0, 1]}}).encode()
    body += b" " * (0x280 - len(body))
    data = struct.pack("<Q", len(body)) + body + b"\x07"
    assert data[:2] == b"\x80\x02"
    assert _header(data).tensors["a"].nbytes == 1


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "truncated"),
        (b"\x05\x00", "truncated"),
        (struct.pack("<Q", 0), "header_not_object"),
        (struct.pack("<Q", 2) + b"[]", "header_not_object"),
        (struct.pack("<Q", 4) + b'"x" ', "header_not_object"),
        (struct.pack("<Q", 3) + b"{}x", "bad_header"),
        (struct.pack("<Q", 12) + b'{"a": NaN } ', "bad_header"),
        (struct.pack("<Q", 2) + b"{}" + b"junk", "trailing_bytes"),
    ],
)
def test_malformed_prefixes(data: bytes, code: str) -> None:
    with pytest.raises(SafetensorsError) as info:
        _header(data)
    assert info.value.code == code


def test_duplicate_keys_inside_an_entry_are_rejected() -> None:
    text = b'{"a":{"dtype":"F32","dtype":"F16","shape":[1],"data_offsets":[0,4]}}'
    with pytest.raises(SafetensorsError) as info:
        _header(struct.pack("<Q", len(text)) + text + bytes(4))
    assert info.value.code == "duplicate_key"


def test_entry_fields_are_checked() -> None:
    for entry, code in [
        ({"dtype": "F32", "shape": [1], "data_offsets": [4, 0]}, "bad_entry"),
        ({"dtype": "F32", "shape": [-1], "data_offsets": [0, 4]}, "bad_entry"),
        ({"dtype": "F32", "shape": [True], "data_offsets": [0, 4]}, "bad_entry"),
        ({"dtype": "F32", "shape": [1], "data_offsets": [0, 4], "extra": 1}, "bad_entry"),
        ({"dtype": "F32", "shape": [1]}, "bad_entry"),
    ]:
        with pytest.raises(SafetensorsError) as info:
            _header(hostile.safetensors_bytes({"a": entry}, bytes(4)))
        assert info.value.code == code, entry


def test_header_cap_is_16_mib() -> None:
    assert HEADER_CAP == 16 * 1024 * 1024
    body = json.dumps({"a": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}).encode()
    body += b" " * (HEADER_CAP - len(body))
    assert _header(struct.pack("<Q", HEADER_CAP) + body + bytes(4)).header_len == HEADER_CAP


def test_writer_output_loads_in_the_reference_library(tmp_path) -> None:
    tensors = _sample()
    path = tmp_path / "ours.safetensors"
    save_tensors(path, tensors, {"k": "v"})
    theirs = load_file(str(path))
    assert set(theirs) == set(tensors)
    for k, t in tensors.items():
        assert torch.equal(theirs[k], t), k
    h = read_header_path(path)
    assert h.metadata == {"k": "v"}
    assert h.data_start % 8 == 0
    # Data laid out in sorted name order.
    assert list(h.tensors) == sorted(tensors)


def test_reader_reads_reference_files_whole_and_in_slices(tmp_path) -> None:
    tensors = _sample()
    path = tmp_path / "ref.safetensors"
    save_file(tensors, str(path))
    buf = torch.empty(1 << 12, dtype=torch.uint8)
    with SafetensorsReader(path) as r:
        for k, t in tensors.items():
            got = r.read(k)
            assert got.dtype == t.dtype and torch.equal(got, t), k
        w = tensors["z.weight"].reshape(-1)
        part = r.read_into("z.weight", buf, start=4, count=6)
        assert torch.equal(part, w[4:10])
        assert torch.equal(r.read_into("z.weight", buf), tensors["z.weight"])


def test_reader_notices_a_file_truncated_after_open(tmp_path) -> None:
    path = tmp_path / "t.safetensors"
    save_tensors(path, {"a": torch.ones(1000)})
    r = SafetensorsReader(path)
    os.truncate(path, os.path.getsize(path) - 100)
    with pytest.raises(SafetensorsError) as info:
        r.read("a")
    assert info.value.code == "truncated"
    r.close()


def test_writer_enforces_order_dtype_and_completeness(tmp_path) -> None:
    specs = [TensorSpec("b", "F32", (2,)), TensorSpec("a", "F16", (3,))]
    fd = os.open(tmp_path / "w.safetensors", os.O_WRONLY | os.O_CREAT)
    try:
        w = SafetensorsWriter(fd, specs)
        with pytest.raises(ValueError, match="order"):
            w.write("b", torch.zeros(2))
        with pytest.raises(ValueError, match="header says"):
            w.write("a", torch.zeros(3))
        w.write("a", torch.zeros(1, dtype=torch.float16))  # in pieces
        w.write("a", torch.zeros(2, dtype=torch.float16))
        with pytest.raises(ValueError, match="incomplete"):
            w.close()
        w.write("b", torch.zeros(2))
        with pytest.raises(ValueError, match="order"):
            w.write("b", torch.zeros(1))
        w.close()
    finally:
        os.close(fd)
    assert torch.equal(load_file(str(tmp_path / "w.safetensors"))["b"], torch.zeros(2))


def test_writer_refuses_non_string_metadata(tmp_path) -> None:
    fd = os.open(tmp_path / "m.safetensors", os.O_WRONLY | os.O_CREAT)
    try:
        with pytest.raises(SafetensorsError):
            SafetensorsWriter(fd, [], {"n": 3})  # type: ignore[dict-item]
    finally:
        os.close(fd)
