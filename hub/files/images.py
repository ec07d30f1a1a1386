"""Example images: checked before decoding, re-encoded, stripped to their generation parameters.

An uploaded image is never stored or served as sent. Its byte size is
checked before anything reads it, its pixel dimensions are read from the
header and checked before any pixel is decoded (a 100 KB PNG can inflate to
gigabytes), and it is then decoded and re-encoded by Pillow into a fresh file
of the same format. The only thing carried over is the generation
parameters text that A1111-style tools write (a PNG `parameters` chunk, or
the EXIF UserComment of a JPEG/WebP); GPS position, camera data, ICC
profiles, ComfyUI workflows and anything appended after the image data are
dropped.
"""
from __future__ import annotations

import hashlib
import io
import warnings
from dataclasses import dataclass
from typing import BinaryIO

from PIL import Image, ImageOps, UnidentifiedImageError
from PIL.PngImagePlugin import PngInfo

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


def _parameters(im: Image.Image, fmt: str) -> str:
    text = ""
    if fmt == "PNG":
        value = im.info.get("parameters")
        text = value if isinstance(value, str) else ""
    else:
        try:
            text = _decode_user_comment(im.getexif().get_ifd(_EXIF_IFD).get(_USER_COMMENT))
        except Exception:  # a malformed EXIF block just means no parameters
            text = ""
        if not text and isinstance(im.info.get("comment"), (bytes, str)):
            comment = im.info["comment"]
            text = comment.decode("utf-8", errors="replace") if isinstance(comment, bytes) else comment
    # Keep printable text and line breaks only; the page shows it escaped anyway.
    text = "".join(ch for ch in text if ch in "\n\t" or ch.isprintable()).strip()
    return text[:MAX_PARAMETERS_CHARS]


def image_clean(f: BinaryIO, *, size: int, max_bytes: int = MAX_IMAGE_BYTES, max_pixels: int = MAX_IMAGE_PIXELS) -> CleanImage:
    """Validate and re-encode one image; raises ImageRejected with a reason people can act on."""
    if size > max_bytes:
        raise ImageRejected("image_too_large", f"the image is {size} bytes; the limit is {max_bytes} bytes")
    if size <= 0:
        raise ImageRejected("image_empty", "the image is empty")
    head = f.read(16)
    fmt = sniff_image(head)
    if fmt is None:
        raise ImageRejected("image_type", "only PNG, JPEG and WebP images are accepted")
    f.seek(0)
    with warnings.catch_warnings():
        # Pillow warns (instead of failing) on large images; our own limit is stricter and checked first.
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            with Image.open(f, formats=[fmt]) as im:
                width, height = im.size
                if width <= 0 or height <= 0 or max(width, height) > MAX_IMAGE_SIDE or width * height > max_pixels:
                    raise ImageRejected(
                        "image_dimensions",
                        f"the image is {width}×{height} pixels; the limit is {max_pixels} pixels "
                        f"and {MAX_IMAGE_SIDE} on a side",
                    )
                parameters = _parameters(im, fmt)
                im.seek(0)  # animated files: the first frame only
                im.load()
                pixels = ImageOps.exif_transpose(im)
                return _encode(pixels, fmt, parameters)
        except ImageRejected:
            raise
        except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
            # Pillow's own guard, which fires while reading the header for absurd sizes.
            raise ImageRejected("image_dimensions", f"the image is too large to decode: {exc}") from exc
        except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError) as exc:
            raise ImageRejected("image_invalid", f"the image could not be decoded: {exc}") from exc


def _encode(im: Image.Image, fmt: str, parameters: str) -> CleanImage:
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
        parameters=parameters,
    )
