"""Benchmark files as records: the format error, file and argument checks, TSV / JSONL / JSON-array
iteration with byte offsets, and JSON field access.

* `DatasetFormatError` is the one error a loader raises for a bad file; its message names the
  file, the row/line and what is wrong, and the fix when it is obvious.
* `iter_tsv` / `iter_jsonl` yield records with their byte offset, so a base64 image can stay in
  the file: `images.EncodedImageRef` re-reads its record only when the image is needed.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import itertools
import json
import os
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import IO, Any

from grounding_gym.validation import did_you_mean


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
    return did_you_mean(name, candidates)


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
    one of `suffixes`. Images resolve against `data_dir` when it is a folder, else the file's
    folder.
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
