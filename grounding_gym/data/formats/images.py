"""Benchmark images without decoding: base64 fields, data URIs, magic numbers, lazy references
into the file, and header-only sizes.

Images are never decoded while a dataset is built. Base64 fields are validated at load time
(`base64.b64decode(validate=True)` plus a magic-number check: cheap next to pixel decoding);
image files are checked with `os.path.isfile`. Headers are read (`ImageHandle.size`, no pixel
decode) only where a loader needs the size: `read_sizes=True`, or normalised box formats.
"""

from __future__ import annotations

import base64
import binascii
import csv
import hashlib
import io
import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Literal

from PIL import Image, ImageOps

from grounding_gym.data.formats.records import format_error, raise_csv_field_limit
from grounding_gym.views import ImageSource

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)


_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s]+$")


_MAGIC: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
    (b"BM", "BMP"),
    (b"II*\x00", "TIFF"),
    (b"MM\x00*", "TIFF"),
    (b"\x00\x00\x00\x0cjP  \r\n\x87\n", "JPEG 2000"),
)


def sniff_image_format(data: bytes) -> str | None:
    """Image format named by the first bytes (no decoding), or None."""
    for magic, name in _MAGIC:
        if data.startswith(magic):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp":
        return "HEIF/AVIF"
    return None


def strip_data_uri(text: str) -> str:
    match = _DATA_URI.match(text)
    return text[match.end() :] if match else text


def decode_base64_image(text: str, where: str) -> bytes:
    """The encoded image bytes of a base64 field (validated, not decoded as pixels).

    Accepts a `data:image/...;base64,` prefix and line-wrapped base64.

    Raises:
        DatasetFormatError: empty, not base64, or not the bytes of an image file.
    """
    payload = strip_data_uri(text.strip())
    if not payload:
        raise format_error(where, "the image field is empty")
    try:
        data = base64.b64decode(payload, validate=True)
    except (binascii.Error, ValueError) as err:
        wrapped = _decode_wrapped(payload)
        if wrapped is None:
            raise format_error(
                where,
                f"corrupt base64 image ({err}; {len(payload)} chars starting {payload[:24]!r})",
                "re-encode with base64.b64encode(open(image_path, 'rb').read()).decode().",
            ) from None
        data = wrapped
    if sniff_image_format(data) is None:
        raise format_error(
            where,
            f"the base64 field decodes to {len(data)} bytes that are not an image file "
            f"(first bytes {data[:8]!r}; expected JPEG, PNG, WEBP, GIF, BMP or TIFF)",
        )
    return data


def _decode_wrapped(payload: str) -> bytes | None:
    """Base64 split over lines (`base64.encodebytes` style), or None."""
    compact = "".join(payload.split())
    if compact == payload:
        return None
    try:
        return base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None


def looks_like_base64(text: str) -> bool:
    """Heuristic for fields that may hold a path or base64: data URI, or long base64 text."""
    if _DATA_URI.match(text):
        return True
    return len(text) >= 64 and _BASE64_CHARS.match(text) is not None


def image_digest(text: str) -> str:
    """Identity of an inline image: sha256 of its base64 text (equal digests = same bytes)."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


@dataclass(frozen=True)
class EncodedImageRef:
    """A base64 image inside one record of a TSV or JSONL file, read only when called.

    A `Sample.image` source (`ImageSource` callable): picklable, a few hundred bytes, so a
    10,000-row file costs no image memory and `AsyncVectorEnv` workers receive only the address.
    Calling it reads the record back (`offset`, `length` bytes), decodes the base64 field and
    returns the decoded upright image. The file must not change after loading.

    Attributes:
        path: absolute path of the data file.
        offset: byte offset of the record (TSV row or JSONL line) in the file.
        length: byte length of the record.
        kind: "tsv" (`key` is the column index) or "jsonl" (`key` is the field name).
        key: where the base64 text is inside the record.
        where: the record's location, for error messages.
    """

    path: str
    offset: int
    length: int
    kind: Literal["tsv", "jsonl"]
    key: str | int
    where: str

    def read_base64(self) -> str:
        with open(self.path, "rb") as handle:
            handle.seek(self.offset)
            text = handle.read(self.length).decode("utf-8-sig" if self.offset == 0 else "utf-8")
        if self.kind == "tsv":
            raise_csv_field_limit()
            fields = next(csv.reader(io.StringIO(text), delimiter="\t"))
            return fields[int(self.key)]
        return json.loads(text)[self.key]

    def read_bytes(self) -> bytes:
        """The encoded image file bytes (no pixel decoding): pass to `ImageHandle` for `.size`."""
        return base64.b64decode(strip_data_uri(self.read_base64().strip()))

    def __call__(self) -> Image.Image:
        from grounding_gym.views import DEFAULT_MAX_IMAGE_PIXELS, ImageLoadError, ImageTooLargeError

        try:
            data = self.read_bytes()
        except (OSError, ValueError, LookupError, StopIteration) as err:
            raise ImageLoadError(f"Cannot read the base64 image of {self.where}: {err}") from err
        try:
            image = Image.open(io.BytesIO(data))
            width, height = image.size
            if width * height > DEFAULT_MAX_IMAGE_PIXELS:
                raise ImageTooLargeError(
                    f"The image of {self.where} has {width}x{height} pixels, over "
                    f"{DEFAULT_MAX_IMAGE_PIXELS:,}"
                )
            image.load()
            ImageOps.exif_transpose(image, in_place=True)
        except ImageLoadError:
            raise
        except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as err:
            raise ImageLoadError(f"Cannot decode the image of {self.where}: {err}") from err
        return image


@dataclass(frozen=True)
class ResolvedImage:
    """An image field turned into a `Sample.image` source.

    Attributes:
        source: what goes in `Sample.image`.
        key: identity of the pixels (absolute path, or "b64:<digest>"); equal keys, same image.
        data: the encoded bytes when they were just validated (for a header read), else None.
    """

    source: ImageSource
    key: str
    data: bytes | None = None


class ImageFields:
    """Turns image fields (paths or base64) into sources, validating each distinct image once.

    Image paths are confined to `root`: a path that resolves outside it (absolute, `..`, or a
    symlink pointing out) is refused, since a hostile dataset file could otherwise make an env
    show (and a remote model receive) any image the user can read. `allow_outside_root=True`
    lifts this for files the user trusts.
    """

    def __init__(self, root: str, allow_outside_root: bool = False):
        self.root = root
        self.allow_outside_root = allow_outside_root
        self._real_root = os.path.realpath(root)
        self._valid: set[str] = set()
        self._sizes: dict[str, tuple[int, int]] = {}

    def path(self, value: Any, where: str, *, candidates: Sequence[str] = ()) -> ResolvedImage:
        """An image file relative to the root (or to one of `candidates` sub-folders)."""
        if not isinstance(value, str) or not value.strip():
            raise format_error(where, f"image must be a non-empty path string, got {value!r}")
        tried = [os.path.normpath(os.path.join(self.root, c, value)) for c in (*candidates, "")]
        for full in tried:
            if os.path.isfile(full):
                self._check_inside_root(value, full, where)
                return ResolvedImage(full, full)
        fix = f"image paths are relative to {self.root!r}; pass data_dir= the folder holding them."
        if looks_like_base64(value):
            fix = "this looks like base64: mark it as base64 (see the format's docs)."
        shown = repr(tried[0]) if len(tried) == 1 else f"tried {tried}"
        raise format_error(where, f"image file not found: {shown}", fix)

    def _check_inside_root(self, value: str, full: str, where: str) -> None:
        real = os.path.realpath(full)
        if (
            self.allow_outside_root
            or os.path.commonpath([real, self._real_root]) == self._real_root
        ):
            return
        raise format_error(
            where,
            f"image path {value[:200]!r} resolves to {real!r}, outside the dataset root "
            f"{self._real_root!r} (an absolute path, '..' or a symlink leading out)",
            "keep images under the dataset's folder (or data_dir), or pass "
            "allow_outside_root=True if you trust this file.",
        )

    def auto(self, value: Any, where: str, ref: EncodedImageRef | None = None) -> ResolvedImage:
        """A field that holds a path or base64: base64 when it looks like base64 (data URI, or
        64+ base64 characters) and names no existing file; `ref` locates it for lazy reads
        (line-based files), else the bytes are kept (JSON documents)."""
        if isinstance(value, str) and looks_like_base64(value):
            if len(value) > 4096 or not os.path.isfile(os.path.join(self.root, value)):
                if ref is not None:
                    return self.base64_in_record(value, where, ref)
                return self.base64_inline(value, where)
        return self.path(value, where)

    def base64_in_record(self, text: str, where: str, ref: EncodedImageRef) -> ResolvedImage:
        """A base64 field of a TSV/JSONL record: validated now, decoded lazily through `ref`."""
        digest = image_digest(text)
        data = None
        if digest not in self._valid:
            data = decode_base64_image(text, where)
            self._valid.add(digest)
        return ResolvedImage(ref, f"b64:{digest}", data)

    def base64_inline(self, text: str, where: str) -> ResolvedImage:
        """A base64 field of a JSON document (no byte offsets): kept as encoded bytes."""
        data = decode_base64_image(text, where)
        return ResolvedImage(data, f"b64:{image_digest(text)}", data)

    def size(self, image: ResolvedImage, where: str) -> tuple[int, int]:
        """`(w, h)` of the upright image from its header (cached per image, no pixel decode)."""
        if image.key not in self._sizes:
            source: ImageSource = image.source
            if isinstance(source, EncodedImageRef):
                source = image.data if image.data is not None else source.read_bytes()
            self._sizes[image.key] = read_header_size(source, where)
        return self._sizes[image.key]


def read_header_size(source: ImageSource, where: str) -> tuple[int, int]:
    from grounding_gym.views import ImageHandle, ImageLoadError

    try:
        return ImageHandle(source).size
    except ImageLoadError as err:
        raise format_error(where, f"cannot read the image header ({err})") from err
