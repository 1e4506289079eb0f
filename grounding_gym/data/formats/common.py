"""What every benchmark format shares: errors, record iteration, images, boxes and options.

* `DatasetFormatError` is the one error a loader raises for a bad file; its message names the
  file, the row/line and what is wrong, and the fix when it is obvious.
* `iter_tsv` / `iter_jsonl` yield records with their byte offset, so a base64 image can stay in
  the file: `EncodedImageRef` re-reads its record only when the image is needed.
* `parse_box` is the single place a benchmark's box becomes an original-px xyxy `Box`;
  `BoxFitter` clips boxes to their image (see "Boxes outside the image" below).
* Images are never decoded while a dataset is built. Base64 fields are validated at load time
  (`base64.b64decode(validate=True)` plus a magic-number check: cheap next to pixel decoding);
  image files are checked with `os.path.isfile`. Headers are read (`ImageHandle.size`, no pixel
  decode) only where a loader needs the size: `read_sizes=True`, or normalised box formats.

Boxes outside the image (only checked when the image size is known):
a box partly outside is clipped to the image, with one `UserWarning` per dataset counting the
boxes that stuck out by more than `CLIP_TOLERANCE_PX`; a box with nothing inside the image is a
`DatasetFormatError` (it is almost always a wrong box format or a wrong image).
"""

from __future__ import annotations

import base64
import binascii
import codecs
import csv
import difflib
import hashlib
import io
import itertools
import json
import math
import os
import random
import re
import string
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from PIL import Image, ImageOps

from grounding_gym.data.sample import ImageSource
from grounding_gym.geometry import Box, clip_box

BOX_FORMATS: tuple[str, ...] = ("xyxy", "xywh", "norm1", "norm1000")
"""Box formats a file may declare: original px corners, original px corner + size, 0..1 corners,
0..1000 corners (Qwen2-VL). Normalised formats are fractions of the whole original image."""

CLIP_TOLERANCE_PX = 1.0
"""Boxes sticking out of the image by at most this many px are clipped without a warning."""

LETTERS = string.ascii_uppercase

_DATA_URI = re.compile(r"^data:image/[\w.+-]+;base64,", re.IGNORECASE)
_BASE64_CHARS = re.compile(r"^[A-Za-z0-9+/=\s]+$")


class DatasetFormatError(ValueError):
    """A benchmark file does not follow its format.

    The message reads `"<file>, row 7 (line 8): <what is wrong>. Fix: <how>"`.
    """


def format_error(where: str, problem: str, fix: str = "") -> DatasetFormatError:
    """A `DatasetFormatError` located at `where` (file plus row/line)."""
    message = f"{where}: {problem}"
    if fix:
        message += f" Fix: {fix}"
    return DatasetFormatError(message)


def suggest(name: str, candidates: Sequence[str]) -> str:
    """`" Did you mean 'x'?"` for the closest candidate, or ""."""
    hint = difflib.get_close_matches(name, list(candidates), n=1, cutoff=0.6)
    return f" Did you mean {hint[0]!r}?" if hint else ""


# ---------------------------------------------------------------------------------------------
# Files and arguments
# ---------------------------------------------------------------------------------------------


def check_limit(limit: int | None) -> None:
    if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int) or limit < 0):
        raise ValueError(f"limit must be None or an int >= 0, got {limit!r}")


def resolve_file(
    dataset: str,
    path: str | os.PathLike | None,
    data_dir: str | os.PathLike | None,
    suffixes: tuple[str, ...],
) -> tuple[str, str]:
    """The data file and the folder image paths are relative to.

    `path` names the file; `data_dir` may name the file, or a folder holding exactly one file with
    one of `suffixes`. Images resolve against `data_dir` when it is a folder, else the file's folder.
    """
    data_dir = os.fspath(data_dir) if data_dir is not None else None
    if path is not None:
        file = os.fspath(path)
        if data_dir is not None and not os.path.isdir(data_dir):
            raise DatasetFormatError(
                f"{dataset}: data_dir {data_dir!r} is not a folder (with path= given, data_dir is "
                "the folder image paths are relative to)"
            )
        root = data_dir if data_dir is not None else os.path.dirname(os.path.abspath(file))
    elif data_dir is None:
        raise TypeError(f"{dataset}: pass path= (the data file) or data_dir= (its folder)")
    elif os.path.isdir(data_dir):
        names = sorted(
            n
            for n in os.listdir(data_dir)
            if n.lower().endswith(suffixes) and os.path.isfile(os.path.join(data_dir, n))
        )
        if len(names) != 1:
            found = f"found {names}" if names else "found none"
            raise DatasetFormatError(
                f"{dataset}: data_dir {data_dir!r} must hold exactly one {'/'.join(suffixes)} "
                f"file ({found}). Fix: pass path= the file to load."
            )
        file, root = os.path.join(data_dir, names[0]), data_dir
    else:
        file, root = data_dir, os.path.dirname(os.path.abspath(data_dir))
    if not os.path.isfile(file):
        raise DatasetFormatError(f"{dataset}: data file {file!r} does not exist")
    return os.path.abspath(file), os.path.abspath(root)


def at_line(file: str, line: int) -> str:
    return f"{file}, line {line}"


def at_row(file: str, row: int, line: int) -> str:
    return f"{file}, row {row} (line {line})"


class IdRegistry:
    """Rejects duplicate sample ids (envs select samples by id), except exact repeats.

    A record whose id was seen before with identical content (`is_repeat`) is an exact
    duplicate, as published files have (MME-RealWorld-Lite repeats some questions): the loader
    keeps the first and skips the rest, and `warn()` counts them in one `UserWarning`.
    """

    def __init__(self, dataset: str = "dataset") -> None:
        self.dataset = dataset
        self._first: dict[str, str] = {}
        self._content: dict[str, str] = {}
        self.repeats = 0
        self._first_repeat = ""

    def is_repeat(self, sample_id: str, record: Any, where: str) -> bool:
        """True (and counted) when `sample_id` was added before with the same `record` content."""
        if sample_id not in self._first or self._content.get(sample_id) != _fingerprint(record):
            return False
        self.repeats += 1
        if not self._first_repeat:
            self._first_repeat = f"{where} repeats {self._first[sample_id]}"
        return True

    def add(self, sample_id: str, where: str, record: Any = None) -> str:
        """Register `sample_id` (with `record`'s content, for `is_repeat`) and return it.

        Raises:
            DatasetFormatError: the id was seen before (with other content).
        """
        if sample_id in self._first:
            known = self._content.get(sample_id)
            if record is None or known is None:
                how = ""
            elif known == _fingerprint(record):
                how = " with identical content"
            else:
                how = " with different content"
            raise format_error(
                where,
                f"duplicate sample id {sample_id!r}{how} (first seen at {self._first[sample_id]})",
                "ids must be unique (remove the repeated row or give it its own id); "
                "env.reset(options={'sample_id': ...}) selects by id.",
            )
        self._first[sample_id] = where
        if record is not None:
            self._content[sample_id] = _fingerprint(record)
        return sample_id

    def warn(self) -> None:
        if self.repeats:
            warnings.warn(
                f"{self.dataset}: skipped {self.repeats} exact duplicate record(s) (same id, same "
                f"content; the first is kept; first: {self._first_repeat})",
                UserWarning,
                stacklevel=3,
            )


def _fingerprint(record: Any) -> str:
    """sha256 of a record's canonical JSON (key order ignored)."""
    text = json.dumps(record, sort_keys=True, default=str, ensure_ascii=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


# ---------------------------------------------------------------------------------------------
# Record iteration (byte offsets kept for lazy images)
# ---------------------------------------------------------------------------------------------


def raise_csv_field_limit() -> None:
    """Let `csv` read multi-MB fields (base64 images); the limit is process-wide."""
    target = min(sys.maxsize, 2**31 - 1)
    if csv.field_size_limit() < target:
        csv.field_size_limit(target)


class _TrackedLines:
    """Decoded lines of a binary file, counting bytes and lines consumed so far."""

    def __init__(self, handle: IO[bytes], file: str):
        self.handle, self.file = handle, file
        self.pos = 0
        self.lines = 0

    def __iter__(self) -> _TrackedLines:
        return self

    def __next__(self) -> str:
        raw = self.handle.readline()
        if not raw:
            raise StopIteration
        first = self.pos == 0
        self.pos += len(raw)
        self.lines += 1
        if first and raw.startswith(codecs.BOM_UTF8):
            raw = raw[len(codecs.BOM_UTF8) :]
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError as err:
            raise format_error(at_line(self.file, self.lines), f"not UTF-8 text ({err})") from err


@dataclass(frozen=True)
class TsvRecord:
    """One data row of a TSV file: 1-based data `row`, 1-based `line` where it starts."""

    row: int
    line: int
    offset: int
    length: int
    values: dict[str, str]


def iter_tsv(file: str, required: Sequence[str]) -> Iterator[TsvRecord]:
    """Rows of a tab-separated file with a header (csv quoting as pandas writes it).

    Raises:
        DatasetFormatError: a required column is missing, or a row has the wrong field count.
    """
    raise_csv_field_limit()
    with open(file, "rb") as handle:
        lines = _TrackedLines(handle, file)
        header = _next_tsv_fields(lines, file)
        if header is None:
            raise DatasetFormatError(f"{file}: empty file (expected a header row)")
        header = [h.strip() for h in header]
        check_columns(file, header, required)
        row = 0
        while True:
            start, start_line = lines.pos, lines.lines + 1
            fields = _next_tsv_fields(lines, file)
            if fields is None:
                return
            if not fields or fields == [""]:
                continue
            row += 1
            if len(fields) != len(header):
                raise format_error(
                    at_row(file, row, start_line),
                    f"{len(fields)} tab-separated fields, but the header has {len(header)}",
                    "quote fields that contain tabs or newlines (pandas.to_csv does).",
                )
            yield TsvRecord(
                row, start_line, start, lines.pos - start, dict(zip(header, fields, strict=True))
            )


def _next_tsv_fields(lines: _TrackedLines, file: str) -> list[str] | None:
    """The next record's fields (None at the end). Lines without a quote character are split
    directly (csv would give the same fields, 20x slower on multi-MB base64 lines); others go
    through `csv`, which pulls further lines for quoted multi-line fields."""
    try:
        line = next(lines)
    except StopIteration:
        return None
    if '"' not in line:
        return line.rstrip("\r\n").split("\t")
    try:
        return next(csv.reader(itertools.chain([line], lines), delimiter="\t"))
    except csv.Error as err:
        raise format_error(at_line(file, lines.lines), f"malformed TSV ({err})") from err


def check_columns(file: str, header: Sequence[str], required: Sequence[str]) -> None:
    repeated = sorted({h for h in header if header.count(h) > 1})
    if repeated:
        raise DatasetFormatError(f"{file}, line 1: repeated column name(s) {repeated}")
    missing = [c for c in required if c not in header]
    if missing:
        hints = "".join(suggest(c, header) for c in missing)
        raise DatasetFormatError(
            f"{file}, line 1: missing column(s) {missing}; the header has {list(header)}.{hints}"
        )


@dataclass(frozen=True)
class JsonlRecord:
    """One JSON object of a JSONL file, with its 1-based `line` and byte span."""

    line: int
    offset: int
    length: int
    value: dict[str, Any]


def iter_jsonl(
    file: str, bad_rows: list[DatasetFormatError] | None = None
) -> Iterator[JsonlRecord]:
    """Objects of a JSON-lines file; blank lines are skipped. A line that is not a JSON object
    raises `DatasetFormatError`, or with `bad_rows` is appended there and skipped."""
    with open(file, "rb") as handle:
        offset = 0
        for line_no, raw in enumerate(handle, start=1):
            start, offset = offset, offset + len(raw)
            if not raw.strip():
                continue
            try:
                value = json.loads(raw.decode("utf-8-sig" if start == 0 else "utf-8"))
                if not isinstance(value, dict):
                    raise format_error(
                        at_line(file, line_no),
                        f"expected a JSON object, got {type(value).__name__}",
                    )
            except (
                UnicodeDecodeError,
                json.JSONDecodeError,
                RecursionError,
                DatasetFormatError,
            ) as err:
                if isinstance(err, DatasetFormatError):
                    error = err
                elif isinstance(err, RecursionError):
                    error = format_error(
                        at_line(file, line_no),
                        "JSON nested too deeply to parse (hostile or corrupt)",
                    )
                else:
                    error = format_error(at_line(file, line_no), f"not valid JSON ({err})")
                if bad_rows is None:
                    raise error from err
                bad_rows.append(error)
                continue
            yield JsonlRecord(line_no, start, len(raw), value)


def iter_json_array(file: str) -> Iterator[tuple[int, Any]]:
    """`(line, element)` of a JSON file holding one list, `line` (1-based) where each element
    starts, so an error can name it.

    Raises:
        DatasetFormatError: not valid JSON, or not a list.
    """
    with open(file, encoding="utf-8-sig") as handle:
        text = handle.read()
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if not text.startswith("[", pos):
        data = load_json(file)  # raises for invalid JSON
        raise format_error(file, f"expected a JSON list of records, got {type(data).__name__}")
    pos, line, counted = _skip_space(text, pos + 1), 1, 0
    if text.startswith("]", pos):
        return
    while True:
        line += text.count("\n", counted, pos)
        counted = pos
        try:
            value, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as err:
            raise format_error(at_line(file, err.lineno), f"not valid JSON ({err.msg})") from err
        yield line, value
        pos = _skip_space(text, pos)
        if text.startswith("]", pos):
            return
        if not text.startswith(",", pos):
            where = at_line(file, line + text.count("\n", counted, pos))
            raise format_error(where, "not valid JSON (expected ',' or ']' after a list element)")
        pos = _skip_space(text, pos + 1)


def _skip_space(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def json_field(value: Any, where: str, field: str) -> Any:
    """A field that files store either as JSON or as a JSON string (`"[[1, 2, 3, 4]]"`): the
    decoded value. Other values are returned as they are.

    >>> json_field("[[1, 2, 3, 4]]", "f", "target_instances")
    [[1, 2, 3, 4]]
    """
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except json.JSONDecodeError as err:
        raise format_error(
            where, f"field {field!r} is a string that is not valid JSON ({err}): {value[:80]!r}"
        ) from err


def load_json(file: str) -> Any:
    try:
        with open(file, encoding="utf-8-sig") as handle:
            return json.load(handle)
    except json.JSONDecodeError as err:
        raise format_error(at_line(file, err.lineno), f"not valid JSON ({err.msg})") from err


def require(record: Mapping[str, Any], keys: Sequence[str], where: str) -> None:
    """Every key of `keys` present (and not None) in `record`."""
    missing = [k for k in keys if record.get(k) is None]
    if missing:
        hints = "".join(suggest(k, [str(x) for x in record]) for k in missing)
        raise format_error(
            where, f"missing field(s) {missing}; the record has {sorted(map(str, record))}.{hints}"
        )


# ---------------------------------------------------------------------------------------------
# Images
# ---------------------------------------------------------------------------------------------

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
        data = _decode_wrapped(payload)
        if data is None:
            raise format_error(
                where,
                f"corrupt base64 image ({err}; {len(payload)} chars starting {payload[:24]!r})",
                "re-encode with base64.b64encode(open(image_path, 'rb').read()).decode().",
            ) from None
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


# ---------------------------------------------------------------------------------------------
# Boxes
# ---------------------------------------------------------------------------------------------


def check_box_format(box_format: Any, where: str) -> str:
    if box_format not in BOX_FORMATS:
        raise format_error(
            where,
            f"box_format {box_format!r} is not one of {BOX_FORMATS}.{suggest(str(box_format), BOX_FORMATS)}",
            '"xyxy"/"xywh" are original px; "norm1" is 0..1 and "norm1000" 0..1000 of the image.',
        )
    return box_format


def _box_numbers(value: Any, box_format: str, where: str) -> tuple[float, float, float, float]:
    shape = "[x, y, w, h]" if box_format == "xywh" else "[x1, y1, x2, y2]"
    if isinstance(value, str) and value.strip().startswith("["):
        value = json_field(value, where, "box")
    if not isinstance(value, (list, tuple)) or len(value) != 4:
        raise format_error(
            where, f"box {value!r} is not a list of 4 numbers {shape} ({box_format})"
        )
    for v in value:
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise format_error(where, f"box {value!r} has a non-numeric coordinate {v!r}")
        if not math.isfinite(v):
            raise format_error(where, f"box {value!r} has a non-finite coordinate {v!r}")
    a, b, c, d = (float(v) for v in value)
    return a, b, c, d


def parse_box(
    value: Any, box_format: str, where: str, image_size: tuple[int, int] | None = None
) -> Box:
    """A file's box as an original-px xyxy `Box` (the one conversion every loader uses).

    Args:
        value: 4 numbers in `box_format`.
        box_format: one of `BOX_FORMATS`.
        where: location for error messages.
        image_size: `(w, h)` of the original; required for "norm1" / "norm1000".

    Raises:
        DatasetFormatError: not 4 finite numbers, non-positive size, or normalised coordinates
            out of range (usually a wrong `box_format`).
    """
    a, b, c, d = _box_numbers(value, box_format, where)
    if box_format == "xywh":
        if c <= 0 or d <= 0:
            raise format_error(
                where, f"box {list(value)} (xywh) has a non-positive size w={c}, h={d}"
            )
        return Box(a, b, a + c, b + d)
    if not (a < c and b < d):
        fix = 'if it is [x, y, w, h], declare box_format "xywh".' if c > 0 and d > 0 else ""
        raise format_error(
            where,
            f"box {list(value)} ({box_format}) needs x1 < x2 and y1 < y2 (non-positive size)",
            fix,
        )
    if box_format == "xyxy":
        return Box(a, b, c, d)
    top = 1.0 if box_format == "norm1" else 1000.0
    if min(a, b) < -0.01 * top or max(c, d) > 1.01 * top:
        raise format_error(
            where,
            f"box {list(value)} is declared {box_format} but its coordinates leave 0..{top:g}",
            "check box_format: pixel boxes are 'xyxy' or 'xywh'.",
        )
    if image_size is None:
        raise format_error(where, f"box_format {box_format!r} needs the image size")
    sx, sy = image_size[0] / top, image_size[1] / top
    return Box(a * sx, b * sy, c * sx, d * sy)


class BoxFitter:
    """Clips boxes to their image; counts the ones that stuck out, and warns once (`warn()`)."""

    def __init__(self, dataset: str):
        self.dataset = dataset
        self.clipped = 0
        self._first = ""

    def fit(self, box: Box, image_size: tuple[int, int] | None, where: str) -> Box:
        if image_size is None:
            return box
        width, height = image_size
        inside = clip_box(box, Box.from_size(width, height))
        if inside is None:
            raise format_error(
                where,
                f"box {box.as_list()} (original px xyxy) lies entirely outside the {width}x{height} image",
                "check the box format and that the box belongs to this image.",
            )
        overhang = max(-box.x1, -box.y1, box.x2 - width, box.y2 - height)
        if overhang > CLIP_TOLERANCE_PX:
            self.clipped += 1
            if not self._first:
                self._first = f"{where}: {box.as_list()} -> {inside.as_list()}"
        return inside

    def warn(self) -> None:
        if self.clipped:
            warnings.warn(
                f"{self.dataset}: clipped {self.clipped} ground-truth box(es) that extended more "
                f"than {CLIP_TOLERANCE_PX:g} px outside their image (first: {self._first})",
                UserWarning,
                stacklevel=3,
            )


# ---------------------------------------------------------------------------------------------
# Options and answers
# ---------------------------------------------------------------------------------------------

_CHOICE_PREFIX = re.compile(r"^\s*(?:\(([A-Za-z])\)|([A-Za-z])[.:)])\s*")
STRING_OPTION_LETTERS = LETTERS[:6]
"""Labels recognised when the options are one string (2-6 options, A-F)."""


def strip_choice_prefix(text: str, letter: str) -> str:
    """`"(A) red"` / `"A. red"` -> `"red"` when the prefix letter is `letter`; else unchanged."""
    match = _CHOICE_PREFIX.match(text)
    if match and (match.group(1) or match.group(2)).upper() == letter:
        return text[match.end() :].strip()
    return text.strip()


def split_choice_label(text: str) -> tuple[str | None, str]:
    """`"(D) red"` / `"D. red"` / `"D) red"` / `"D: red"` -> `("D", "red")`; no label -> `(None, text)`."""
    match = _CHOICE_PREFIX.match(text)
    if match is None or not text[match.end() :].strip():
        return None, text.strip()
    return (match.group(1) or match.group(2)).upper(), text[match.end() :].strip()


@dataclass(frozen=True)
class Choices:
    """Options as a file gives them: `texts` in position order (shown as A, B, ...), and the
    label printed with each (`labels[i]`, None where none was printed)."""

    texts: tuple[str, ...]
    labels: tuple[str | None, ...]


def _label_pattern(letter: str) -> re.Pattern[str]:
    """Where the label of `letter` may start in a one-string option list: `(B)`, `B.`, `B)`, `B:`
    after the start or whitespace; a bare `B ` only at the start of a line."""
    return re.compile(
        rf"(?:(?<=\s)|^)(?:\({letter}\)|{letter}[.):])[ \t]*|(?:(?<=\n)|^)[ \t]*{letter}[ \t]+"
    )


def split_options_string(text: str, where: str, field: str = "options") -> Choices:
    r"""One string of labelled options -> `Choices` (labels A, B, ... in order, up to F).

    Styles, mixable: `"A. x\nB. y"`, `"(A) x\n(B) y"`, `"A x\nB y"` (bare letters at line
    starts), `"A. x B. y C. z"` (on one line).

    >>> split_options_string("A. red B. dark blue\nC green", "f").texts
    ('red', 'dark blue', 'green')

    Raises:
        DatasetFormatError: fewer than two labels A, B, ... in order, or an empty option.
    """
    body = text.strip()
    spans: list[tuple[int, int]] = []
    pos = 0
    for letter in STRING_OPTION_LETTERS:
        match = _label_pattern(letter).search(body, pos)
        if match is None or (letter == "A" and match.start() != 0):
            break
        spans.append((match.start(), match.end()))
        pos = match.end()
    if len(spans) < 2:
        raise format_error(
            where,
            f"field {field!r} is one string without option labels A, B, ... in order: {body[:80]!r}",
            'write it as a list, or label each option ("A. x\nB. y", "(A) x (B) y", "A x\nB y").',
        )
    ends = [start for start, _ in spans[1:]] + [len(body)]
    texts = tuple(body[end:stop].strip() for (_, end), stop in zip(spans, ends, strict=True))
    for letter, option in zip(LETTERS, texts, strict=False):
        if not option:
            raise format_error(where, f"field {field!r}: option {letter} is empty in {body[:80]!r}")
    return Choices(texts, tuple(LETTERS[: len(texts)]))


def parse_choices(value: Any, where: str, field: str = "options") -> Choices:
    """Options from a list (items may print their label: `"(A) x"`), a dict `{"A": ..., ...}`,
    or one string (`split_options_string`). Labels printed in list items are stripped from the
    texts and kept in `labels` (see `answer_letter`)."""
    if isinstance(value, str):
        return split_options_string(value, where, field)
    if isinstance(value, Mapping):
        keys = [str(k).strip().upper() for k in value]
        if sorted(keys) != list(LETTERS[: len(keys)]):
            raise format_error(
                where, f"{field} keys {list(value)} must be consecutive letters from 'A'"
            )
        ordered = sorted(value, key=lambda k: str(k).strip().upper())
        texts = [value[k] for k in ordered]
        printed = [str(k).strip().upper() for k in ordered]
    elif isinstance(value, (list, tuple)):
        texts, printed = list(value), []
    else:
        raise format_error(
            where, f"{field} must be a list, a letter->text dict or one string, got {value!r}"
        )
    if not 2 <= len(texts) <= len(LETTERS):
        raise format_error(where, f"{field} needs 2..26 options, got {len(texts)}")
    for letter, text in zip(LETTERS, texts, strict=False):
        if (
            not isinstance(text, (str, int, float))
            or isinstance(text, bool)
            or not str(text).strip()
        ):
            raise format_error(where, f"{field}: option {letter} is empty or not text: {text!r}")
    if printed:
        stripped = [strip_choice_prefix(str(t), k) for t, k in zip(texts, printed, strict=True)]
        return Choices(tuple(stripped), tuple(printed))
    split = [split_choice_label(str(t)) for t in texts]
    return Choices(tuple(t for _, t in split), tuple(label for label, _ in split))


def parse_options(value: Any, where: str, field: str = "options") -> tuple[str, ...]:
    """Option texts in position order from a list, a letter->text dict, or one string
    (`parse_choices(...).texts`; list items keep any printed label)."""
    choices = parse_choices(value, where, field)
    if isinstance(value, (list, tuple)):
        return tuple(str(t).strip() for t in value)
    return choices.texts


def answer_letter(
    answer: Any,
    options: Sequence[str],
    where: str,
    labels: Sequence[str | None] = (),
    field: str = "answer",
) -> str:
    """The correct option's position letter from a letter ("B", "(B)", "b.") or the option's text.

    Printed labels are authoritative: when `labels` (the label printed with each option) hold
    the answer's letter, the answer is the first option printed with it, whatever its position
    (MME-RealWorld rows list "(D)" twice, and "E" names the option printed "(E)", the sixth).
    """
    text = str(answer).strip() if answer is not None else ""
    letters = LETTERS[: len(options)]
    bare = text.strip("().: ").upper()
    if len(bare) == 1 and bare in LETTERS:
        if bare in labels:
            return LETTERS[list(labels).index(bare)]
        if bare in letters:
            return bare
    for letter, option in zip(letters, options, strict=True):
        if text and text.casefold() == option.casefold():
            return letter
    shown = f"; printed labels {[label or '-' for label in labels]}" if any(labels) else ""
    raise format_error(
        where,
        f"field {field!r}: answer {answer!r} is neither an option letter ({', '.join(letters)}){shown} "
        "nor an option text",
    )


def shuffled_order(n: int, seed: int, sample_id: str) -> list[int]:
    """A permutation of `range(n)` fixed by `(seed, sample_id)` (sha256, not `hash()`).

    >>> shuffled_order(4, 0, "x") == shuffled_order(4, 0, "x")
    True
    """
    digest = hashlib.sha256(f"{seed}\x00{sample_id}".encode()).digest()
    order = list(range(n))
    random.Random(int.from_bytes(digest[:8], "big")).shuffle(order)
    return order
