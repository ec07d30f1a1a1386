"""Example images: checked before decoding, re-encoded, stripped to their generation parameters.

An uploaded image is never stored or served as sent, and its pixels are
never decoded in a web process:

1. The web process calls `image_probe`: byte size first, then the format
   from the magic bytes and the pixel dimensions from the header, checked
   before any pixel is decoded (a 100 KB PNG can inflate to gigabytes). The
   bytes go to staging as they are.
2. The ingest worker calls `image_process` (or `image_clean` for the full
   image alone): the same checks again, then a decode and a re-encode by
   Pillow into a fresh file of the same format, plus two WebP thumbnails
   and a tiny one for blurred placeholders.

The only thing carried over is the generation parameters text that
A1111-style tools write (a PNG `parameters` chunk, or the EXIF UserComment of
a JPEG/WebP), or one written from a ComfyUI `prompt` graph (see
`image_meta`); GPS position, camera data, ICC profiles, ComfyUI workflows and
anything appended after the image data are dropped.
"""
from __future__ import annotations

import hashlib
import io
from struct import error as struct_error
import warnings
from dataclasses import dataclass, field
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

from hub.files.image_meta import generation_meta

MAX_IMAGE_BYTES = 20 * 1024 * 1024
MAX_IMAGE_PIXELS = 50_000_000
MAX_IMAGE_SIDE = 16_384
MAX_PARAMETERS_CHARS = 64 * 1024

CONTENT_TYPES = {"PNG": "image/png", "JPEG": "image/jpeg", "WEBP": "image/webp"}
EXTENSIONS = {"PNG": "png", "JPEG": "jpg", "WEBP": "webp"}
_EXIF_IFD = 0x8769
_USER_COMMENT = 0x9286


class ImageRejected(ValueError):
    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class CleanImage:
    data: bytes
    format: str
    content_type: str
    width: int
    height: int
    parameters: str
    meta: dict = field(default_factory=dict)

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


def sniff_image(head: bytes) -> str | None:
    if head.startswith(b"\x89PNG\r\n\x1a\n"):
        return "PNG"
    if head.startswith(b"\xff\xd8\xff"):
        return "JPEG"
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP":
        return "WEBP"
    return None


def _decode_user_comment(raw) -> str:
    if isinstance(raw, str):
        return raw
    if not isinstance(raw, (bytes, bytearray)):
        return ""
    prefix, body = bytes(raw[:8]), bytes(raw[8:])
    if prefix == b"UNICODE\x00":
        # piexif (used by A1111) writes UTF-16 big-endian; some tools write little-endian.
        for codec in ("utf-16-be", "utf-16-le"):
            try:
                text = body.decode(codec)
            except UnicodeDecodeError:
                continue
            if text.isprintable() or "\n" in text:
                return text
        return ""
    if prefix.startswith(b"ASCII"):
        return body.decode("ascii", errors="replace")
    return bytes(raw).decode("utf-8", errors="replace")


def _parameters(im: Image.Image, fmt: str) -> tuple[str, dict]:
    text = ""
    comfy = ""
    if fmt == "PNG":
        value = im.info.get("parameters")
        text = value if isinstance(value, str) else ""
        value = im.info.get("prompt")
        comfy = value if isinstance(value, str) else ""
    else:
        try:
            text = _decode_user_comment(im.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT))
        except Exception:  # a malformed EXIF block just means no parameters
            text = ""
        if not text and isinstance(im.info.get("comment"), (bytes, str)):
            comment = im.info["comment"]
            text = comment.decode("utf-8", errors="replace") if isinstance(comment, bytes) else comment
    # Keep printable text and line breaks only; the page shows it escaped anyway.
    text = "".join(ch for ch in text[:MAX_PARAMETERS_CHARS] if ch in "\n\t" or ch.isprintable()).strip()
    return generation_meta(parameters=text, comfy_prompt=comfy)


@dataclass(frozen=True)
class ImageHeader:
    format: str
    content_type: str
    width: int
    height: int

    @property
    def extension(self) -> str:
        return EXTENSIONS[self.format]


@dataclass(frozen=True)
class Thumbnail:
    data: bytes
    width: int
    height: int

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.data).hexdigest()


@dataclass(frozen=True)
class ProcessedImage:
    full: CleanImage
    thumb: Thumbnail  # card size
    large: Thumbnail  # lightbox size
    blur: Thumbnail  # a few pixels across: all a viewer gets of an image above their level


THUMB_SIDE = 480
LARGE_SIDE = 1600
BLUR_SIDE = 24


def _check_size(size: int, max_bytes: int) -> None:
    if size > max_bytes:
        raise ImageRejected("image_too_large", f"the image is {size} bytes; the limit is {max_bytes} bytes")
    if size <= 0:
        raise ImageRejected("image_empty", "the image is empty")


def _check_dimensions(width: int, height: int, max_pixels: int) -> None:
    if width <= 0 or height <= 0 or max(width, height) > MAX_IMAGE_SIDE or width * height > max_pixels:
        raise ImageRejected(
            "image_dimensions",
            f"the image is {width}×{height} pixels; the limit is {max_pixels} pixels and {MAX_IMAGE_SIDE} on a side",
        )


class _Unclosable:
    """The caller's file for Pillow, which closes what it opened: the caller still needs it afterwards."""

    def __init__(self, f: BinaryIO):
        self._f = f

    def read(self, *args):
        return self._f.read(*args)

    def seek(self, *args):
        return self._f.seek(*args)

    def tell(self):
        return self._f.tell()

    def close(self):
        pass


class _Opened:
    """`Image.open` with our checks in front and Pillow's errors turned into ImageRejected."""

    def __init__(self, f: BinaryIO, *, size: int, max_bytes: int, max_pixels: int):
        _check_size(size, max_bytes)
        head = f.read(16)
        self.format = sniff_image(head)
        if self.format is None:
            raise ImageRejected("image_type", "only PNG, JPEG and WebP images are accepted")
        f.seek(0)
        self.f, self.max_pixels = f, max_pixels
        self._warnings = warnings.catch_warnings()
        self.im: Image.Image | None = None

    def __enter__(self) -> "_Opened":
        self._warnings.__enter__()
        # Pillow warns (instead of failing) on large images; our own limit is stricter and checked first.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            self.im = Image.open(_Unclosable(self.f), formats=[self.format])
            _check_dimensions(*self.im.size, self.max_pixels)
        except BaseException as exc:
            self.__exit__(type(exc), exc, exc.__traceback__)
            raise _translated(exc) from exc
        return self

    def __exit__(self, *exc_info) -> None:
        if self.im is not None:
            self.im.close()
        self._warnings.__exit__(*exc_info)


def _translated(exc: BaseException) -> BaseException:
    if isinstance(exc, ImageRejected):
        return exc
    if isinstance(exc, (Image.DecompressionBombError, Image.DecompressionBombWarning)):
        # Pillow's own guard, which fires while reading the header for absurd sizes.
        return ImageRejected("image_dimensions", f"the image is too large to decode: {exc}")
    if isinstance(exc, (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, struct_error)):
        return ImageRejected("image_invalid", f"the image could not be decoded: {exc}")
    return exc


def image_probe(f: BinaryIO, *, size: int, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> ImageHeader:
    """Format and declared dimensions, read from the header only: what a web process may do."""
    with _Opened(f, size=size, max_bytes=max_bytes, max_pixels=max_pixels) as opened:
        width, height = opened.im.size
        return ImageHeader(format=opened.format, content_type=CONTENT_TYPES[opened.format], width=width, height=height)


def _decoded(opened: _Opened) -> tuple[Image.Image, str, dict]:
    im = opened.im
    parameters, meta = _parameters(im, opened.format)
    im.seek(0)  # animated files: the first frame only
    im.load()
    # In place: a transposed copy would be another full-size image in memory.
    ImageOps.exif_transpose(im, in_place=True)
    return im, parameters, meta


def image_clean(f: BinaryIO, *, size: int, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> CleanImage:
    """Validate, decode and re-encode one image; raises ImageRejected with a reason people can act on."""
    with _Opened(f, size=size, max_bytes=max_bytes, max_pixels=max_pixels) as opened:
        try:
            pixels, parameters, meta = _decoded(opened)
            return _encode(pixels, opened.format, parameters, meta)
        except BaseException as exc:
            raise _translated(exc) from exc


def image_process(f: BinaryIO, *, size: int, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> ProcessedImage:
    """`image_clean` plus the WebP thumbnails, from one decode. Worker-side: this is where memory goes."""
    with _Opened(f, size=size, max_bytes=max_bytes, max_pixels=max_pixels) as opened:
        try:
            pixels, parameters, meta = _decoded(opened)
            if "size" not in meta:
                meta = {**meta, "size": f"{pixels.width}x{pixels.height}"}
            full = _encode(pixels, opened.format, parameters, meta)
            flat = pixels
            if flat.mode not in ("RGB", "RGBA"):
                flat = flat.convert("RGBA" if "A" in flat.getbands() or "transparency" in flat.info else "RGB")
            # Each size from the one before: only the first resize reads the full image.
            large_im = _fit(flat, LARGE_SIDE)
            del flat, pixels
            thumb_im = _fit(large_im, THUMB_SIDE)
            large = _webp(large_im, quality=85)
            thumb = _webp(thumb_im, quality=80)
            blur = _webp(_fit(thumb_im, BLUR_SIDE), quality=60)
            return ProcessedImage(full=full, thumb=thumb, large=large, blur=blur)
        except BaseException as exc:
            raise _translated(exc) from exc


def _fit(im: Image.Image, side: int) -> Image.Image:
    """`im` scaled to fit `side` (no copy when it already fits): resize returns a new image, so no full copy."""
    scale = side / max(im.size)
    if scale >= 1:
        return im
    size = (max(1, round(im.width * scale)), max(1, round(im.height * scale)))
    return im.resize(size, Image.Resampling.LANCZOS, reducing_gap=3.0)


def _webp(im: Image.Image, *, quality: int) -> Thumbnail:
    out = io.BytesIO()
    # No exif/icc arguments: the thumbnails carry pixels only.
    im.save(out, "WEBP", quality=quality, method=4)
    return Thumbnail(data=out.getvalue(), width=im.width, height=im.height)


def _encode(im: Image.Image, fmt: str, parameters: str, meta: dict | None = None) -> CleanImage:
    out = io.BytesIO()
    if fmt == "PNG":
        if im.mode not in ("RGB", "RGBA", "L", "LA"):
            im = im.convert("RGBA" if "A" in im.getbands() or "transparency" in im.info else "RGB")
        info = PngInfo()
        if parameters:
            info.add_itxt("parameters", parameters)
        im.save(out, "PNG", pnginfo=info)
    else:
        exif = Image.Exif()
        if parameters:
            exif.get_ifd(_EXIF_IFD)[_USER_COMMENT] = b"UNICODE\x00" + parameters.encode("utf-16-be")
        if fmt == "JPEG":
            im = im.convert("RGB") if im.mode != "RGB" else im
            im.save(out, "JPEG", quality=92, exif=exif.tobytes() if parameters else b"")
        else:
            im = im.convert("RGBA" if "A" in im.getbands() else "RGB")
            im.save(out, "WEBP", quality=92, exif=exif.tobytes() if parameters else b"")
    return CleanImage(
        data=out.getvalue(), format=fmt, content_type=CONTENT_TYPES[fmt], width=im.width, height=im.height,
        parameters=parameters, meta=dict(meta or {}),
    )
