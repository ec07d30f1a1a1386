"""Strict safetensors reading and streaming writing.

The reference parser (``safetensors`` itself) accepts a few things a hub must
not: duplicate JSON keys (which entry wins depends on the parser, so two tools
can see two different models in one file), a header that does not start with
``{``, and headers of any size. ``read_header`` rejects those and checks that
the tensors tile the data buffer exactly, so a file that passes can be read
tensor by tensor from its offsets with no surprises.

Nothing here ever unpickles: pickle and zip checkpoints are recognised by
their magic bytes and refused. Header validation needs no torch (the web
process validates uploads); only reading and writing tensors imports it.
"""

from __future__ import annotations

import functools
import json
import math
import os
import struct
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, BinaryIO, Callable, Iterable, Mapping, Sequence

if TYPE_CHECKING:
    import torch

__all__ = [
    "DTYPE_SIZES",
    "FLOAT_DTYPES",
    "HEADER_CAP",
    "Header",
    "SafetensorsError",
    "SafetensorsReader",
    "SafetensorsWriter",
    "TensorInfo",
    "TensorSpec",
    "dtype_name",
    "read_header",
    "read_header_path",
    "torch_dtype",
    "sniff_pickle_or_zip",
]

HEADER_CAP = 16 * 1024 * 1024

# safetensors dtype name -> element size in bytes
DTYPE_SIZES: dict[str, int] = {
    "BOOL": 1,
    "U8": 1,
    "I8": 1,
    "F8_E4M3": 1,
    "F8_E5M2": 1,
    "I16": 2,
    "U16": 2,
    "F16": 2,
    "BF16": 2,
    "I32": 4,
    "U32": 4,
    "F32": 4,
    "I64": 8,
    "U64": 8,
    "F64": 8,
}
FLOAT_DTYPES = frozenset({"F8_E4M3", "F8_E5M2", "F16", "BF16", "F32", "F64"})
_TORCH_NAMES = {
    "BOOL": "bool",
    "U8": "uint8",
    "I8": "int8",
    "F8_E4M3": "float8_e4m3fn",
    "F8_E5M2": "float8_e5m2",
    "I16": "int16",
    "U16": "uint16",
    "F16": "float16",
    "BF16": "bfloat16",
    "I32": "int32",
    "U32": "uint32",
    "F32": "float32",
    "I64": "int64",
    "U64": "uint64",
    "F64": "float64",
}

_PICKLE_PROTOCOLS = (2, 3, 4, 5)


class SafetensorsError(ValueError):
    """A file that is not a well-formed safetensors file.

    ``code`` is short and stable (for APIs and tests); ``str()`` is for people.
    """

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass(frozen=True)
class TensorInfo:
    dtype: str
    shape: tuple[int, ...]
    begin: int  # offsets relative to the start of the data buffer
    end: int

    @property
    def numel(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        return self.end - self.begin

    @property
    def itemsize(self) -> int:
        return DTYPE_SIZES[self.dtype]

    @property
    def is_float(self) -> bool:
        return self.dtype in FLOAT_DTYPES

    @property
    def torch_dtype(self) -> "torch.dtype":
        return torch_dtype(self.dtype)


@dataclass
class Header:
    header_len: int
    data_start: int
    # Ordered by data offset, i.e. the order the bytes appear in the file.
    tensors: dict[str, TensorInfo]
    metadata: dict[str, str] = field(default_factory=dict)
    file_size: int = 0

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {k: t.shape for k, t in self.tensors.items()}


@functools.cache
def torch_dtype(name: str) -> "torch.dtype":
    import torch

    return getattr(torch, _TORCH_NAMES[name])


def dtype_name(dtype: "torch.dtype") -> str:
    for name, attr in _TORCH_NAMES.items():
        if str(dtype) == f"torch.{attr}":
            return name
    raise SafetensorsError("bad_dtype", f"dtype {dtype} cannot be stored in safetensors")


def sniff_pickle_or_zip(prefix: bytes) -> str | None:
    """Name the container if ``prefix`` starts like a pickle or zip checkpoint."""
    if prefix[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        return "zip"
    if len(prefix) >= 2 and prefix[0] == 0x80 and prefix[1] in _PICKLE_PROTOCOLS:
        return "pickle"
    return None


def _read_exact(f: BinaryIO, n: int) -> bytes:
    """Read ``n`` bytes; short reads from sockets or pipes are retried."""
    parts: list[bytes] = []
    left = n
    while left > 0:
        chunk = f.read(left)
        if not chunk:
            break
        parts.append(chunk)
        left -= len(chunk)
    return b"".join(parts)


def _no_duplicates(pairs: list[tuple[str, object]]) -> dict[str, object]:
    out: dict[str, object] = {}
    for key, value in pairs:
        if key in out:
            raise SafetensorsError("duplicate_key", f"header has the key {key!r} more than once")
        out[key] = value
    return out


def _reject_constant(name: str) -> float:
    raise SafetensorsError("bad_header", f"header JSON contains {name}, which JSON does not allow")


def _is_uint(v: object) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0


def _parse_entry(name: str, entry: object) -> TensorInfo:
    if not isinstance(entry, dict):
        raise SafetensorsError("bad_entry", f"tensor {name!r}: entry is not an object")
    extra = set(entry) - {"dtype", "shape", "data_offsets"}
    missing = {"dtype", "shape", "data_offsets"} - set(entry)
    if missing or extra:
        what = f"missing {sorted(missing)}" if missing else f"unexpected {sorted(extra)}"
        raise SafetensorsError("bad_entry", f"tensor {name!r}: {what}")
    dtype = entry["dtype"]
    if not isinstance(dtype, str) or dtype not in DTYPE_SIZES:
        raise SafetensorsError("bad_dtype", f"tensor {name!r}: unsupported dtype {dtype!r}")
    shape = entry["shape"]
    if not isinstance(shape, list) or not all(_is_uint(d) for d in shape):
        raise SafetensorsError("bad_entry", f"tensor {name!r}: shape must be a list of non-negative integers")
    offsets = entry["data_offsets"]
    if (
        not isinstance(offsets, list)
        or len(offsets) != 2
        or not all(_is_uint(o) for o in offsets)
        or offsets[0] > offsets[1]
    ):
        raise SafetensorsError("bad_entry", f"tensor {name!r}: data_offsets must be [begin, end] with begin <= end")
    info = TensorInfo(dtype, tuple(shape), offsets[0], offsets[1])
    expected = info.numel * info.itemsize
    if info.nbytes != expected:
        raise SafetensorsError(
            "size_mismatch",
            f"tensor {name!r}: {dtype} {list(shape)} needs {expected} bytes, offsets span {info.nbytes}",
        )
    return info


def parse_header_bytes(raw: bytes, file_size: int) -> Header:
    """Validate a complete prefix (8-byte length + JSON) against ``file_size``."""
    n = struct.unpack("<Q", raw[:8])[0]
    text_bytes = raw[8 : 8 + n]
    if text_bytes[:1] != b"{":
        raise SafetensorsError("header_not_object", "header does not start with '{'")
    try:
        text = text_bytes.decode("utf-8")
    except UnicodeDecodeError as e:
        raise SafetensorsError("bad_header", f"header is not valid UTF-8 ({e.reason} at byte {e.start})") from None
    try:
        doc = json.loads(text, object_pairs_hook=_no_duplicates, parse_constant=_reject_constant)
    except json.JSONDecodeError as e:
        raise SafetensorsError("bad_header", f"header is not valid JSON: {e.msg} at char {e.pos}") from None
    if not isinstance(doc, dict):
        raise SafetensorsError("header_not_object", "header JSON is not an object")

    metadata: dict[str, str] = {}
    if "__metadata__" in doc:
        meta = doc.pop("__metadata__")
        if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
            raise SafetensorsError("bad_metadata", "__metadata__ must map strings to strings")
        metadata = meta

    infos = {name: _parse_entry(name, entry) for name, entry in doc.items()}

    data_start = 8 + n
    data_len = file_size - data_start
    ordered = sorted(infos.items(), key=lambda kv: (kv[1].begin, kv[1].end))
    pos = 0
    for name, info in ordered:
        if info.begin < pos:
            raise SafetensorsError("overlap", f"tensor {name!r} starts at {info.begin}, inside the previous tensor (ends at {pos})")
        if info.begin > pos:
            raise SafetensorsError("gap", f"{info.begin - pos} unused bytes before tensor {name!r}")
        pos = info.end
    if pos > data_len:
        raise SafetensorsError(
            "truncated", f"file is truncated: tensors need {pos} data bytes, the file has {max(data_len, 0)}"
        )
    if pos < data_len:
        raise SafetensorsError("trailing_bytes", f"{data_len - pos} bytes after the last tensor")
    return Header(
        header_len=n,
        data_start=data_start,
        tensors=dict(ordered),
        metadata=metadata,
        file_size=file_size,
    )


def read_header(f: BinaryIO, file_size: int) -> Header:
    """Read and validate the header of a safetensors stream.

    ``f`` must be positioned at the start of the file; only the header is
    read. ``file_size`` is the size of the whole file (or object), so the
    offsets can be checked against it without reading the tensors.
    """
    head = _read_exact(f, 8)
    if len(head) < 8:
        kind = sniff_pickle_or_zip(head)
        if kind:
            raise _not_safetensors(kind)
        raise SafetensorsError("truncated", f"file is {len(head)} bytes, too short for a safetensors header")
    n = struct.unpack("<Q", head)[0]
    if n < 2 and not sniff_pickle_or_zip(head):
        raise SafetensorsError("header_not_object", f"header declares {n} bytes, too short for a JSON object")
    # A real safetensors header is small and the JSON follows immediately;
    # only look at magic bytes when that is not the case, because a valid
    # header length can itself begin with 0x80 0x02.
    first = _read_exact(f, 1) if n <= HEADER_CAP else b""
    if first != b"{":
        kind = sniff_pickle_or_zip(head)
        if kind:
            raise _not_safetensors(kind)
        if n > HEADER_CAP:
            raise SafetensorsError("header_too_large", f"header declares {n} bytes, the limit is {HEADER_CAP}")
        if 8 + n > file_size:
            raise SafetensorsError("truncated", f"header declares {n} bytes, the file has {max(file_size - 8, 0)} after the length")
        raise SafetensorsError("header_not_object", "header does not start with '{'")
    if 8 + n > file_size:
        raise SafetensorsError("truncated", f"header declares {n} bytes, the file has {max(file_size - 8, 0)} after the length")
    rest = _read_exact(f, n - 1)
    if len(rest) < n - 1:
        raise SafetensorsError("truncated", "file ends inside the header")
    return parse_header_bytes(head + first + rest, file_size)


def _not_safetensors(kind: str) -> SafetensorsError:
    what = "a pickle checkpoint (.ckpt/.pt/.bin)" if kind == "pickle" else "a zip (PyTorch) checkpoint"
    return SafetensorsError(
        "not_safetensors",
        f"this is not a safetensors file: it looks like {what}, which can run code when loaded",
    )


def read_header_path(path: str | os.PathLike[str]) -> Header:
    with open(path, "rb") as f:
        return read_header(f, os.fstat(f.fileno()).st_size)


class SafetensorsReader:
    """Random access to the tensors of a validated safetensors file.

    Reads use ``os.preadv`` so several threads may read one reader at once,
    and land in caller-provided buffers so memory stays flat.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = os.fspath(path)
        self._fd = -1
        self._fd = os.open(self.path, os.O_RDONLY)
        try:
            with os.fdopen(os.dup(self._fd), "rb") as f:
                self.header = read_header(f, os.fstat(self._fd).st_size)
        except BaseException:
            # Forget the number too: __del__ must not close a reused descriptor.
            fd, self._fd = self._fd, -1
            os.close(fd)
            raise

    @property
    def tensors(self) -> dict[str, TensorInfo]:
        return self.header.tensors

    @property
    def metadata(self) -> dict[str, str]:
        return self.header.metadata

    def keys(self) -> list[str]:
        return list(self.header.tensors)

    def read_bytes_into(self, name: str, buffer: memoryview, start: int = 0, nbytes: int | None = None) -> None:
        """Fill ``buffer`` with ``nbytes`` bytes of tensor ``name`` from byte ``start``."""
        info = self.header.tensors[name]
        if nbytes is None:
            nbytes = info.nbytes - start
        if start < 0 or start + nbytes > info.nbytes:
            raise ValueError(f"{name}: byte range {start}+{nbytes} outside the tensor ({info.nbytes} bytes)")
        view = buffer[:nbytes]
        pos = self.header.data_start + info.begin + start
        done = 0
        while done < nbytes:
            got = os.preadv(self._fd, [view[done:]], pos + done)
            if got == 0:
                raise SafetensorsError("truncated", f"{self.path}: file ended while reading tensor {name!r}")
            done += got

    def read_into(self, name: str, buffer: "torch.Tensor", start: int = 0, count: int | None = None) -> "torch.Tensor":
        """Read elements ``[start, start+count)`` of the flattened tensor.

        ``buffer`` is a contiguous uint8 tensor at least that many bytes long;
        the result is a view of it (1-D when a range is asked for, the real
        shape for a whole tensor), valid until the buffer is reused.
        """
        info = self.header.tensors[name]
        whole = count is None and start == 0
        if count is None:
            count = info.numel - start
        size = info.itemsize
        nbytes = count * size
        import torch

        if buffer.dtype != torch.uint8 or not buffer.is_contiguous() or buffer.numel() < nbytes:
            raise ValueError("buffer must be a contiguous uint8 tensor large enough for the range")
        if nbytes:
            self.read_bytes_into(name, memoryview(buffer.numpy()).cast("B"), start * size, nbytes)
        flat = buffer[:nbytes].view(info.torch_dtype)
        return flat.view(info.shape) if whole else flat

    def read(self, name: str) -> "torch.Tensor":
        """Read a whole tensor into fresh memory (for small tensors, e.g. LoRA weights)."""
        import torch

        info = self.header.tensors[name]
        return self.read_into(name, torch.empty(info.nbytes, dtype=torch.uint8))

    def expect_sequential(self) -> None:
        """Tell the kernel the data will be read front to back: larger read-ahead on a cold cache."""
        advise = getattr(os, "posix_fadvise", None)
        if advise is not None and self._fd >= 0:
            try:
                advise(self._fd, 0, 0, os.POSIX_FADV_SEQUENTIAL)
            except OSError:  # a pipe or a file system without the hint
                pass

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> "SafetensorsReader":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass


@dataclass(frozen=True)
class TensorSpec:
    name: str
    dtype: str  # safetensors dtype name
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        return math.prod(self.shape) * DTYPE_SIZES[self.dtype]


def build_header(specs: Iterable[TensorSpec], metadata: Mapping[str, str] | None = None) -> tuple[bytes, dict[str, TensorInfo]]:
    """Header bytes (length prefix included) with tensors laid out in sorted name order."""
    ordered = sorted(specs, key=lambda s: s.name)
    doc: dict[str, object] = {}
    if metadata:
        for k, v in metadata.items():
            if not isinstance(k, str) or not isinstance(v, str):
                raise SafetensorsError("bad_metadata", "__metadata__ must map strings to strings")
        doc["__metadata__"] = dict(sorted(metadata.items()))
    infos: dict[str, TensorInfo] = {}
    pos = 0
    seen: set[str] = set()
    for s in ordered:
        if s.name in seen or s.name == "__metadata__":
            raise SafetensorsError("duplicate_key", f"tensor name {s.name!r} used twice or reserved")
        seen.add(s.name)
        if s.dtype not in DTYPE_SIZES:
            raise SafetensorsError("bad_dtype", f"unsupported dtype {s.dtype!r}")
        end = pos + s.nbytes
        infos[s.name] = TensorInfo(s.dtype, tuple(s.shape), pos, end)
        doc[s.name] = {"dtype": s.dtype, "shape": list(s.shape), "data_offsets": [pos, end]}
        pos = end
    text = json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    # Pad with spaces so the data starts 8-byte aligned, as safetensors does.
    text += b" " * (-(8 + len(text)) % 8)
    return struct.pack("<Q", len(text)) + text, infos


def write_all(fd: int, view: memoryview) -> None:
    """os.write until every byte of ``view`` is out (a write may take fewer)."""
    done = 0
    while done < len(view):
        done += os.write(fd, view[done:])


class SafetensorsWriter:
    """Writes a safetensors file whose header is known before any data.

    Tensors must then be written in sorted name order, whole or in pieces;
    ``close`` checks that every byte promised by the header was written.
    ``sink`` is called with every chunk written (header included), e.g. to
    hash the output while it is produced. ``raw_write`` replaces the plain
    ``os.write`` loop (see ``direct_io``).
    """

    def __init__(
        self,
        fd: int,
        specs: Sequence[TensorSpec],
        metadata: Mapping[str, str] | None = None,
        sink: Callable[[memoryview], None] | None = None,
        raw_write: Callable[[memoryview], None] | None = None,
    ) -> None:
        self._fd = fd
        self._sink = sink
        self._raw_write = raw_write
        header, self.infos = build_header(specs, metadata)
        self._order = list(self.infos)
        self._index = 0
        self._written = 0  # bytes of the current tensor
        self.header_bytes = len(header)
        self.data_bytes = sum(i.nbytes for i in self.infos.values())
        self._write_raw(memoryview(header))

    def _write_raw(self, view: memoryview) -> None:
        if self._raw_write is not None:
            self._raw_write(view)
        else:
            write_all(self._fd, view)
        if self._sink is not None:
            self._sink(view)

    @property
    def current(self) -> str | None:
        self._skip_empty()
        return self._order[self._index] if self._index < len(self._order) else None

    def _skip_empty(self) -> None:
        while self._index < len(self._order) and self.infos[self._order[self._index]].nbytes == 0:
            self._index += 1

    def write(self, name: str, data: "torch.Tensor") -> None:
        """Append (part of) tensor ``name``; ``data`` must already have its dtype.

        ``sink`` receives a view of ``data``'s memory and may keep it: callers
        must not modify ``data`` afterwards.
        """
        import torch

        if name in self.infos and self.infos[name].nbytes == 0 and data.numel() == 0:
            return  # empty tensors take no bytes: nothing to write, any time
        self._skip_empty()
        if self._index >= len(self._order) or self._order[self._index] != name:
            expected = self._order[self._index] if self._index < len(self._order) else None
            raise ValueError(f"tensors must be written in header order: got {name!r}, expected {expected!r}")
        info = self.infos[name]
        if data.dtype != info.torch_dtype:
            raise ValueError(f"{name}: got {data.dtype}, header says {info.dtype}")
        raw = data.detach().contiguous().reshape(-1).view(torch.uint8)
        if self._written + raw.numel() > info.nbytes:
            raise ValueError(f"{name}: more data than the header's {info.nbytes} bytes")
        if raw.device.type != "cpu":
            raw = raw.cpu()
        self._write_raw(memoryview(raw.numpy()).cast("B"))
        self._written += raw.numel()
        if self._written == info.nbytes:
            self._index += 1
            self._written = 0

    def write_bytes(self, name: str, view: memoryview) -> None:
        """Append raw bytes of tensor ``name`` (a byte-for-byte copy)."""
        self._skip_empty()
        if self._index >= len(self._order) or self._order[self._index] != name:
            raise ValueError(f"tensors must be written in header order: got {name!r}")
        info = self.infos[name]
        if self._written + len(view) > info.nbytes:
            raise ValueError(f"{name}: more data than the header's {info.nbytes} bytes")
        self._write_raw(view)
        self._written += len(view)
        if self._written == info.nbytes:
            self._index += 1
            self._written = 0

    def close(self) -> None:
        self._skip_empty()
        if self._index != len(self._order):
            raise ValueError(f"output incomplete: tensor {self._order[self._index]!r} not fully written")


def save_tensors(path: str | os.PathLike[str], tensors: Mapping[str, "torch.Tensor"], metadata: Mapping[str, str] | None = None) -> None:
    """Small helper for tests and spools: write a dict of tensors in one go."""
    specs = [TensorSpec(k, dtype_name(t.dtype), tuple(t.shape)) for k, t in tensors.items()]
    fd = os.open(os.fspath(path), os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        w = SafetensorsWriter(fd, specs, metadata)
        for name in sorted(tensors):
            w.write(name, tensors[name])
        w.close()
    finally:
        os.close(fd)
